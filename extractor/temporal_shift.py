"""TSM's temporal shift (PP-TSM, PP-TSMv2), written with a concat and slices.

Same values as paddle's `temporal_shift` op (NCHW, shift_ratio 1/clip_frames), bit for bit, but
faster through paddle.inference on CPU: that op has no oneDNN kernel, so every call leaves oneDNN's
fused, blocked-layout convolutions (PP-TSM R50 ran 1.0-1.3x faster in fp32 and 1.2-1.6x in bf16
this way, docs/BENCHMARKS.md "Backbones"). Only ops Paddle 2.6 has too (reshape, slice, concat, zeros_like).
"""
import numpy as np
import paddle


def shifted_channels(channels, clip_frames):
    """(end of the channels shifted forward, end of those shifted back): the op's own float32
    arithmetic, int(C * ratio) and int(2C * ratio), so both agree on every channel count."""
    ratio = np.float32(1.0 / clip_frames)
    return int(np.float32(channels) * ratio), int(np.float32(2 * channels) * ratio)


def temporal_shift(x, clip_frames):
    """x [N, C, H, W], N a multiple of clip_frames (each run of that many images one clip, in time
    order): the first C/clip_frames channels come from the frame before, the next as many from the
    frame after, zeros past the clip's ends; the other channels stay."""
    _, channels, height, width = x.shape
    forward_end, backward_end = shifted_channels(channels, clip_frames)
    clips = x.reshape([-1, clip_frames, channels, height, width])
    # Two concats, not one zero-padded copy sliced twice: Paddle 2.6's bf16 oneDNN slices get that wrong.
    from_before = paddle.concat([paddle.zeros_like(clips[:, :1, :forward_end]),
                                 clips[:, :clip_frames - 1, :forward_end]], axis=1)
    from_after = paddle.concat([clips[:, 1:, forward_end:backward_end],
                                paddle.zeros_like(clips[:, :1, forward_end:backward_end])], axis=1)
    return paddle.concat([from_before, from_after, clips[:, :, backward_end:]],
                         axis=2).reshape([-1, channels, height, width])

"""Which frames to take from a video, and how to turn them into network input (VideoTag's rule)."""
import bisect

import cv2
import numpy as np
from PIL import Image

from core.errors import InputError

# INFER/TRAIN/VALID/TEST.resize: how a frame reaches short_size before the crop.
#   videotag     VideoTag's reader, exactly: a fixed 4:3 size (341x256 or 256x341) with PIL's
#                bilinear filter; a frame whose short side is already short_size is left as it is.
#                VideoTag's heads were trained on these features.
#   paddlevideo  PaddleVideo's Scale (PP-TSM, PP-TSMv2): the same 4:3 size and filter, but a square
#                frame becomes portrait (256x341) where VideoTag makes it landscape.
#   keep_aspect  the short side scaled to short_size, aspect ratio kept (cv2 bilinear, sides rounded
#                half up as PaddleVideo's Scale with do_round: PP-TSN).
#   decoder      videotag's size, but made by the decoder (FFmpeg's scaler, through decord) as it converts
#                the frame to RGB: a 1080p frame costs about a third as much (no full-size RGB frame,
#                no PIL resize), and pixels differ from videotag's by about 1 gray level on average
#                (tens at sharp edges). Opt-in: heads trained on videotag features see slightly
#                different input. Where the decoder does not scale (OpenCV's reading of a cut file,
#                the training reader) frames are resized as videotag.
RESIZE_MODES = ("videotag", "paddlevideo", "keep_aspect", "decoder")
# INFER.sampling: which frame stands for a segment.
#   uniform   its middle frame (VideoTag): a seek decodes from the keyframe before it, up to a
#             whole group of pictures (250 frames between keyframes is common).
#   keyframe  the keyframe nearest to its middle: one frame decoded per segment, but a frame up to
#             half a GOP away, and segments between the same two keyframes share a frame.
SAMPLING_MODES = ("uniform", "keyframe")

MEAN = np.array([0.485, 0.456, 0.406], dtype="float32")
STD = np.array([0.229, 0.224, 0.225], dtype="float32")
_SCALE = (1.0 / (255.0 * STD)).astype("float32")
_SHIFT = (-MEAN / STD).astype("float32")


def segment_middles(num_frames, seg_num):
    """The middle frame of each of `seg_num` equal segments; frames repeat (i mod n) when the
    video is shorter than `seg_num` frames."""
    if num_frames <= 0:
        raise ValueError("a video with no frames has nothing to sample")
    if num_frames < seg_num:
        return [i % num_frames for i in range(seg_num)]
    step = num_frames // seg_num
    return [(step - 1) // 2 + i * step for i in range(seg_num)]


def nearest_keyframes(middles, key_indices):
    """For each frame index in `middles`, the nearest of the sorted `key_indices` (the earlier on a tie)."""
    if not key_indices:
        raise ValueError("a video without keyframes has nothing to sample")
    nearest = []
    for index in middles:
        after = bisect.bisect_left(key_indices, index)
        candidates = key_indices[max(0, after - 1):after + 1]
        nearest.append(min(candidates, key=lambda key: (abs(key - index), key)))
    return nearest


def check_sampling_mode(mode, where=None):
    if mode not in SAMPLING_MODES:
        raise InputError(f"sampling '{mode}' is not one of {', '.join(SAMPLING_MODES)}", where)


def check_resize_mode(mode, where=None):
    if mode not in RESIZE_MODES:
        raise InputError(f"resize '{mode}' is not one of {', '.join(RESIZE_MODES)}", where)


def videotag_size(width, height, short_size, square_portrait=False):
    """VideoTag's (width, height) for a frame, or None when its short side is already short_size.
    A square is landscape in VideoTag's reader, portrait in PaddleVideo's Scale (square_portrait)."""
    if min(width, height) == short_size:
        return None
    long_side = int(short_size * 4.0 / 3.0)
    portrait = width < height or (square_portrait and width == height)
    return (short_size, long_side) if portrait else (long_side, short_size)


def resize_videotag(frame, short_size, square_portrait=False):
    size = videotag_size(frame.shape[1], frame.shape[0], short_size, square_portrait)
    if size is None:
        return frame
    # PIL's BILINEAR widens its kernel when shrinking (antialiasing); cv2's INTER_LINEAR does not,
    # which puts it up to 84 gray levels away from what VideoTag's heads saw.
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def resize(frame, short_size, mode="videotag"):
    if mode == "keep_aspect":
        return resize_short_side(frame, short_size)
    return resize_videotag(frame, short_size, square_portrait=mode == "paddlevideo")


def resize_short_side(frame, short_size):
    """Scale so the short side is `short_size`, keeping the aspect ratio."""
    height, width = frame.shape[:2]
    if min(height, width) == short_size:
        return frame
    scale = short_size / min(height, width)
    size = (max(short_size, int(width * scale + 0.5)), max(short_size, int(height * scale + 0.5)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def center_crop(frame, size):
    height, width = frame.shape[:2]
    # Python 3 round() as VideoTag: halves to even, (341 - 224) / 2 = 58.5 -> 58.
    top, left = int(round((height - size) / 2)), int(round((width - size) / 2))
    return frame[top:top + size, left:left + size]


def crop_frames(frames, short_size, target_size, mode="videotag"):
    """uint8 RGB [T, H, W, 3] -> uint8 RGB [T, target, target, 3]: resize (see RESIZE_MODES), centre crop."""
    out = np.empty((len(frames), target_size, target_size, 3), dtype="uint8")
    for i, frame in enumerate(frames):
        out[i] = center_crop(resize(frame, short_size, mode), target_size)
    return out


def normalize(crops):
    """uint8 RGB [N, S, S, 3] -> float32 [N, 3, S, S] in [0, 1], ImageNet mean/std normalised.
    Kept apart from cropping so frames wait in the queue as uint8 (a quarter of the memory)."""
    crops = np.asarray(crops)
    # One fused multiply-add per channel into the NCHW output: (x / 255 - mean) / std without
    # the float32 NHWC temporaries and transposed copy (9x faster; it runs between network calls).
    images = np.empty((crops.shape[0], 3) + crops.shape[1:3], dtype="float32")
    for channel in range(3):
        np.multiply(crops[..., channel], _SCALE[channel], out=images[:, channel])
        images[:, channel] += _SHIFT[channel]
    return images


def preprocess(frames, short_size, target_size, mode="videotag"):
    """Decoded RGB frames -> network input, in one call (for tests and one-off use)."""
    return normalize(crop_frames(frames, short_size, target_size, mode))

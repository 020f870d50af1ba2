"""Decode only a video's sampled frames, a few at a time, so memory does not grow with its length."""
import os

import decord
import numpy as np

from .sampling import crop_frames, segment_middles

DECODE_CHUNK = 16  # full-resolution frames held at once (about 100 MB at 1080p)


class VideoError(Exception):
    """A video that cannot be used; the message is the reason shown in failures.txt."""


def first_line(err):
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def read_sampled_crops(path, seg_num, short_size, target_size, resize="videotag"):
    """Return (uint8 RGB crops [seg_num, target, target, 3], info) for the segment-middle frames.

    info: source path, fps, frame_count and the sampled frame indices. resize: see sampling.RESIZE_MODES."""
    if not os.path.exists(path):
        raise VideoError("file not found")
    if not os.path.isfile(path):
        raise VideoError("not a file")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file")
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as err:  # decord raises its own DECORDError and RuntimeErrors
        if "cannot find video stream" in str(err):
            raise VideoError("no video stream (no frames, or not a video)") from None
        raise VideoError(f"cannot open as a video: {first_line(err)}") from None
    frame_count = len(reader)
    if frame_count == 0:
        raise VideoError("video has no frames")
    indices = segment_middles(frame_count, seg_num)
    # Short videos repeat frames: decode each distinct one once, in order (seeks only forward).
    distinct = sorted(set(indices))
    crop_of = {}
    for start in range(0, len(distinct), DECODE_CHUNK):
        wanted = distinct[start:start + DECODE_CHUNK]
        try:
            frames = reader.get_batch(wanted).asnumpy()
        except Exception as err:
            raise VideoError(f"cannot decode frames {wanted[0]}-{wanted[-1]} of {frame_count}: "
                             f"{first_line(err)}") from None
        crop_of.update(zip(wanted, crop_frames(frames, short_size, target_size, resize)))
        del frames
    crops = np.stack([crop_of[i] for i in indices])
    info = {"source": path, "fps": float(reader.get_avg_fps()), "frame_count": frame_count,
            "indices": indices}
    return crops, info

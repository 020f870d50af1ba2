"""Decode only a video's sampled frames, a few at a time, so memory does not grow with its length.

A video is used only when it is whole: a file that ends before what its container announces
(an interrupted download), a damaged one and a non-video fail with a reason in a user's words;
the decoder's own text goes to failures.txt as the detail, never to the terminal.
"""
import bisect
import errno
import os
import re
import struct

import cv2
import decord
import numpy as np
# decord's own count of the frames it has handed out (not in its Python API; C++ GetCurrentPosition)
from decord.video_reader import _CAPI_VideoReaderGetCurrentPosition as _decoder_position

from core.log import log

from .sampling import crop_frames, nearest_keyframes, segment_middles, videotag_size

DECODE_CHUNK = 16  # full-resolution frames held at once (about 100 MB at 1080p)
# Frames a complete video may lack against its container's count (edit lists, a dropped last frame).
MISSING_FRAMES_TOLERATED = 2
MP4_SUFFIXES = (".mp4", ".m4v", ".mov", ".3gp")

decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's per-packet lines: one broken file printed 199


class VideoError(Exception):
    """A video that cannot be used: `reason` (shown on the terminal and in failures.txt) and
    `detail` (the decoder's words, kept in failures.txt only)."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def first_line(err):
    """The first line of decord's message, without its '[12:00:00] /project/src/...cc:218:' prefixes."""
    text = str(err).strip().splitlines()
    if not text:
        return type(err).__name__
    return re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", text[0]).strip()[:300]


def missing_file_reason(path):
    """Why `path` cannot be opened: a broken or looping link, a folder, nothing there."""
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return "symbolic link loop (the link points back to itself)"
            return f"broken symbolic link (points to {os.readlink(path)}, which does not exist)"
    if not os.path.exists(path):
        return "file not found"
    if not os.path.isfile(path):
        return "not a file"
    if os.path.getsize(path) == 0:
        return "empty file"
    return None


def looks_like_text(head):
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start > len(head) - 4  # a character cut at the end of the sample
    return True


def megabytes(size):
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} KB"


def mp4_boxes(path, size):
    """(top-level box types, the size the boxes announce) of an MP4/MOV file; None when a box has
    an impossible size (not MP4 structure)."""
    boxes, offset = set(), 0
    with open(path, "rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            box_size, kind = struct.unpack(">I4s", f.read(8))
            if box_size == 1:
                box_size = struct.unpack(">Q", f.read(8))[0]
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8:
                return None
            boxes.add(kind)
            offset += box_size
    return boxes, max(offset, size)


def is_mp4(path, head):
    return path.lower().endswith(MP4_SUFFIXES) or head[4:8] == b"ftyp"


def cut_short(size, announced):
    return f"file is cut short ({megabytes(size)} of {megabytes(announced)})"


def unopenable_reason(path):
    """A reason for a file FFmpeg will not open, found without FFmpeg (which would print its own)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if looks_like_text(head):
        return "a text file, not a video"
    if not is_mp4(path, head):
        return None
    size = os.path.getsize(path)
    layout = mp4_boxes(path, size)
    if layout is None:
        return "damaged MP4 structure (a box of impossible size)"
    boxes, announced = layout
    if b"moov" in boxes:
        return None
    if announced > size:
        return f"{cut_short(size, announced)} and its index (moov) is missing: an interrupted download or copy?"
    return "MP4 without its index (moov): not a complete video"


def open_failure(path, err):
    """The reason for a file decord would not open: a cut MP4 says so, others say what we know."""
    words = first_line(err)
    if "cannot find video stream" in words:
        return VideoError("no video stream (no frames, or not a video)", words)
    if "Failed to measure duration/frame-count" in words:
        return VideoError("its container gives no frame count or duration that the decoder (decord) can use: "
                          "remux it, e.g. ffmpeg -i IN -c copy OUT.mp4", words)
    return VideoError(cut_mp4_reason(path) or "cannot open as a video: damaged, or not a video file", words)


def cut_mp4_reason(path):
    """The "file is cut short" reason for an MP4 whose boxes announce more bytes than it has, else None."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        layout = mp4_boxes(path, size) if is_mp4(path, f.read(8)) else None
    if layout is None or layout[1] <= size:
        return None
    return f"{cut_short(size, layout[1])}: truncated download?"


def announced_frames(path):
    """(frame count, fps) the container declares, 0 when it does not (OpenCV reads the header
    quietly; decord counts only the frames actually in the file)."""
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            return 0, 0.0
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))), float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()


def decoder_size(path, short_size):
    """(width, height) for the decoder to scale frames to (resize "decoder": VideoTag's 4:3 size), or
    (-1, -1), full size, when they need no resize or OpenCV cannot tell their size. OpenCV and decord
    both give the displayed size (a rotated phone video's portrait frame)."""
    capture = cv2.VideoCapture(path)
    try:
        width, height = (int(capture.get(prop)) for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        return -1, -1
    return videotag_size(width, height, short_size) or (-1, -1)


def open_reader(path, scale_short_side=None):
    """A decord reader of `path`; with `scale_short_side`, one whose decoder scales frames to
    VideoTag's 4:3 size for that short side (resize "decoder")."""
    reason = missing_file_reason(path)
    if reason:
        raise VideoError(reason)
    reason = unopenable_reason(path)
    if reason:
        raise VideoError(reason)
    width, height = decoder_size(path, scale_short_side) if scale_short_side else (-1, -1)
    try:
        # One decoder thread: a sampled frame is one seek and a few frames, which FFmpeg's frame
        # threads cannot share out (measured: 2 threads, no faster per frame); videos decode in parallel instead.
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1, width=width, height=height)
    except Exception as err:  # decord raises its own DECORDError and RuntimeErrors
        raise open_failure(path, err) from None


def check_complete(path, reader, frame_count):
    """VideoError when the file holds fewer frames than its container announces. Complete when
    either the frame counts or the durations agree: containers without a frame count (MPEG-TS,
    Matroska) announce duration x frame rate, which a variable frame rate makes too many frames."""
    announced, fps = announced_frames(path)
    if announced - frame_count <= MISSING_FRAMES_TOLERATED or fps <= 0:
        return
    ends = float(reader.get_frame_timestamp(frame_count - 1)[1])
    total = announced / fps
    if ends >= total - max(MISSING_FRAMES_TOLERATED / fps, 0.02 * total):
        return
    raise VideoError(f"file ends at {ends:.1f} s of {total:.1f} s: truncated download?",
                     f"{frame_count} of {announced} frames present")


def decode_error(path, err, wanted, frame_count):
    """The reason for frames decord could not decode: a cut file first (decord may count the
    frames its index announces), then what the decoder said."""
    words = first_line(err)
    span = f"frames {wanted[0]}-{wanted[-1]} of {frame_count}"
    cut = cut_mp4_reason(path)
    if cut:
        return VideoError(cut, words)
    if "avcodec_send_packet" in words or "Error sending packet" in words:
        return VideoError(f"damaged video data in {span}: a corrupt file?", words)
    if "DECORD_REWIND_RETRY_MAX" in words:  # decord seeks by packet; MPEG-TS often defeats it
        return VideoError(f"cannot seek to {span} (damaged, or a container such as MPEG-TS the decoder "
                          "cannot seek in): remux it, e.g. ffmpeg -i IN -c copy OUT.mp4", words)
    return VideoError(f"cannot decode {span}", words)


def sampled_indices(reader, frame_count, seg_num, sampling="uniform"):
    """The frame standing for each segment (see sampling.SAMPLING_MODES)."""
    middles = segment_middles(frame_count, seg_num)
    if sampling != "keyframe":
        return middles
    keys = [int(k) for k in reader.get_key_indices() if k < frame_count]
    return nearest_keyframes(middles, keys or [0])  # an index without keyframes: the first frame is one


def exact_frames(reader, indices, reread):
    """uint8 RGB [len(indices), H, W, 3]: the frames at `indices` (ascending), each checked to be
    the one asked for; the indices decord had to re-read are appended to `reread`.

    decord (decord2 3.4.0) can hand out the wrong frame: its seek decodes from the keyframe before,
    and gives up (printing "Failed to skip frames effectively") when its reading thread has queued
    10,000 packets before the decoding thread caught up, then returns whatever frame comes next. Only a file with
    10,000 frames or more after that keyframe can do it; a long skip (long GOP) and a slow decoder
    (1080p, a busy CPU) make it likely. Its frame counter then stops short of the frame asked for,
    which is how we notice; we read that frame again, one frame after another from its keyframe."""
    frames = []
    for index in indices:
        frame = reader.get_batch([index]).asnumpy()[0]  # one at a time: the counter checks each one
        if _decoder_position(reader._handle) != index + 1:
            frame = frame_by_frame(reader, index)
            reread.append(index)
        frames.append(frame)
    return np.stack(frames)


def frame_by_frame(reader, index):
    """Frame `index` decoded from the keyframe before it through decord's next(), which waits for
    the decoder (its seek's skip does not). Costs a colour conversion per frame of the way."""
    keys = reader.get_key_indices()
    key = keys[bisect.bisect_right(keys, index) - 1] if keys and keys[0] <= index else 0
    reader.seek_accurate(key)  # a real seek: decord's counter is past `key` after the failed one
    frame = reader.next()
    for _ in range(index - key):
        frame = reader.next()
    if _decoder_position(reader._handle) != index + 1:
        raise VideoError(f"the decoder (decord) cannot find frame {index}: it lands on another one "
                         "even when reading frame by frame")
    return frame.asnumpy()


def report_rereads(path, reread):
    if reread:
        log.warning(f"{path}: the decoder (decord) landed on the wrong frame when seeking to {len(reread)} "
                    f"sampled frame(s) (first: frame {reread[0]}); read them again frame by frame, so they are right "
                    "(decord's own 'Failed to skip frames effectively' lines are about this)")


def read_frames(reader, indices, path):
    """exact_frames for a whole video: its sampled frames, and one line when some had to be re-read."""
    reread = []
    frames = exact_frames(reader, indices, reread)
    report_rereads(path, reread)
    return frames


def read_sampled_crops(path, seg_num, short_size, target_size, resize="videotag", accept_partial=False,
                       sampling="uniform"):
    """Return (uint8 RGB crops [seg_num, target, target, 3], info) for the segment-middle frames
    (or, with sampling "keyframe", the keyframes nearest to them).

    info: source path, fps, frame_count, the sampled frame indices, their start times in seconds
    (`times`, from the container: right for variable frame rates) and `duration` in seconds.
    resize: see sampling.RESIZE_MODES. `accept_partial`: use what a cut file holds instead of failing it."""
    reader = open_reader(path, short_size if resize == "decoder" else None)
    frame_count = len(reader)
    if frame_count == 0:
        raise VideoError("video has no frames")
    try:
        check_complete(path, reader, frame_count)
    except VideoError:
        if not accept_partial:
            raise
        return read_partial(path, seg_num, short_size, target_size, resize)
    indices = sampled_indices(reader, frame_count, seg_num, sampling)
    # Short videos repeat frames: decode each distinct one once, in order (seeks only forward).
    distinct = sorted(set(indices))
    crop_of, reread = {}, []
    for start in range(0, len(distinct), DECODE_CHUNK):
        wanted = distinct[start:start + DECODE_CHUNK]
        try:
            frames = exact_frames(reader, wanted, reread)
        except VideoError:
            raise
        except Exception as err:  # decord's errors on damaged or missing data
            raise decode_error(path, err, wanted, frame_count) from None
        crop_of.update(zip(wanted, crop_frames(frames, short_size, target_size, resize)))
        del frames
    report_rereads(path, reread)
    crops = np.stack([crop_of[i] for i in indices])
    times = reader.get_frame_timestamp(indices)[:, 0].astype("float64")
    info = {"source": path, "fps": float(reader.get_avg_fps()), "frame_count": frame_count,
            "indices": indices, "times": times.tolist(),
            "duration": float(reader.get_frame_timestamp(frame_count - 1)[1])}
    return crops, info


def read_partial(path, seg_num, short_size, target_size, resize):
    """read_sampled_crops of a file that holds fewer frames than it announces (accept_partial): its
    frames are read from the start with OpenCV, which decodes a cut file the same way every time
    (decord's seeks into one give a different number of frames from run to run). Two passes: the
    frames that decode, then the sampled ones; segment middles (a cut file's keyframes are few)."""
    frame_count = sum(1 for _ in _opencv_frames(path))
    if frame_count == 0:
        raise VideoError("no frame of this file decodes: damaged?")
    indices = segment_middles(frame_count, seg_num)
    wanted = set(indices)
    crop_of = {}
    for index, frame in enumerate(_opencv_frames(path, stop=max(wanted) + 1)):
        if index in wanted:
            crop_of[index] = crop_frames(frame[None, :, :, ::-1], short_size, target_size, resize)[0]  # BGR->RGB
    fps = announced_frames(path)[1] or 25.0  # a header without a frame rate: assume 25
    info = {"source": path, "fps": fps, "frame_count": frame_count, "indices": indices,
            "times": [i / fps for i in indices], "duration": frame_count / fps}
    return np.stack([crop_of[i] for i in indices]), info


def _opencv_frames(path, stop=None):
    """The decoded BGR frames of `path` from the first, until one does not decode (or `stop`)."""
    capture = cv2.VideoCapture(path)
    try:
        index = 0
        while stop is None or index < stop:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
            index += 1
    finally:
        capture.release()

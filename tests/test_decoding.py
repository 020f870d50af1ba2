"""Opt-in decoding modes (INFER.resize: decoder), the int8 predictor's quiet creation, and exact frames where
decord's seek lands on the wrong one, on real mp4s."""
import os
import shutil
import subprocess

import extractor  # noqa: F401  (before paddle)
import cv2
import decord
import numpy as np
import pytest

from core.config import load_config
from core.errors import InputError
from extractor import cli, predictor
from extractor.sampling import check_resize_mode, crop_frames
from extractor.video import open_reader, read_sampled_crops
from videos import write_video


@pytest.fixture(scope="module")
def wide_clip(tmp_path_factory):
    """640x360, 24 frames: VideoTag's size for short side 96 is 128x96."""
    return write_video(str(tmp_path_factory.mktemp("clips") / "wide.mp4"), num_frames=24, height=360, width=640)


def test_decoder_resize_scales_in_the_decoder_close_to_videotag(wide_clip):
    assert open_reader(wide_clip, 96)[0].shape == (96, 128, 3)  # the decoder gives VideoTag's 4:3 size
    assert open_reader(wide_clip)[0].shape == (360, 640, 3)
    exact, exact_info = read_sampled_crops(wide_clip, 6, 96, 80)
    scaled, scaled_info = read_sampled_crops(wide_clip, 6, 96, 80, resize="decoder")
    assert scaled.shape == exact.shape == (6, 80, 80, 3)
    assert scaled_info["indices"] == exact_info["indices"]
    difference = np.abs(scaled.astype(int) - exact)
    assert 0 < difference.mean() < 3  # another filter (FFmpeg's scaler), the same picture


def test_decoder_resize_is_a_known_mode_and_default_stays_videotag():
    check_resize_mode("decoder")
    with pytest.raises(InputError, match="resize 'fast' is not one of videotag, paddlevideo, keep_aspect, decoder"):
        check_resize_mode("fast")
    assert load_config(cli.DEFAULT_CONFIG, [], cli.DEFAULT_CONFIG).INFER.get("resize", "videotag") == "videotag"


def test_int8_pass_reports_are_held_back_and_other_lines_kept(capfd):
    with predictor.without_pass_reports():
        os.write(2, b"\x1b[37m---    squashed 6 dequantize-quantize pairs\x1b[0m\n")
        os.write(2, b"---    quantized 37 fused_conv2d ops \n")
        os.write(2, b"W1126 a real warning\n")
    os.write(2, b"---    squashed 1 quantize op\n")  # outside the block: untouched
    assert capfd.readouterr().err == "W1126 a real warning\n---    squashed 1 quantize op\n"


def test_pass_report_filter_gives_stderr_back_after_an_error(capfd):
    with pytest.raises(RuntimeError):
        with predictor.without_pass_reports():
            os.write(2, b"E1126 what went wrong\n")
            raise RuntimeError("predictor failed")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "E1126 what went wrong\nafter\n"


@pytest.fixture(scope="module")
def long_gop_clip(tmp_path_factory):
    """160x90, 10,600 frames, one keyframe, B-frames: decord's seek to frame 2649 gives up part way
    (its reading thread queues 10,000 packets while the decoder is still skipping), as it does on
    10-minute 1080p clips with a keyframe every 250 frames. Encodes in about 2 s."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    path = str(tmp_path_factory.mktemp("long") / "long_gop.mp4")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
                    "-frames:v", "10600", "-c:v", "libx264", "-preset", "ultrafast", "-g", "100000", "-bf", "3",
                    "-x264-params", "scenecut=0", "-pix_fmt", "yuv420p", path], check=True)
    return path


def opencv_frames(path, indices):
    """RGB frames at `indices`, read in order from the first (no seeking: the ground truth)."""
    capture, frames = cv2.VideoCapture(path), {}
    for index in range(max(indices) + 1):
        ok, frame = capture.read()
        assert ok, f"OpenCV stopped at frame {index}"
        if index in indices:
            frames[index] = frame[:, :, ::-1]
    capture.release()
    return frames


def test_sampled_frames_are_the_right_ones_where_decord_seeks_wrong(long_gop_clip, logs):
    """decord's fault is a race (its reading thread against its decoder), so it shows on most reads,
    not all: three tries each of plain decord and of ours, every one of ours right."""
    truth = opencv_frames(long_gop_clip, {2649, 7949})
    plain = [decord.VideoReader(long_gop_clip, ctx=decord.cpu(0), num_threads=1).get_batch([2649]).asnumpy()[0]
             for _ in range(3)]
    assert not all(np.array_equal(frame, truth[2649]) for frame in plain), \
        "decord seeks right here now: the clip no longer shows the fault"
    for _ in range(3):
        crops, info = read_sampled_crops(long_gop_clip, 2, 90, 90)
        assert info["indices"] == [2649, 7949]
        assert np.array_equal(crops, crop_frames(np.stack([truth[2649], truth[7949]]), 90, 90))  # exact
    assert 1 <= len(logs.warnings) <= 3  # one line a video whose seek went wrong, naming it
    for line in logs.warnings:
        assert line.startswith(f"{long_gop_clip}: the decoder (decord) landed on the wrong frame when seeking to 1 ")

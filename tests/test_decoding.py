"""Opt-in decoding modes (INFER.resize: decoder) and the int8 predictor's quiet creation, on real mp4s."""
import os

import extractor  # noqa: F401  (before paddle)
import numpy as np
import pytest

from core.config import load_config
from core.errors import InputError
from extractor import cli, predictor
from extractor.sampling import check_resize_mode
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

"""Stage one with another backbone (MODEL.backbone): temporal-shift clips, the extraction record,
export and tagging. PP-TSM (ResNet-50-vd with shift) and PP-TSMv2 on 64-pixel crops, a few frames."""
import dataclasses
import json
import logging

import videotag  # noqa: F401  (before paddle: OMP threads, h5py on Paddle 2.6)
import numpy as np
import paddle
import pytest

import predict as predict_cli
from core.config import load_config
from extractor import cli as extractor_cli
from extractor.pipeline import InferSettings, clip_order, iter_video_features
from extractor.predictor import (CPU_FLAGS_NEEDED, CalibrationBatches, DygraphBackbone, build_model, cpu_flags,
                                 create_backbone)
from extractor.sampling import normalize
from extractor.stores import write_settings
from extractor.video import read_sampled_crops
from extractor.videos import find_videos
from videotag import calibrate, export as export_cli
from videotag.models import build_head, default_config_path
from videos import write_video

CLIP = 4  # MODEL.num_seg of the shift backbones here
SEG_NUM = 6  # not a multiple of CLIP: the last windows are padded
TINY = ["INFER.seg_num=6", "INFER.short_size=64", "INFER.target_size=64", "INFER.num_workers=1",
        "MODEL.num_layers=50", f"MODEL.num_seg={CLIP}"]
HEAD = ["MODEL.embedding_size=8", "MODEL.lstm_size=8", "MODEL.hidden_sizes=[16, 8]", "MODEL.num_classes=6"]
SHIFT_TSM, SHIFT_V2 = "pptsm", "pptsmv2"


@pytest.fixture(autouse=True)
def info_logs(caplog):
    caplog.set_level(logging.INFO)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    paths = [write_video(str(folder / f"v{i}.mp4"), 9 + 4 * i, height=64, width=80, seed=i) for i in range(3)]
    listing = folder / "videos.list"
    listing.write_text("".join(f"v{i}.mp4 {i}\n" for i in range(len(paths))))  # ids v0, v1, v2
    return {"paths": paths, "list": listing, "folder": folder}


def section(name):
    return {"backbone": name, "num_layers": 50, "num_seg": CLIP}


def test_strided_windows_span_the_video_and_cover_every_frame_once():
    source, rows = clip_order(10, 4)  # W = 3 windows of 4, two padded positions
    assert source.reshape(3, 4).tolist() == [[0, 3, 6, 9], [1, 4, 7, 9], [2, 5, 8, 9]]
    assert rows.reshape(3, 4).tolist() == [[0, 3, 6, 9], [1, 4, 7, -1], [2, 5, 8, -1]]
    for count, clip in [(300, 8), (16, 8), (3, 8), (17, 16)]:
        source, rows = clip_order(count, clip)
        assert len(source) % clip == 0 and sorted(rows[rows >= 0].tolist()) == list(range(count))
        assert (source[rows >= 0] == rows[rows >= 0]).all()


def active(model):
    """Batch norms with scales and statistics away from their init, so every block (and its shift) counts."""
    paddle.seed(1)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer.weight.set_value(paddle.uniform(layer.weight.shape, min=0.5, max=1.5))
            layer._mean.set_value(paddle.uniform(layer._mean.shape, min=-0.1, max=0.1))
    return model


def clip_alone_features(backbone, path, settings):
    """Each strided clip of one video through the network on its own, features back in time order."""
    crops, _ = read_sampled_crops(path, settings.seg_num, settings.short_size, settings.target_size)
    source, rows = clip_order(len(crops), CLIP)
    features = np.zeros((len(crops), backbone.feature_dim), "float32")
    for start in range(0, len(source), CLIP):
        out = backbone(normalize(crops[source[start:start + CLIP]]))
        keep = rows[start:start + CLIP] >= 0
        features[rows[start:start + CLIP][keep]] = out[keep]
    return features, crops


def test_shift_features_equal_each_clip_alone_whatever_the_batching(videos, caplog):
    backbone = DygraphBackbone(active(build_model(section(SHIFT_TSM))))
    assert (backbone.feature_dim, backbone.clip_frames) == (2048, CLIP)
    settings = InferSettings(seg_num=SEG_NUM, short_size=64, target_size=64, batch_size=CLIP, num_workers=1)
    alone = [clip_alone_features(backbone, path, settings) for path in videos["paths"]]
    calls = []

    def counted(images):
        calls.append(len(images))
        return backbone(images)
    counted.clip_frames = CLIP
    # batch 5: rounded to 4, one clip per call; 8 and 24: clips of consecutive videos share calls
    for batch_size in (5, 8, 24):
        calls.clear()
        batched = dataclasses.replace(settings, batch_size=batch_size)
        results = list(iter_video_features(videos["paths"], batched, counted))
        assert all(call % CLIP == 0 for call in calls) and sum(calls) == 3 * 8  # 6 frames padded to 2 clips
        for result, (expected, _) in zip(results, alone):
            assert result.ok and result.features.shape == (SEG_NUM, 2048)
            np.testing.assert_allclose(result.features, expected, rtol=1e-4, atol=1e-5)
    assert "INFER.batch_size 5 is not a whole number of 4-frame clips: running 4" in caplog.text
    # The clip matters: the same frames shifted in consecutive groups (not strided) give other features.
    crops = alone[0][1]
    consecutive = backbone(normalize(np.concatenate([crops[:4], crops[2:6]])))
    assert not np.allclose(consecutive[:4], alone[0][0][:4], atol=1e-3)


def extract_args(videos, save_dir, *overrides):
    argv = ["--filelist", str(videos["list"]), "--save_dir", str(save_dir), "--extractor_backend", "dygraph"]
    for item in TINY + list(overrides):
        argv += ["-o", item]
    return extractor_cli.parse_args(argv)


def test_extraction_records_the_backbone_and_another_one_extracts_again(videos, tmp_path, caplog):
    save_dir = tmp_path / "features"
    assert extractor_cli.extract(extract_args(videos, save_dir, f"MODEL.backbone={SHIFT_V2}")) == 0
    record = json.loads((save_dir / "extraction.json").read_text())
    assert (record["backbone"], record["num_seg"]) == (SHIFT_V2, CLIP) and "depth" not in record
    features = sorted(save_dir.glob("*.npy"))
    assert len(features) == 3 and all(np.load(p).shape == (SEG_NUM, 1280) for p in features)
    # The same settings again: nothing to do.
    assert extractor_cli.extract(extract_args(videos, save_dir, f"MODEL.backbone={SHIFT_V2}")) == 0
    assert "3 videos: 3 already done, 0 to extract" in caplog.text
    # PP-TSMv2 with its temporal attention is another network: extracted again, and recorded.
    assert extractor_cli.extract(extract_args(videos, save_dir, f"MODEL.backbone={SHIFT_V2}",
                                              "MODEL.temporal_attention=true")) == 0
    assert "settings changed (temporal_attention)" in caplog.text
    assert json.loads((save_dir / "extraction.json").read_text())["temporal_attention"] is True
    # Another backbone: its features replace the old ones.
    assert extractor_cli.extract(extract_args(videos, save_dir, "MODEL.backbone=resnet_tsn")) == 0
    assert "settings changed (backbone, depth, num_seg, temporal_attention)" in caplog.text
    assert all(np.load(p).shape == (SEG_NUM, 2048) for p in features)
    record = json.loads((save_dir / "extraction.json").read_text())
    assert "backbone" not in record and "num_seg" not in record and record["depth"] == 50


def test_a_record_without_a_backbone_is_resnet_tsn(videos, tmp_path, caplog):
    """extraction.json written before there was a choice of backbone keeps its features."""
    save_dir = tmp_path / "old"
    save_dir.mkdir()
    args = extract_args(videos, save_dir, "MODEL.backbone=resnet_tsn")
    for i in range(len(videos["paths"])):
        np.save(save_dir / f"v{i}.npy", np.zeros((SEG_NUM, 2048), "float32"))
    old_record = {"weights": "random0-zero-gamma", "depth": 50, "seg_num": SEG_NUM, "short_size": 64,
                  "target_size": 64, "precision": "float32", "engine": "dygraph", "resize": "videotag"}
    write_settings(str(save_dir), old_record)
    assert extractor_cli.extract(args) == 0
    assert "3 videos: 3 already done, 0 to extract" in caplog.text
    assert json.loads((save_dir / "extraction.json").read_text()) == old_record
    # The old record against a PP backbone: extracted again.
    assert extractor_cli.extract(extract_args(videos, save_dir, f"MODEL.backbone={SHIFT_TSM}")) == 0
    assert "settings changed (backbone, num_seg)" in caplog.text


HAS_BF16 = bool(cpu_flags() & set(CPU_FLAGS_NEEDED["bf16"]))
HAS_INT8 = bool(cpu_flags() & set(CPU_FLAGS_NEEDED["int8"]))


@pytest.mark.smoke
@pytest.mark.parametrize("name, precision", [(SHIFT_TSM, "fp32"), (SHIFT_TSM, "bf16"), (SHIFT_V2, "bf16")])
def test_shift_backbones_run_through_paddle_inference_like_dygraph(name, precision, tmp_path):
    """PP-TSM's leaky ReLU crashes one oneDNN fusion of Paddle 3.3 (the predictor leaves it out);
    the shift (extractor/temporal_shift.py) runs in oneDNN's fp32 and bf16 kernels."""
    if precision == "bf16" and not HAS_BF16:
        pytest.skip("this CPU has no bf16 instructions (avx512_bf16 / amx_bf16)")
    model = active(build_model(section(name)))
    exported = create_backbone(model=model, image_size=32, cache_dir=str(tmp_path), max_batch=8, precision=precision)
    assert exported.backend == "inference" and exported.clip_frames == CLIP
    images = np.random.default_rng(0).standard_normal((2 * CLIP, 3, 32, 32)).astype("float32")
    expected = DygraphBackbone(model)(images)
    got = exported(images)
    if precision == "fp32":
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    else:  # bf16 keeps 8 bits of mantissa: close in direction, not in every digit
        cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosine.min() > 0.99 and not np.array_equal(got, expected)


@pytest.mark.skipif(int(paddle.__version__.split(".")[0]) < 3, reason="Paddle 2.6 quantises PP-TSMv2")
def test_int8_is_refused_for_pptsmv2_in_one_line(tmp_path):
    with pytest.raises(extractor_cli.InputError, match=r"int8 is not supported for PP-TSMv2 .*: use --precision fp32"):
        create_backbone(section(SHIFT_V2), None, 64, cache_dir=str(tmp_path), precision="int8")


def test_calibration_frames_of_a_shift_backbone_are_whole_clips_in_extraction_order(videos):
    settings = InferSettings(seg_num=SEG_NUM, short_size=64, target_size=64)
    frames, sources = calibrate.calibration_frames(find_videos(str(videos["folder"])), 7, settings, CLIP)
    assert len(frames) == 8 and len(sources) == 2  # 7 rounded up to 2 clips, one from each of two videos
    crops, _ = read_sampled_crops(sources[0], CLIP, 64, 64)
    np.testing.assert_array_equal(frames[:CLIP], normalize(crops))
    # batches of whole clips
    assert [len(b["images"]) for b in CalibrationBatches(np.zeros((12, 1)), 3)()] == [6, 6]


@pytest.mark.skipif(not HAS_INT8, reason="this CPU has no int8 dot-product instructions (VNNI / AMX)")
def test_pptsm_calibrates_to_int8_on_whole_clips_close_to_fp32(videos, tmp_path, capsys):
    weights = tmp_path / "pptsm.pdparams"
    paddle.save(active(build_model(section(SHIFT_TSM))).state_dict(), str(weights))
    argv = ["--video_path", str(videos["folder"]), "--frames", "8", "--check_videos", "2", "--extractor_weights",
            str(weights), "--cache_dir", str(tmp_path / "cache")]
    argv += [a for item in TINY + [f"MODEL.backbone={SHIFT_TSM}"] for a in ("--extractor_override", item)]
    report = calibrate.calibrate(calibrate.parse_args(argv))
    assert report["frames"] == 2 * SEG_NUM and 0.9 < report["cosine_min"] < 1.0


@pytest.mark.smoke
def test_export_and_inference_dir_tag_like_dygraph(videos, tmp_path):
    """A PP-TSMv2 (1280-d) stage one under an AttentionLSTM head: exported, then tagged from the export."""
    head_cfg = HEAD + ["MODEL.feature_dims=[1280]"]
    paddle.seed(0)
    head = tmp_path / "head.pdparams"
    paddle.save(build_head(load_config(default_config_path("AttentionLSTM"), head_cfg).MODEL).state_dict(), str(head))
    weights = tmp_path / "pptsmv2.pdparams"
    paddle.save(active(build_model(section(SHIFT_V2))).state_dict(), str(weights))
    common = ["--model", "AttentionLSTM", "--extractor_weights", str(weights)]
    for item in head_cfg:
        common += ["-o", item]
    for item in TINY + [f"MODEL.backbone={SHIFT_V2}", "INFER.batch_size=8"]:
        common += ["--extractor_override", item]
    dygraph = tmp_path / "dygraph"
    assert predict_cli.main(common + ["--weights", str(head), "--filelist", str(videos["list"]), "--save_dir",
                                      str(dygraph), "--extractor_backend", "dygraph", "--topk", "3"]) == 0
    export_dir = tmp_path / "inference"
    export_cli.main(common + ["--weights", str(head), "--save_dir", str(export_dir)])
    manifest = json.loads((export_dir / "export.json").read_text())
    assert manifest["extractor"]["MODEL"]["backbone"] == SHIFT_V2
    exported = tmp_path / "exported"
    assert predict_cli.main(["--model", "AttentionLSTM", "--inference_dir", str(export_dir), "--topk", "3",
                             "--filelist", str(videos["list"]), "--save_dir", str(exported)]) == 0
    lines = [[json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
             for folder in (dygraph, exported)]
    assert len(lines[0]) == 3 and [r["video"] for r in lines[0]] == [r["video"] for r in lines[1]]
    for a, b in zip(*lines):
        assert [t["class_id"] for t in a["tags"]] == [t["class_id"] for t in b["tags"]]
        np.testing.assert_allclose([t["probability"] for t in a["tags"]], [t["probability"] for t in b["tags"]],
                                   atol=1e-4)


def test_a_head_of_another_feature_size_is_refused_before_any_video(videos, tmp_path, capsys):
    argv = ["--model", "AttentionLSTM", "--weights", str(tmp_path / "none.pdparams"), "--filelist",
            str(videos["list"]), "--save_dir", str(tmp_path / "out")]
    for item in HEAD:
        argv += ["-o", item]
    for item in TINY + [f"MODEL.backbone={SHIFT_V2}"]:
        argv += ["--extractor_override", item]
    with pytest.raises(SystemExit) as stopped:
        predict_cli.main(argv)
    assert stopped.value.code == 2
    assert "the extractor's one 1280-d feature (PP-TSMv2 (PP-LCNetV2, temporal shift))" in capsys.readouterr().err
    assert not (tmp_path / "out" / "predictions.jsonl").exists()

"""INFER.precision (fp32, bf16, int8) and `bash run.sh calibrate`, on real decoded frames of a tiny library."""
import os
import shutil
import subprocess

import videotag  # noqa: F401  (before paddle: OMP threads, h5py on Paddle 2.6)
import numpy as np
import paddle
import pytest

from core.config import load_config
from core.errors import InputError
from extractor import cli as extractor_cli
from extractor import predictor
from extractor.pipeline import InferSettings, backbone_from_config, iter_video_features
from extractor.sampling import nearest_keyframes, segment_middles
from extractor.stores import read_settings
from extractor.video import read_sampled_crops
from extractor.videos import find_videos
from videotag import calibrate, export, tagging
from videotag import cli as videotag_cli
from videotag.models import build_head, default_config_path
from videotag.synthetic import make_library
from videos import frame_pattern

# ResNet-50 at 64 pixels: the smallest backbone whose reduced-precision kernels are the real ones.
EXTRACT = ["INFER.seg_num=4", "INFER.short_size=64", "INFER.target_size=64", "INFER.batch_size=16",
           "MODEL.num_layers=50"]
HEAD = ["MODEL.embedding_size=16", "MODEL.lstm_size=16", "MODEL.hidden_sizes=[32, 16]", "MODEL.num_classes=18"]
HAS_BF16 = bool(predictor.cpu_flags() & set(predictor.CPU_FLAGS_NEEDED["bf16"]))
HAS_INT8 = bool(predictor.cpu_flags() & set(predictor.CPU_FLAGS_NEEDED["int8"]))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """6 synthetic videos, backbone weights whose residual branches all work, a fresh tiny head."""
    folder = tmp_path_factory.mktemp("library")
    make_library(str(folder), num_videos=6, seconds=2.0)
    model = predictor.build_model(50)
    # The random init zeroes each block's last BN scale (blocks start as identities): give them a
    # scale, or most of the network would not be compared at all.
    paddle.seed(1)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer.weight.set_value(paddle.uniform(layer.weight.shape, min=0.5, max=1.0))
    weights = folder / "resnet50.pdparams"
    paddle.save(model.state_dict(), str(weights))
    paddle.seed(0)
    head = folder / "head.pdparams"
    paddle.save(build_head(load_config(default_config_path("AttentionLSTM"), HEAD).MODEL).state_dict(), str(head))
    return {"videos": folder / "videos", "weights": str(weights), "head": str(head),
            "cache": str(tmp_path_factory.mktemp("cache"))}


def extractor_config(precision="fp32"):
    return load_config(extractor_cli.DEFAULT_CONFIG, EXTRACT + [f"INFER.precision={precision}"],
                       extractor_cli.DEFAULT_CONFIG)


def features_of(library, precision, videos, backbone=None):
    cfg = extractor_config(precision)
    backbone = backbone or predictor.create_backbone(50, library["weights"], 64, cache_dir=library["cache"],
                                                     precision=precision)
    return {r.video.path: r.features for r in iter_video_features(videos, InferSettings.from_config(cfg), backbone)}


def cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.smoke
def test_precision_flag_reaches_the_config_of_extract_and_tag():
    args = extractor_cli.parse_args(["--video_path", "v", "--save_dir", "s", "--precision", "bf16"])
    assert args.override == ["INFER.precision=bf16"]
    cfg = load_config(args.config, args.override, extractor_cli.DEFAULT_CONFIG)
    assert InferSettings.from_config(cfg).precision == "bf16"
    tag = videotag_cli.parser("tag", "predict.py")
    tagging.add_arguments(tag)
    tag = tag.parse_args(["--model", "AttentionLSTM", "-o", "MODEL.num_classes=3", "--precision", "int8"])
    assert (tag.override, tag.extractor_override) == (["MODEL.num_classes=3"], ["INFER.precision=int8"])
    export = videotag_cli.parser("export", "videotag.export", weights_help="head")
    tagging.add_extractor_arguments(export, runs=False)
    export = export.parse_args(["--model", "AttentionLSTM", "--weights", "w", "--precision", "bf16",
                                "--extractor_override", "INFER.precision=int8"])
    assert export.extractor_override == ["INFER.precision=bf16", "INFER.precision=int8"]  # the later one wins


@pytest.mark.smoke
def test_unknown_or_unsupported_precision_is_refused_in_one_line(monkeypatch, tmp_path):
    settings = InferSettings(precision="fp16")
    with pytest.raises(InputError, match="INFER.precision 'fp16' is not one of fp32, bf16, int8"):
        extractor_cli.check_settings(settings, "tsn.yaml")
    monkeypatch.setattr(predictor, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(InputError, match="no avx512_bf16 or amx_bf16"):
        predictor.check_precision("bf16", "cpu")
    with pytest.raises(InputError, match="avx512_vnni"):
        predictor.check_precision("int8", "cpu")
    predictor.check_precision("fp32", "cpu")  # always runs
    monkeypatch.setattr(predictor, "cpu_flags", lambda: {"avx512_bf16", "avx512_vnni"})
    with pytest.raises(InputError, match="drop --extractor_backend dygraph"):
        predictor.check_precision("bf16", "cpu", "dygraph")
    with pytest.raises(InputError, match="int8 is calibrated for the CPU"):
        predictor.check_precision("int8", "gpu:0")
    with pytest.raises(InputError, match="bash run.sh calibrate"):  # int8 before any calibration
        predictor.create_backbone(50, None, 64, cache_dir=str(tmp_path), precision="int8")


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 instructions (avx512_bf16 / amx_bf16)")
def test_bf16_features_are_close_to_fp32_and_a_changed_precision_re_extracts(library, tmp_path):
    videos = sorted(str(p) for p in library["videos"].rglob("*.mp4"))[:3]
    backbones = {p: predictor.create_backbone(50, library["weights"], 64, cache_dir=library["cache"], precision=p)
                 for p in ("fp32", "bf16")}
    fp32, bf16 = (features_of(library, p, videos, backbones[p]) for p in ("fp32", "bf16"))
    similarity = np.concatenate([cosine(fp32[v], bf16[v]) for v in videos])
    assert similarity.min() > 0.99
    assert not all(np.array_equal(fp32[v], bf16[v]) for v in videos)  # bf16 kernels did run

    argv = ["--video_path", str(library["videos"]), "--save_dir", str(tmp_path), "--cache_dir", library["cache"],
            "--extractor_weights", library["weights"]] + [a for item in EXTRACT for a in ("-o", item)]
    # (the backbones above passed in: creating a oneDNN predictor takes seconds)
    assert extractor_cli.extract(extractor_cli.parse_args(argv), backbones["fp32"]) == 0
    assert read_settings(str(tmp_path))["precision"] == "float32"  # what records made before precision say
    first = np.load(next(tmp_path.rglob("*.npy")))
    assert extractor_cli.extract(extractor_cli.parse_args(argv + ["--precision", "bf16"]), backbones["bf16"]) == 0
    assert read_settings(str(tmp_path))["precision"] == "bfloat16"
    again = np.load(next(tmp_path.rglob("*.npy")))
    assert not np.array_equal(first, again)  # extracted again, not kept
    assert cosine(first, again).min() > 0.99


def test_cpu_threads_sets_the_networks_threads_and_keeps_its_features(library):
    videos = sorted(str(p) for p in library["videos"].rglob("*.mp4"))[:2]
    cfg = load_config(extractor_cli.DEFAULT_CONFIG, EXTRACT + ["INFER.cpu_threads=1", "INFER.num_workers=1"],
                      extractor_cli.DEFAULT_CONFIG)
    one = backbone_from_config(cfg, library["weights"], cache_dir=library["cache"])
    everyone = predictor.create_backbone(50, library["weights"], 64, cache_dir=library["cache"])
    assert (one.cpu_threads, everyone.cpu_threads) == (1, os.cpu_count())
    alone, shared = features_of(library, "fp32", videos, one), features_of(library, "fp32", videos, everyone)
    for video in videos:
        np.testing.assert_allclose(alone[video], shared[video], rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="INFER.cpu_threads"):
        load_config(extractor_cli.DEFAULT_CONFIG, ["INFER.cpu_threads=-1"], extractor_cli.DEFAULT_CONFIG)


@pytest.mark.skipif(not HAS_INT8, reason="this CPU has no int8 dot-product instructions (VNNI / AMX)")
def test_calibrate_reports_agreement_and_extract_uses_the_calibration(library, tmp_path, capsys):
    argv = ["--video_path", str(library["videos"]), "--frames", "12", "--check_videos", "3",
            "--extractor_weights", library["weights"], "--cache_dir", library["cache"],
            "--model", "AttentionLSTM", "--weights", library["head"]]
    argv += [a for item in EXTRACT for a in ("--extractor_override", item)]
    argv += [a for item in HEAD for a in ("-o", item)]
    report = calibrate.calibrate(calibrate.parse_args(argv))
    record = predictor.read_calibration(50, library["weights"], 64, library["cache"])
    assert record["frames"] == 12 and len(record["videos"]) == 6

    # The report's numbers are those of the two backbones on the videos it names.
    videos = calibrate.spread(sorted(find_videos(str(library["videos"])), key=lambda v: v.path), 3)
    fp32, int8 = features_of(library, "fp32", videos), features_of(library, "int8", videos)
    similarity = np.concatenate([cosine(fp32[v.path], int8[v.path]) for v in videos])
    assert report["frames"] == len(similarity) == 12
    assert report["cosine_mean"] == pytest.approx(similarity.mean(), abs=1e-5)
    assert report["cosine_min"] == pytest.approx(similarity.min(), abs=1e-5)
    assert 0.9 < report["cosine_min"] < 1.0
    tags = report["tags"]
    assert tags["videos"] == 3 and 0 <= tags["topk_agreement"] <= 1 and 0 <= tags["top1_same"] <= 3
    assert 0 <= tags["max_probability_difference"] < 0.5
    printed = capsys.readouterr().out
    assert f"mean {report['cosine_mean']:.5f}" in printed and "top-5 agreement" in printed

    save_dir = tmp_path / "features"
    extract = ["--video_path", str(library["videos"]), "--save_dir", str(save_dir), "--cache_dir", library["cache"],
               "--extractor_weights", library["weights"], "--precision", "int8"]
    assert extractor_cli.main(extract + [a for item in EXTRACT for a in ("-o", item)]) == 0
    recorded = read_settings(str(save_dir))
    assert recorded["precision"] == "int8" and recorded["calibration"] == record["digest"]


# ---- INFER.sampling: keyframe ----
@pytest.mark.smoke
def test_nearest_keyframes_picks_the_closest_and_the_earlier_on_a_tie():
    assert nearest_keyframes([0, 2, 3, 7, 12, 40], [0, 5, 10, 30]) == [0, 0, 5, 5, 10, 30]
    assert nearest_keyframes([4], [0, 8]) == [0]  # tie: the earlier


@pytest.mark.smoke
@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="needs ffmpeg")
def test_keyframe_sampling_decodes_the_keyframes_nearest_to_the_segment_middles(tmp_path):
    """A 40-frame H.264 clip with a keyframe every 6 frames, each frame telling its index."""
    path = str(tmp_path / "gop6.mp4")
    frames = np.stack([frame_pattern(i, 48, 64) for i in range(40)])
    subprocess.run(["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-r", "10",
                    "-i", "-", "-c:v", "libx264", "-g", "6", "-keyint_min", "6", "-sc_threshold", "0", "-qp", "0",
                    "-pix_fmt", "yuv444p", path], input=frames.tobytes(), check=True)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=key_frame",
                            "-of", "csv=p=0", path], capture_output=True, text=True, check=True).stdout.split()
    keys = [i for i, flag in enumerate(probe) if flag.strip(",") == "1"]
    assert keys == list(range(0, 40, 6))

    crops, info = read_sampled_crops(path, 5, 48, 48, sampling="keyframe")
    middles = segment_middles(40, 5)  # 3, 11, 19, 27, 35
    assert info["indices"] == [min(keys, key=lambda k: (abs(k - m), k)) for m in middles] == [0, 12, 18, 24, 36]
    expected = np.stack([frame_pattern(i, 48, 64)[:, 8:56] for i in info["indices"]])  # the centre crop
    assert np.abs(crops.astype(int) - expected).mean() < 3  # the frames named, not their neighbours

    uniform, info = read_sampled_crops(path, 5, 48, 48)
    assert info["indices"] == middles
    with pytest.raises(InputError, match="sampling 'nearest' is not one of uniform, keyframe"):
        extractor_cli.check_settings(InferSettings(sampling="nearest"), "tsn.yaml")


@pytest.mark.smoke
def test_export_takes_fp32_and_bf16_and_refuses_int8_in_one_line(monkeypatch):
    monkeypatch.setattr(predictor, "cpu_flags", lambda: {"avx512_bf16", "avx512_vnni"})
    export.check_exportable_precision(extractor_config("bf16"))
    with pytest.raises(InputError, match="int8 backbones are not exported"):
        export.check_exportable_precision(extractor_config("int8"))

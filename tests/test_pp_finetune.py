"""Fine-tuning PaddleVideo's PP backbones (PP-TSM, PP-TSN, PP-TSMv2) through train.py on generated mp4s:
their recipes' options (label smoothing, mixup, multi-scale crop) against hand computations, a few real
training steps of each, the best checkpoint straight into `python -m extractor`, --pretrain from a
PaddleVideo-named checkpoint, and a head trained on the 1280-d features without editing feature_dims."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

import paddlevideo_weights
import train as train_cli
from videos import write_colour_classes
from core.config import CONFIG_DIR, load_config
from core.errors import InputError
from extractor import backbones
from extractor.tsn import TSNTask, soft_targets
from extractor.tsn_data import MIXUP_STREAM, Batch, VideoListSource, dense_clip_frames, multiscale_box
from videotag.models import make_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "paddlevideo"
RECIPES = {"PPTSM": "pptsm.yaml", "PPTSN": "pptsn.yaml", "PPTSMv2": "pptsmv2.yaml"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """4 videos of 2 classes, listed with paths relative to the list."""
    return write_colour_classes(tmp_path_factory.mktemp("pp_videos"), 4, num_frames=10, size=(64, 48))


def tiny(videos, model_name, save_dir, *extra, epochs=1):
    """train.py arguments: the model's own recipe (its config) at tiny shapes, train = valid = test list."""
    overrides = ["MODEL.num_layers=50", "MODEL.num_seg=8", "MODEL.num_classes=2",
                 f"TRAIN.epoch={epochs}", "TRAIN.batch_size=2", "TRAIN.num_workers=2", "TRAIN.multiscale_crop=64",
                 "VALID.batch_size=4", "TEST.batch_size=4"]
    for split in ("TRAIN", "VALID", "TEST"):
        overrides += [f"{split}.filelist={videos / 'train.list'}", f"{split}.short_size=64", f"{split}.target_size=48"]
    seg_num = 3 if model_name == "PPTSN" else 8
    overrides += [f"{split}.seg_num={seg_num}" for split in ("TRAIN", "VALID", "TEST")] + list(extra)
    args = ["--model_name", model_name, "--save_dir", str(save_dir)]
    for item in overrides:
        args += ["-o", item]
    return args


def metrics(save_dir):
    return [json.loads(line) for line in (save_dir / "metrics.jsonl").read_text().splitlines()]


def extract(videos, save_dir, config, weights, seg_num=8):
    args = ["--filelist", str(videos / "train.list"), "--save_dir", str(save_dir), "--extractor_backend", "dygraph",
            "--extractor_config", os.path.join(CONFIG_DIR, config), "--extractor_weights", str(weights),
            "-o", "MODEL.num_layers=50", "-o", "MODEL.num_seg=8", "-o", f"INFER.seg_num={seg_num}",
            "-o", "INFER.short_size=64", "-o", "INFER.target_size=48", "-o", "INFER.batch_size=8"]
    run = subprocess.run([sys.executable, "-m", "extractor", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return {i: np.load(save_dir / "clips" / f"v{i}.npy") for i in range(4)}


# ---- the recipes as configs ----

@pytest.mark.parametrize("model_name", sorted(RECIPES))
def test_recipe_is_a_complete_config_for_training_and_extraction(model_name):
    path = os.path.join(CONFIG_DIR, RECIPES[model_name])
    with open(path) as f:
        recipe = yaml.safe_load(f)
    with open(os.path.join(CONFIG_DIR, "tsn.yaml")) as f:
        schema = yaml.safe_load(f)
    for section, values in schema.items():  # the schema of `run.sh train` and of --extractor_config alike
        assert set(recipe[section]) == set(values), section
    cfg = load_config(path, reference=os.path.join(CONFIG_DIR, "tsn.yaml"))  # as the extractor reads it
    task = make_task(model_name, cfg)
    spec = backbones.get(cfg.MODEL)
    assert task.spec is spec and cfg.MODEL.name == model_name
    assert cfg.TRAIN.lr_schedule == "cosine" and cfg.TRAIN.nesterov and cfg.TRAIN.mixup_alpha == 0.2
    frames = spec.clip_frames(cfg.MODEL)
    assert frames in (0, cfg.TRAIN.seg_num)  # a temporal-shift backbone sees whole clips


def test_a_clip_length_other_than_num_seg_is_refused():
    cfg = load_config(os.path.join(CONFIG_DIR, "pptsm.yaml"), ["TRAIN.seg_num=3"])
    with pytest.raises(InputError, match=r"TRAIN.seg_num is 3 .* MODEL.num_seg 8"):
        make_task("PPTSM", cfg)


# ---- label smoothing and mixup, by hand ----

def hand_cross_entropy(logits, targets):
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-(targets * log_p).sum(axis=1).mean())


def test_label_smoothing_and_mixup_losses_match_their_formulas():
    cfg = load_config(os.path.join(CONFIG_DIR, "pptsm.yaml"), ["MODEL.num_classes=3"])
    task = TSNTask("PPTSM", None, cfg)
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0]], np.float32)
    labels, partners, lam = np.array([0, 2]), np.array([2, 0]), 0.7

    batch = Batch(np.arange(2), ["a", "b"], None, labels)
    # eps 0.1 over 3 classes: the true class 1 - 0.1 + 0.1/3, the others 0.1/3
    smoothed = np.array([[0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3], [0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3]])
    assert float(task.loss(paddle.to_tensor(logits), batch)) == pytest.approx(hand_cross_entropy(logits, smoothed),
                                                                            rel=1e-5)
    # mixup: lam * L(labels) + (1 - lam) * L(partners), each smoothed
    batch.mixed_labels, batch.lam = partners, lam
    expected = lam * hand_cross_entropy(logits, smoothed) + (1 - lam) * hand_cross_entropy(logits, smoothed[::-1])
    assert float(task.loss(paddle.to_tensor(logits), batch)) == pytest.approx(expected, rel=1e-5)
    # no smoothing, no mixup: plain cross-entropy of the true class
    cfg.TRAIN["label_smoothing"] = 0.0
    batch.mixed_labels = None
    plain = -np.log(np.exp(logits[[0, 1], labels]) / np.exp(logits).sum(axis=1)).mean()
    assert float(task.loss(paddle.to_tensor(logits), batch)) == pytest.approx(plain, rel=1e-5)
    np.testing.assert_allclose(soft_targets(labels, 3, 0.1), smoothed, rtol=1e-6)


def test_mixup_blends_each_batch_with_a_permutation_of_itself(videos):
    section = {"seg_num": 8, "short_size": 48, "target_size": 40, "batch_size": 4, "resize": "paddlevideo",
               "multiscale_crop": 48}
    plain = VideoListSource(str(videos / "train.list"), section, 2, training=True, num_workers=1)
    mixed = VideoListSource(str(videos / "train.list"), section, 2, training=True, num_workers=1, mixup_alpha=0.2)
    a = next(plain.batches(shuffle=True, epoch=3, seed=5))
    b = next(mixed.batches(shuffle=True, epoch=3, seed=5))
    rng = np.random.default_rng([5, 3, 0, MIXUP_STREAM])  # PaddleVideo's draws: lam ~ Beta(a, a), then the partners
    lam, partner = rng.beta(0.2, 0.2), rng.permutation(4)
    assert b.lam == pytest.approx(lam) and 0 < lam < 1
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(b.mixed_labels, a.labels[partner])
    np.testing.assert_allclose(b.images, lam * a.images + (1 - lam) * a.images[partner], rtol=1e-5, atol=1e-5)
    valid = VideoListSource(str(videos / "train.list"), section, 2, training=False, mixup_alpha=0.2)
    assert next(valid.batches()).mixed_labels is None  # evaluation is never mixed


def test_multiscale_crop_boxes_are_paddlevideos():
    # 341x256 frame to 256 (PP-TSM): sides int(256 * s) = 256, 224, 192, 168, neighbours paired
    rng = np.random.default_rng(0)
    boxes = {multiscale_box(341, 256, 256, rng) for _ in range(3000)}
    sizes = {(right - left, bottom - top) for left, top, right, bottom in boxes}
    sides = [256, 224, 192, 168]
    assert sizes == {(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1}
    assert all(0 <= left and right <= 341 and 0 <= top and bottom <= 256 for left, top, right, bottom in boxes)
    # 13 fixed positions on a quarter grid: for a 224x224 crop, x in {0, 29.25, 58.5, 87.75, 117} rounded half-even
    lefts = {left for left, top, right, bottom in boxes if (right - left, bottom - top) == (224, 224)}
    assert lefts == {0, 29, 58, 88, 117}


def test_dense_sampling_is_paddlevideos():
    # 8 frames 64 // 8 = 8 apart from a start in 0 .. n - 65 (PaddleVideo: randint(0, 1 + n - 64 - 1))
    starts = set()
    for seed in range(300):
        frames = dense_clip_frames(100, 8, np.random.default_rng(seed))
        assert np.diff(frames).tolist() == [8] * 7
        starts.add(frames[0])
    assert starts == set(range(36))
    # a video shorter than the window: from frame 0, wrapping round
    assert dense_clip_frames(30, 8, np.random.default_rng(0)) == [0, 8, 16, 24, 2, 10, 18, 26]


# ---- real training steps ----

@pytest.fixture(scope="module")
def pptsm_run(videos, tmp_path_factory):
    """PP-TSM (ResNet50_vd + shift, 8-frame clips), its recipe without mixup, 2 epochs of 2 steps."""
    save_dir = tmp_path_factory.mktemp("pptsm")
    train_cli.main(tiny(videos, "PPTSM", save_dir, "TRAIN.mixup_alpha=0.0", "MODEL.drop_rate=0.0",
                        "TRAIN.learning_rate=0.0005", "TRAIN.reference_batch_size=2", "VALID.filelist=null", epochs=2))
    return save_dir


def test_pptsm_learns_and_its_best_checkpoint_extracts(videos, pptsm_run, tmp_path):
    records = metrics(pptsm_run)
    assert [r["epoch"] for r in records] == [1, 2]
    # the training loss (batch statistics: a random network's running statistics after a few steps
    # say nothing at evaluation); label smoothing 0.1 keeps it above 0.2 however well it fits
    assert records[-1]["train_loss"] < 0.8 * records[0]["train_loss"], records
    best = pptsm_run / "PPTSM_best.pdparams"
    saved = yaml.safe_load((pptsm_run / "config.yaml").read_text())
    assert saved["MODEL"]["backbone"] == "pptsm" and saved["TRAIN"]["label_smoothing"] == 0.1
    features = extract(videos, tmp_path / "features", "pptsm.yaml", best)
    assert all(f.shape == (8, 2048) and np.isfinite(f).all() for f in features.values())
    # the tuned backbone, not a random one: its features as the trained classifier computes them
    cfg = load_config(os.path.join(CONFIG_DIR, "pptsm.yaml"), ["MODEL.num_seg=8", "MODEL.num_classes=2"])
    model = make_task("PPTSM", cfg).build_model()
    model.set_state_dict(paddle.load(str(best)))
    model.eval()
    source = VideoListSource(str(videos / "train.list"), {"seg_num": 8, "short_size": 64, "target_size": 48,
                                                          "batch_size": 4, "resize": "paddlevideo"}, 2, training=False)
    with paddle.no_grad():
        expected = model.backbone(paddle.to_tensor(next(source.batches()).images[1])).numpy()
    np.testing.assert_allclose(features[1], expected, rtol=1e-4, atol=1e-4)


def test_pptsn_pretrains_from_a_paddlevideo_checkpoint(videos, tmp_path):
    # PaddleVideo's recognizer layout (backbone.<its names>, head.fc.*), weights seeded as the fixtures'
    names_shapes = json.loads((FIXTURES / "nets.json").read_text())["nets"]["pptsn_r50"]["state"]
    theirs = paddlevideo_weights.state(names_shapes)
    checkpoint = {**{"backbone." + k: v for k, v in theirs.items()},
                  "head.fc.weight": np.zeros([2048, 400], np.float32), "head.fc.bias": np.zeros([400], np.float32)}
    paddle.save(checkpoint, str(tmp_path / "ppTSN_k400.pdparams"))
    # learning rate 0, no L2, frozen BN: the loaded values must come out as they went in
    train_cli.main(tiny(videos, "PPTSN", tmp_path / "tuned", "TRAIN.learning_rate=0.0", "TRAIN.weight_decay=0.0",
                        "MODEL.freeze_bn=true", "TRAIN.mixup_alpha=0.0", "VALID.filelist=null", "TEST.filelist=null",
                        "TRAIN.batch_size=4") + ["--pretrain", str(tmp_path / "ppTSN_k400.pdparams")])
    tuned = {k: v.numpy() for k, v in paddle.load(str(tmp_path / "tuned" / "PPTSN_epoch1.pdparams")).items()}
    spec = backbones.get({"backbone": "pptsn", "num_layers": 50})
    expected = spec.build({"backbone": "pptsn", "num_layers": 50})
    spec.load_weights(expected, str(tmp_path / "ppTSN_k400.pdparams"))
    for key, value in expected.state_dict().items():
        np.testing.assert_array_equal(tuned["backbone." + key], value.numpy(), err_msg=key)
    assert tuned["fc.weight"].shape == (2048, 2)  # a fresh classifier for our 2 classes


@pytest.fixture(scope="module")
def pptsmv2_features(videos, tmp_path_factory):
    """PP-TSMv2 trained two steps on its full recipe (label smoothing off as PaddleVideo's, mixup 0.2),
    then its best checkpoint extracting 1280-d features."""
    save_dir = tmp_path_factory.mktemp("pptsmv2")
    train_cli.main(tiny(videos, "PPTSMv2", save_dir, "VALID.filelist=null", "TEST.filelist=null"))
    return extract(videos, save_dir / "features", "pptsmv2.yaml", save_dir / "PPTSMv2_best.pdparams"), save_dir


def test_pptsmv2_trains_with_mixup_and_extracts_1280d_features(pptsmv2_features):
    features, save_dir = pptsmv2_features
    saved = yaml.safe_load((save_dir / "config.yaml").read_text())
    assert saved["TRAIN"]["mixup_alpha"] == 0.2 and saved["MODEL"]["backbone"] == "pptsmv2"
    assert np.isfinite(metrics(save_dir)[0]["train_loss"])
    assert all(f.shape == (8, 1280) and np.isfinite(f).all() for f in features.values())


def head_args(feature_list, save_dir, *extra):
    args = ["--model_name", "AttentionLSTM", "--config", os.path.join(CONFIG_DIR, "attention_lstm.yaml"),
            "--save_dir", str(save_dir)]
    for item in ["MODEL.num_classes=2", "MODEL.embedding_size=16", "MODEL.lstm_size=8", "MODEL.hidden_sizes=[16, 8]",
                 "TRAIN.epoch=1", "TRAIN.min_steps=0", "TRAIN.batch_size=2", "TRAIN.warmup_steps=0",
                 f"TRAIN.filelist={feature_list}", f"VALID.filelist={feature_list}", f"TEST.filelist={feature_list}",
                 "VALID.batch_size=4", "TEST.batch_size=4", *extra]:
        args += ["-o", item]
    return args


def test_a_head_trains_on_1280d_features_without_editing_feature_dims(videos, pptsmv2_features, tmp_path, capsys):
    features, save_dir = pptsmv2_features
    feature_list = tmp_path / "features.list"
    feature_list.write_text("".join(f"{save_dir / 'features' / 'clips' / f'v{i}.npy'} {i % 2}\n" for i in range(4)))
    train_cli.main(head_args(feature_list, tmp_path / "head"))
    saved = yaml.safe_load((tmp_path / "head" / "config.yaml").read_text())
    assert saved["MODEL"]["feature_dims"] == [1280]  # eval, predict and tag read it beside the checkpoint
    weights = paddle.load(str(tmp_path / "head" / "AttentionLSTM_best.pdparams"))
    assert list(weights["encoders.0.embedding.weight"].shape) == [1280, 16]
    # a config that says 2048 itself: one line naming the list, its line and the feature file
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(head_args(feature_list, tmp_path / "explicit", "MODEL.feature_dims=[2048]"))
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "features.list:1:" in errors[0] and "v0.npy" in errors[0], errors
    assert "[8, 1280], expected [frames, 2048]" in errors[0]
    # one file of another size among them: named as well, before any training
    np.save(tmp_path / "odd.npy", np.zeros((8, 2048), np.float32))
    feature_list.write_text(feature_list.read_text() + f"{tmp_path / 'odd.npy'} 1\n")
    with pytest.raises(SystemExit):
        train_cli.main(head_args(feature_list, tmp_path / "mixed"))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "features.list:5:" in errors[0] and "odd.npy" in errors[0], errors


def test_pptsmv2_follows_the_temporal_attention_of_its_checkpoint():
    # PaddleVideo's 16-frame distilled release has the attention: --pretrain (and eval) build it then
    cfg = load_config(os.path.join(CONFIG_DIR, "pptsmv2.yaml"))
    task = make_task("PPTSMv2", cfg)
    task.adopt_checkpoint({"Student.0.global_attention.fc.weight": np.zeros(1)}, "PPTSMv2_k400_16f_dml.pdparams")
    assert cfg.MODEL.temporal_attention is True
    assert task.build_model().backbone.temporal_attention is not None
    task.adopt_checkpoint({"backbone.stem.conv.conv.weight": np.zeros(1)}, "ours.pdparams")
    assert cfg.MODEL.temporal_attention is False

"""VideoTag users' files work unchanged and give VideoTag's answers: its reader's crops (fixtures made by
VideoTag's reader on PaddlePaddle 1.8.5), its configs and FineTune.md commands, label-less list lines,
its L2 per parameter, and bad input failing before any compute."""
import glob
import json
import os
import shutil

import cv2
import numpy as np
import paddle
import PIL
import pytest

import eval as eval_cli
import predict as predict_cli
import train as train_cli
from core.config import load_config
from core.trainer import build_optimizer
from extractor import cli as extractor_cli
from extractor.predictor import DygraphBackbone, build_model
from extractor.sampling import center_crop, normalize, resize_videotag, videotag_size
from extractor.tsn_data import VideoListSource, random_crop_flip
from extractor.video import read_sampled_crops
from features import write_feature_dataset
from sequence.metrics import gap, hit_at_one, perr
from videotag.models import default_config_path, make_task
from videotag_yaml import write_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "videotag")
VIDEOS = sorted(os.path.basename(p)[len("reader_"):-len(".npz")]
                for p in glob.glob(os.path.join(FIXTURES, "reader_*.npz")))
LARGE = os.environ.get("VIDEOTAG_LARGE")  # e.g. /work/fixtures-large/videotag: tsn.pdparams, tsn_io.npz
PINNED_PILLOW = next(line.split("==")[1].split()[0] for line in open(os.path.join(ROOT, "requirements.txt"))
                     if line.startswith("Pillow=="))


def fixture(name):
    return dict(np.load(os.path.join(FIXTURES, f"reader_{name}.npz"))), os.path.join(FIXTURES, "videos", name + ".mp4")


# ---- 1. the reader: VideoTag's crops, gray level for gray level ----

@pytest.mark.smoke
@pytest.mark.parametrize("name", VIDEOS)
def test_our_reader_gives_videotag_crops(name):
    ref, path = fixture(name)
    crops, info = read_sampled_crops(path, len(ref["indices"]), 256, 224)
    assert info["indices"] == ref["indices"].tolist()
    difference = np.abs(crops.astype(int) - ref["crops"]).max()
    # the pinned Pillow is bit-exact on every fixture; 13.0 is off by one on some values
    assert difference == 0 if PIL.__version__ == PINNED_PILLOW else difference <= 1
    height, width = ref["decoded_size_hw"]
    size = videotag_size(width, height, 256) or (width, height)
    assert [size[1], size[0]] == ref["resized_size_hw"].tolist()


def test_every_kind_of_frame_is_covered():
    assert set(VIDEOS) >= {"wide_640x360", "square_400x400", "classic_320x240", "portrait_360x640",
                           "odd_322x182", "short256_456x256", "few_320x180_6f"}


def test_keep_aspect_is_the_old_rule():
    ref, path = fixture("portrait_360x640")
    crops, _ = read_sampled_crops(path, len(ref["indices"]), 256, 224, resize="keep_aspect")
    old = center_crop(cv2.resize(ref["frame0"], (256, 455), interpolation=cv2.INTER_LINEAR), 224)
    np.testing.assert_array_equal(crops[0], old)
    assert np.abs(crops[0].astype(int) - ref["crops"][0]).max() > 1  # and it is not VideoTag's


def test_tsn_fine_tuning_reads_videos_as_videotag(tmp_path):
    names = ["wide_640x360", "portrait_360x640"]
    listing = tmp_path / "val.list"
    listing.write_text("".join(f"{fixture(n)[1]} {i}\n" for i, n in enumerate(names)))
    section = {"seg_num": 4, "short_size": 256, "target_size": 224, "batch_size": 2, "resize": "videotag"}
    validation = VideoListSource(str(listing), section, 2, training=False)
    for index, name in enumerate(names):
        difference = np.abs(validation.load(index).astype(int) - fixture(name)[0]["crops"]).max()
        assert difference == 0 if PIL.__version__ == PINNED_PILLOW else difference <= 1
    # Training: one random window (and flip) of the frame VideoTag's resize made.
    frame = fixture("portrait_360x640")[0]["frame0"]
    resized = resize_videotag(frame, 256)
    assert resized.shape == (341, 256, 3)
    for seed in range(2):
        crop = random_crop_flip(frame[None], 256, 224, np.random.default_rng(seed))[0]
        assert any(np.array_equal(resized[top:top + 224, left:left + 224], c)
                   for top in range(341 - 224 + 1) for left in range(256 - 224 + 1) for c in (crop, crop[:, ::-1]))


@pytest.mark.skipif(not LARGE, reason="full-size check on demand: set VIDEOTAG_LARGE to the folder of tsn.pdparams")
def test_full_size_backbone_gives_videotag_features():
    """VideoTag's ResNet-101 weights in our backbone, on our crops and normalisation of the committed
    fixtures, against the features fluid 1.8.5 computed (docs/VIDEOTAG.md quotes the figures)."""
    io = np.load(os.path.join(LARGE, "tsn_io.npz"))
    crops = np.stack([fixture(name)[0]["crops"] for name in ("wide_640x360", "portrait_360x640")])
    images = np.stack([normalize(c) for c in crops])
    assert np.abs(images - io["image"]).max() < 1e-6  # the fused normalisation against fluid's float32 steps
    backbone = DygraphBackbone(build_model(101, os.path.join(LARGE, "tsn.pdparams")))
    expected = io["features"]
    ours = backbone(images.reshape(-1, 3, 224, 224)).reshape(expected.shape)
    relative = np.abs(ours - expected).max() / np.abs(expected).max()
    print(f"max |ours - fluid| / max |fluid| = {relative:.3g}")
    assert relative < 1e-5


# ---- 2. VideoTag's configs and FineTune.md's commands ----

@pytest.fixture
def videotag_tree(tmp_path, monkeypatch):
    """VideoTag's working directory: configs/, data/dataset/attention_lstm/*.list (paths relative to the
    working directory, some training lines without labels, lines ending with a space), tiny features."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    configs = write_configs(tmp_path / "configs")
    lists = tmp_path / "data" / "dataset" / "attention_lstm"
    lists.mkdir(parents=True)
    for split, count, seed in (("train", 48, 0), ("val", 16, 1)):
        written = write_feature_dataset(str(tmp_path / "feats"), count, seed=seed, prefix=split)
        lines = [f"feats/{line} " for line in open(written).read().splitlines()]
        if split == "train":
            lines[::6] = [line.split()[0] for line in lines[::6]]  # negatives
        (lists / f"{split}.list").write_text("\n".join(lines) + "\n")
    shutil.copy(lists / "val.list", lists / "test.list")
    (lists / "infer.list").write_text("".join(line.split()[0] + "\n" for line in open(lists / "val.list")))
    return tmp_path, configs


TINY_LSTM = ["MODEL.feature_dims=[16]", "MODEL.num_classes=6", "MODEL.embedding_size=16", "MODEL.lstm_size=16",
             "MODEL.hidden_sizes=[32, 16]", "TRAIN.batch_size=16", "VALID.batch_size=16", "TEST.batch_size=16",
             "TRAIN.epoch=2", "TRAIN.num_workers=1"]


def with_overrides(command, overrides):
    for item in overrides:
        command += ["-o", item]
    return command


def test_finetune_md_attention_lstm_commands(videotag_tree, capsys):
    root, _ = videotag_tree
    config = "--config=./configs/attention_lstm.yaml"
    train_cli.main(with_overrides(["--model_name=AttentionLSTM", config, "--save_dir=./data/checkpoints"], TINY_LSTM))
    log = capsys.readouterr().err
    assert "train.list: 8 of 48 videos have no labels (negatives: all-zero targets)" in log
    assert log.count("ignoring VideoTag keys") == 1 and "TRAIN.num_gpus" in log
    assert "learning rate x0.1 after 25,000,000 examples" in log  # VideoTag's num_samples counts, not the list
    assert os.path.isfile(root / "data" / "checkpoints" / "AttentionLSTM_epoch2.pdparams")
    # --pretrain=./weights/attention_lstm: no extension, .pdparams appended as fluid.load did
    os.makedirs("weights")
    shutil.copy(root / "data" / "checkpoints" / "AttentionLSTM_epoch2.pdparams", "weights/attention_lstm.pdparams")
    train_cli.main(with_overrides(["--model_name=AttentionLSTM", config, "--pretrain=./weights/attention_lstm",
                                   "--save_dir=./tuned"], TINY_LSTM))
    log = capsys.readouterr().err
    assert "pretrained weights from ./weights/attention_lstm.pdparams: loaded 25 of 25" in log
    metrics = eval_cli.main(with_overrides(["--model_name=AttentionLSTM", config,
                                            "--weights=./data/checkpoints/AttentionLSTM_epoch2.pdparams"], TINY_LSTM))
    assert set(metrics) >= {"gap", "hit_at_one", "perr"}
    (root / "label_3396.txt").write_text("".join(f"tag{i}\n" for i in range(6)))
    predict_cli.main(with_overrides(["--model_name=AttentionLSTM", config, "--label_file=./label_3396.txt",
                                     "--weights=./data/checkpoints/AttentionLSTM_epoch2.pdparams",
                                     "--save_dir=./data/predict_results"], TINY_LSTM))
    lines = (root / "data" / "predict_results" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 16 and json.loads(lines[0])["video"].startswith("feats/val/")


def test_finetune_md_tsn_extractor_command(videotag_tree, tmp_path):
    _, configs = videotag_tree
    videos = tmp_path / "videos.list"
    videos.write_text(fixture("classic_320x240")[1] + "\n")
    # tsn_extractor.py --model_name=TSN --config=./configs/tsn.yaml --weights=./weights/tsn.pdparams
    status = extractor_cli.main(["--config=./configs/tsn.yaml", "--filelist", str(videos), "--save_dir=tsn_features",
                                 "--extractor_backend=dygraph", "-o", "MODEL.num_layers=50", "-o", "INFER.seg_num=2",
                                 "-o", "INFER.short_size=64", "-o", "INFER.target_size=56"])
    assert status in (0, None)
    [features] = glob.glob("tsn_features/**/*.npy", recursive=True)
    assert np.load(features).shape[0] == 2
    cfg = load_config(configs["tsn.yaml"], [], default_config_path("TSN"))
    assert (cfg.INFER.num_workers, cfg.INFER.resize, cfg.INFER.batch_size) == (12, "videotag", 1)


# ---- 3. label-less lines are negatives; the metrics take all-zero rows ----

def test_metrics_with_videos_without_labels():
    labels = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0]], np.float32)
    scores = np.array([[0.9, 0.1, 0.2], [0.8, 0.1, 0.1], [0.1, 0.7, 0.2]], np.float32)
    # GAP pools every video's top k: the negative's 0.8 ranks above the true 0.7, over 2 true labels
    assert gap(scores, labels, top_k=3) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert perr(scores, labels) == pytest.approx(1.0)  # skips the video without labels
    assert hit_at_one(scores, labels) == pytest.approx(2 / 3)  # its top tag is wrong by definition


# ---- 4. L2 as VideoTag put it ----

def l2_after_a_step(model_name, overrides):
    """(parameters L2 moved, trainable parameters): one Momentum step from all-ones parameters on a zero
    data gradient, where only L2 moves a parameter."""
    path = default_config_path(model_name)
    cfg = load_config(path, overrides + ["TRAIN.optimizer=Momentum", "TRAIN.learning_rate=0.5",
                                         "TRAIN.weight_decay=0.1"], path)
    model = make_task(model_name, cfg).build_model()
    trainable = {k: p for k, p in model.named_parameters() if not p.stop_gradient}
    for p in trainable.values():
        p.set_value(paddle.ones_like(p))
    optimizer = build_optimizer(cfg.TRAIN, model)
    (sum(p.sum() for p in trainable.values()) * 0.0).backward()
    optimizer.step()
    return {k for k, p in trainable.items() if not np.all(p.numpy() == 1)}, set(trainable)


def test_l2_goes_where_videotag_put_it():
    moved, trainable = l2_after_a_step("AttentionLSTM", TINY_LSTM)
    fc_biases = {"encoders.0.embedding.bias", "fc1.bias", "fc2.bias", "classifier.bias"}
    assert moved == trainable - fc_biases and fc_biases <= trainable
    assert {"encoders.0.lstm.bias_ih_l0", "encoders.0.lstm.bias_hh_l0_reverse"} <= moved  # VideoTag decays them
    moved, _ = l2_after_a_step("NeXtVLAD", ["MODEL.feature_dims=[16]", "MODEL.cluster_size=4", "MODEL.groups=2",
                                            "MODEL.hidden_size=8", "MODEL.gating_reduction=2"])
    assert moved == {"classifier.weight", "classifier.bias"}
    moved, trainable = l2_after_a_step("TSN", ["MODEL.num_layers=50", "MODEL.num_classes=3"])
    assert moved == trainable and "backbone.stages.0.0.conv1.bn.bias" in moved


# ---- 5. bad input fails before the first step ----

def run_train(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(args)
    assert exit_info.value.code == 2
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    return line


def test_nan_in_the_validation_list_fails_before_training(videotag_tree, capsys):
    root, _ = videotag_tree
    bad = np.ones((4, 16), np.float32)
    bad[1, 2] = np.inf
    np.save(root / "feats" / "bad.npy", bad)
    val = root / "data" / "dataset" / "attention_lstm" / "val.list"
    val.write_text(val.read_text() + "feats/bad.npy 1\n")
    args = with_overrides(["--model_name=AttentionLSTM", "--config=./configs/attention_lstm.yaml",
                           "--save_dir=./out"], TINY_LSTM)
    line = run_train(capsys, args)
    assert "val.list:17:" in line and "bad.npy" in line and "NaN or infinite" in line
    assert not glob.glob("out/*.pdparams")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_save_dir_is_one_line(videotag_tree, capsys):
    os.makedirs("locked")
    os.chmod("locked", 0o500)
    args = with_overrides(["--model_name=AttentionLSTM", "--config=./configs/attention_lstm.yaml",
                           "--save_dir=./locked"], TINY_LSTM)
    assert "./locked: permission denied" in run_train(capsys, args)


def test_a_save_dir_that_is_a_file_is_one_line(videotag_tree, capsys):
    open("taken", "w").close()
    args = with_overrides(["--model_name=AttentionLSTM", "--config=./configs/attention_lstm.yaml",
                           "--save_dir=./taken"], TINY_LSTM)
    assert "error: ./taken: is a file, not a folder: choose another --save_dir" in run_train(capsys, args)

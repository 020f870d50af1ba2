"""Training, evaluating and tagging straight from YouTube-8M shards: the filelist rule, the split
among processes, the three heads through train.py / eval.py / predict.py, and bad records."""
import glob
import json
import os
import pickle

import numpy as np
import pytest

import eval as eval_cli
import predict as predict_cli
import train as train_cli
from launch import launch_two
from sequence import tfrecord, yt8m
from test_sequence_pipeline import ROOT, cli_args, expect_input_error, params

NUM_CLASSES = 6
DIMS = {"rgb": 16, "audio": 8}
CONFIGS = {"AttentionLSTM": "attention_lstm", "AttentionCluster": "attention_cluster", "NeXtVLAD": "nextvlad"}


def quantize(x):
    """uint8 codes whose dequantised values are nearest to x (clipped to the codes' range)."""
    codes = np.rint((x - yt8m.DEQUANT_BIAS) / yt8m.DEQUANT_SCALE)
    return np.clip(codes, 0, 255).astype(np.uint8)


def make_videos(num_videos, seed, prefix):
    """Learnable videos, as tests/features.py makes them: a video carries a label exactly when
    that class's prototypes (one per modality, shared by every split) are in two of its frames."""
    rng = np.random.default_rng(seed)
    prototypes = {name: np.random.default_rng(1234 + dim).normal(0, 0.8, (NUM_CLASSES, dim))
                  for name, dim in DIMS.items()}
    videos = []
    for v in range(num_videos):
        frames = int(rng.integers(5, 11))
        labels = sorted(rng.choice(NUM_CLASSES, size=rng.integers(1, 3), replace=False).tolist())
        marked = [rng.choice(frames, size=2, replace=False) for _ in labels]
        features = {}
        for name, dim in DIMS.items():
            x = rng.normal(0, 0.3, (frames, dim))
            for c, rows in zip(labels, marked):
                x[rows] += prototypes[name][c]
            features[name] = quantize(x)
        videos.append((f"{prefix}{v:03d}", features, labels))
    return videos


def write_shards(folder, prefix, videos, num_shards):
    """<folder>/<prefix>NNNN.tfrecord holding `videos` in order; returns the glob of the shards."""
    os.makedirs(folder, exist_ok=True)
    per_shard = -(-len(videos) // num_shards)
    for s in range(num_shards):
        tfrecord.write_tfrecord(os.path.join(folder, f"{prefix}{s:04d}.tfrecord"),
                            videos[s * per_shard:(s + 1) * per_shard])
    return os.path.join(str(folder), f"{prefix}*.tfrecord")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("yt8m")
    train, val = make_videos(96, 0, "train"), make_videos(48, 1, "val")
    return {"train": write_shards(folder, "train", train, 3), "val": write_shards(folder, "val", val, 2),
            "val_ids": [v[0] for v in val], "folder": folder}


def yt8m_args(model, data, save_dir, *extra, **kwargs):
    """cli_args of the feature-list tests, on the model's YouTube-8M config with tiny dims."""
    return cli_args(model, data, save_dir, "MODEL.feature_names=[rgb, audio]", "MODEL.feature_dims=[16, 8]",
                    *extra, **kwargs) + ["--config", os.path.join(ROOT, "configs", f"{CONFIGS[model]}_yt8m.yaml")]


def source(filelist, batch_size, shuffle_buffer=5):
    model_cfg = {"feature_names": ["rgb", "audio"], "feature_dims": [16, 8], "num_classes": NUM_CLASSES}
    return yt8m.RecordSource(filelist, model_cfg, batch_size, num_workers=2, shuffle_buffer=shuffle_buffer)


# ---- which filelists are shards ----

def test_filelist_rule(shards, tmp_path):
    shard_list = tmp_path / "train_shards.list"
    shard_list.write_text("# the training shards\n" + "\n".join(sorted(glob.glob(shards["train"]))) + "\n")
    feature_list = tmp_path / "train.list"
    feature_list.write_text("features/video000.npy 1 2\n")
    assert yt8m.names_records(shards["train"]) and yt8m.names_records(str(shard_list))
    assert yt8m.names_records(["a.tfrecord", "b.tfrecord"]) and yt8m.names_records("data/*.pkl")
    assert not yt8m.names_records(str(feature_list)) and not yt8m.names_records("data/features/train.list")
    assert len(source(str(shard_list), 8)) == len(source(shards["train"], 8)) == 96


# ---- several processes ----

def shares(src, world, **kwargs):
    """[rank][batch] -> (indices, names, rgb) of every process's batches."""
    return [[(b.indices, b.names, b.features[0]) for b in src.batches(rank, world, **kwargs)] for rank in range(world)]


def test_processes_split_the_global_batches_of_one(shards):
    src = source(shards["train"], 16)  # 3 shards of 32 records, a buffer of 5: a local shuffle
    kwargs = dict(shuffle=True, drop_last=True, epoch=1, seed=3)
    (one,), two = shares(src, 1, **kwargs), shares(src, 2, **kwargs)
    assert len(one) == len(two[0]) == len(two[1]) == src.num_batches(True) == 6
    for whole, first, second in zip(one, *two):
        np.testing.assert_array_equal(whole[0], np.concatenate([first[0], second[0]]))
        assert whole[1] == first[1] + second[1]
        rows = first[2].shape[0]
        np.testing.assert_array_equal(whole[2][:rows, :first[2].shape[1]], first[2])
    order = np.concatenate([b[0] for b in one])
    assert sorted(order) == list(range(96)) and list(order) != list(range(96))
    again = np.concatenate([b[0] for b in shares(src, 1, shuffle=True, drop_last=True, epoch=2, seed=3)[0]])
    assert list(again) != list(order)


@pytest.mark.parametrize("world", [2, 3])
def test_evaluation_shares_are_disjoint_and_in_record_order(shards, world):
    src = source(shards["val"], 18)  # 48 records: a short last batch, split unevenly
    parts = shares(src, world)
    indices = np.concatenate([b[0] for rank in parts for b in rank])
    assert sorted(indices) == list(range(48))
    names = dict(zip(indices, [n for rank in parts for b in rank for n in b[1]]))
    assert [names[i] for i in range(48)] == shards["val_ids"]


def test_pickles_read_like_tfrecords(shards, tmp_path):
    videos = make_videos(20, 2, "pkl")
    for s, part in enumerate([videos[:12], videos[12:]]):
        items = [{"video": vid, "feature": f["rgb"], "audio": f["audio"], "label": labels, "nframes": len(f["rgb"])}
                 for vid, f, labels in part]
        with open(tmp_path / f"part{s}.pkl", "wb") as f:
            pickle.dump(items, f)
    from_pickles = shares(source(str(tmp_path / "*.pkl"), 8), 1, shuffle=True, drop_last=True)[0]
    from_records = shares(source(write_shards(tmp_path, "part", videos, 2), 8), 1, shuffle=True, drop_last=True)[0]
    for a, b in zip(from_pickles, from_records):
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]
        np.testing.assert_array_equal(a[2], b[2])


# ---- the command-line tools ----

@pytest.mark.parametrize("model", [pytest.param("AttentionLSTM", marks=pytest.mark.smoke),
                                   "AttentionCluster", "NeXtVLAD"])
def test_heads_train_evaluate_and_tag_from_shards(model, shards, tmp_path):
    args = yt8m_args(model, shards, tmp_path, "TRAIN.shuffle_buffer=32", epochs=6)
    train_cli.main(args)
    best = str(tmp_path / f"{model}_best.pdparams")
    metrics = eval_cli.main(args + ["--weights", best])
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    # Chance: about 1.5 of 6 classes are true, so random scores give a GAP near 0.3.
    assert metrics["gap"] > 0.6, metrics
    predict_cli.main(args + ["--weights", best, "--topk", "2"])
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [x["video"] for x in lines] == shards["val_ids"]
    assert all(len(x["tags"]) == 2 for x in lines)


def test_two_processes_equal_one(shards, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    extra = ("TRAIN.shuffle_buffer=8", "TRAIN.epoch=2")
    train_cli.main(yt8m_args("AttentionLSTM", shards, one, *extra, optimizer="Momentum", lr=0.05))
    status, logs = launch_two(["train.py"] + yt8m_args("AttentionLSTM", shards, two, *extra, optimizer="Momentum",
                                                       lr=0.05), tmp_path / "log")
    assert status == 0, logs[-6000:]
    a, b = params(one / "AttentionLSTM_epoch2.pdparams"), params(two / "AttentionLSTM_epoch2.pdparams")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


# ---- bad records: one line naming the shard and record ----

def flip_byte(path, record):
    offset, length = tfrecord.record_spans(path)[record]
    with open(path, "r+b") as f:
        f.seek(offset + length // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("case", ["corrupt", "label_range", "dim"])
def test_bad_records(case, tmp_path, capsys):
    videos = make_videos(32, 5, "bad")
    if case == "label_range":
        vid, features, _ = videos[20]
        videos[20] = (vid, features, [1, NUM_CLASSES])
    pattern = write_shards(tmp_path / "shards", "train", videos, 2)  # 16 records a shard
    second = sorted(glob.glob(pattern))[1]
    extra = ["MODEL.feature_dims=[16, 9]"] if case == "dim" else []
    if case == "corrupt":
        flip_byte(second, 3)
    args = yt8m_args("AttentionLSTM", {"train": pattern, "val": pattern}, tmp_path / "out", *extra, epochs=1)
    expected = {"corrupt": [second, "record 3: data CRC mismatch"],
                "label_range": [second, "record 4 ('bad020')", "label 6 is out of range"],
                "dim": ["record", "feature 'audio' has shape", "expected [frames, 9]"]}[case]
    expect_input_error(capsys, args, *expected)

"""Several nodes: two launchers (`--nnodes 2 --master 127.0.0.1:PORT --rank 0/1`, one process each)
on this machine train, evaluate, extract and tag exactly as one process does, resume after one
node is killed, and refuse a save_dir the nodes do not share. Optionally the same across two network
namespaces joined by a veth pair. Slower than the rest: `pytest -m "not multinode"` leaves them out."""
import glob
import json
import os
import shutil
import subprocess
import time

import videotag  # noqa: F401  (before paddle: OMP threads, h5py on Paddle 2.6)
import numpy as np
import paddle
import pytest

import eval as eval_cli
import predict as predict_cli
import train as train_cli
from extractor import cli as extractor_cli
from features import write_feature_dataset
from launch import kill_node, launch_nodes, start_nodes, wait_nodes
from core.config import load_config
from videos import write_video
from videotag.models import build_head, default_config_path
from videotag.synthetic import make_library

pytestmark = pytest.mark.multinode

TINY_HEAD = ["MODEL.embedding_size=16", "MODEL.lstm_size=16", "MODEL.hidden_sizes=[32, 16]"]
# ResNet-50, 32-pixel crops, 4 frames: the sharing is what is tested, not the backbone.
TINY_EXTRACT = ["INFER.seg_num=4", "INFER.short_size=32", "INFER.target_size=32", "INFER.batch_size=4",
                "INFER.num_workers=1", "MODEL.num_layers=50"]
EXTRACTOR = "extractor/__main__.py"  # the launcher's script form: `-m extractor` fails under --master


def overrides(flag, items):
    return [x for item in items for x in (flag, item)]


def params(path):
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


def assert_same_checkpoint(a, b):
    a, b = params(a), params(b)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


# ---- training and evaluation ----

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    return {"train": write_feature_dataset(folder, 192, prefix="train"),
            "val": write_feature_dataset(folder, 48, seed=1, prefix="val")}


def head_args(dataset, save_dir, epochs=1):
    # Dropout off and Momentum (linear in the gradients): two shares sum to one process's batch. The
    # mean loss keeps lr 0.05 a small step (a summed one would be 16x larger and amplify rounding).
    items = TINY_HEAD + ["TRAIN.batch_loss=mean",
        "MODEL.num_classes=6", "MODEL.feature_dims=[16]", "MODEL.drop_rate=0.0", f"TRAIN.filelist={dataset['train']}",
        f"VALID.filelist={dataset['val']}", f"TEST.filelist={dataset['val']}", "TRAIN.batch_size=16",
        f"TRAIN.epoch={epochs}", "TRAIN.optimizer=Momentum", "TRAIN.learning_rate=0.05", "VALID.batch_size=20",
        "TEST.batch_size=20", "TRAIN.num_workers=1"]
    return ["--model_name", "AttentionLSTM", "--save_dir", str(save_dir), *overrides("-o", items)]


def train_args(dataset, save_dir, epochs):
    """The one command for a first run and a rerun: --resume starts afresh when nothing is saved."""
    return head_args(dataset, save_dir, epochs) + ["--resume"]


@pytest.fixture(scope="module")
def one_process(dataset, tmp_path_factory):
    """Three epochs in this process: what every multi-node run must equal."""
    save_dir = tmp_path_factory.mktemp("one")
    train_cli.main(train_args(dataset, save_dir, epochs=3))
    return save_dir


def test_training_and_evaluation_on_two_nodes_equal_one_process(dataset, one_process, tmp_path):
    save_dir = tmp_path / "nodes"
    status, logs = launch_nodes(["train.py", *train_args(dataset, save_dir, epochs=1)], tmp_path / "log")
    assert status == 0, logs[-6000:]
    assert "(12 batches of 16 per epoch, 2 process(es)" in logs, logs[-3000:]
    assert_same_checkpoint(one_process / "AttentionLSTM_epoch1.pdparams", save_dir / "AttentionLSTM_epoch1.pdparams")
    # One writer: the files of one process, and no file left by the shared-folder check.
    assert sorted(os.listdir(save_dir)) == ["AttentionLSTM_best.pdparams", "AttentionLSTM_epoch1.pdopt",
                                            "AttentionLSTM_epoch1.pdparams", "config.yaml", "curves.png",
                                            "metrics.jsonl"]

    # Evaluation gathers both shares before computing GAP over the whole list.
    weights = ["--weights", str(one_process / "AttentionLSTM_epoch1.pdparams")]
    alone = eval_cli.main(head_args(dataset, tmp_path / "eval_one") + weights)
    status, logs = launch_nodes(["eval.py", *head_args(dataset, tmp_path / "eval_nodes"), *weights],
                                tmp_path / "eval_log")
    assert status == 0, logs[-6000:]
    assert json.loads((tmp_path / "eval_nodes" / "metrics.json").read_text()) == pytest.approx(alone, rel=1e-5)


def test_training_resumes_after_a_node_is_killed(dataset, one_process, tmp_path):
    save_dir = tmp_path / "nodes"
    command = ["train.py", *train_args(dataset, save_dir, epochs=3)]
    nodes = start_nodes(command, tmp_path / "log")
    while not (save_dir / "AttentionLSTM_epoch1.pdopt").exists():
        assert nodes[1].poll() is None, wait_nodes(nodes, tmp_path / "log")[1][-6000:]
        time.sleep(0.01)
    kill_node(nodes[1])  # kill -9 of node 1, in epoch 2
    statuses, _ = wait_nodes(nodes, tmp_path / "log", timeout=60)
    assert statuses[0] != 0  # node 0 stops too: its partner is gone
    assert not (save_dir / "AttentionLSTM_epoch3.pdopt").exists(), "the run finished before it could be killed"
    status, logs = launch_nodes(command, tmp_path / "log2")  # the same command again on every node
    assert status == 0, logs[-6000:]
    assert "resuming after epoch" in logs
    assert_same_checkpoint(one_process / "AttentionLSTM_epoch3.pdparams", save_dir / "AttentionLSTM_epoch3.pdparams")


def test_a_save_dir_the_nodes_do_not_share_stops_before_training(dataset, tmp_path):
    save_dir = tmp_path / "out"
    save_dir.mkdir()
    # Node 1 runs in a mount namespace of its own, with an empty tmpfs over save_dir: its own folder.
    own_folder = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', str(save_dir)]
    if not shutil.which("unshare") or subprocess.run(own_folder + ["true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a mount namespace here (needs root)")
    nodes = start_nodes(["train.py", *train_args(dataset, save_dir, epochs=1)], tmp_path / "log",
                        prefix=[[], own_folder])
    statuses, logs = wait_nodes(nodes, tmp_path / "log", timeout=120)
    assert statuses[0] != 0 and statuses[1] != 0
    line = f"save_dir is not shared between the nodes: rank 1 on {os.uname().nodename} cannot see the file rank 0"
    assert line in logs, logs[-6000:]
    assert os.listdir(save_dir) == []  # stopped before anything was written, and the check cleaned up


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair, 10.231.<n>.1 and .2: two hosts with their own
    addresses, whose host name resolves to neither. Removed afterwards; skipped where not allowed."""
    tag = f"mn{os.getpid() % 100000}"
    names, subnet = [f"{tag}a", f"{tag}b"], os.getpid() % 250 + 1
    addresses = [f"10.231.{subnet}.1", f"10.231.{subnet}.2"]
    setup = [["ip", "netns", "add", names[0]], ["ip", "netns", "add", names[1]],
             ["ip", "link", "add", f"{tag}x", "type", "veth", "peer", "name", f"{tag}y"],
             ["ip", "link", "set", f"{tag}x", "netns", names[0]], ["ip", "link", "set", f"{tag}y", "netns", names[1]]]
    for name, link, address in zip(names, (f"{tag}x", f"{tag}y"), addresses):
        setup += [["ip", "-n", name, "addr", "add", f"{address}/24", "dev", link],
                  ["ip", "-n", name, "link", "set", link, "up"], ["ip", "-n", name, "link", "set", "lo", "up"]]
    if not shutil.which("ip"):
        pytest.skip("no `ip` command (iproute2) here")
    try:
        for step in setup:
            made = subprocess.run(step, capture_output=True, text=True, timeout=10)
            if made.returncode != 0:
                pytest.skip(f"cannot make network namespaces here: {' '.join(step)}: {made.stderr.strip()}")
        yield {"prefix": [["ip", "netns", "exec", name] for name in names], "hosts": addresses,
               "links": [f"{tag}x", f"{tag}y"]}
    finally:
        for name in names:  # deleting a namespace deletes its end of the pair, and the pair with it
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", f"{tag}x"], capture_output=True, timeout=10)


def test_training_across_two_network_namespaces_equals_one_process(dataset, one_process, two_hosts, tmp_path):
    save_dir = tmp_path / "nodes"
    nodes = start_nodes(["train.py", *train_args(dataset, save_dir, epochs=1)], tmp_path / "log",
                        prefix=two_hosts["prefix"], hosts=two_hosts["hosts"])
    statuses, logs = wait_nodes(nodes, tmp_path / "log", timeout=90)
    assert statuses == [0, 0], logs[-6000:]
    # The host name resolves to 127.0.0.1 here, as on many machines: gloo must not offer that.
    assert f"talking to the other nodes over {two_hosts['links'][0]} ({two_hosts['hosts'][0]})" in logs
    assert_same_checkpoint(one_process / "AttentionLSTM_epoch1.pdparams", save_dir / "AttentionLSTM_epoch1.pdparams")


# ---- extraction ----

@pytest.fixture(scope="module")
def video_list(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    paths = [write_video(str(folder / f"v{i}.mp4"), 6 + 2 * i, seed=i) for i in range(8)]
    listing = folder / "videos.list"
    listing.write_text("".join(f"{path} {i % 3}\n" for i, path in enumerate(paths)))
    return listing


def extracted(save_dir, name):
    # Outputs keep the folders of the listed (absolute) paths.
    return bool(glob.glob(str(save_dir / "**" / name), recursive=True))


def features(save_dir):
    return {os.path.relpath(path, save_dir): np.load(path)
            for path in glob.glob(str(save_dir / "**" / "*.npy"), recursive=True)}


def test_extraction_killed_on_one_node_and_rerun_equals_one_process(video_list, tmp_path):
    def command(save_dir):
        return ["--filelist", str(video_list), "--save_dir", str(save_dir), "--extractor_backend", "dygraph",
                *overrides("-o", TINY_EXTRACT)]

    assert extractor_cli.main(command(tmp_path / "one")) == 0
    save_dir = tmp_path / "nodes"
    nodes = start_nodes([EXTRACTOR, *command(save_dir)], tmp_path / "log")
    while not extracted(save_dir, "v1.npy"):  # node 1's first video (its share is v1, v3, v5, v7)
        assert nodes[1].poll() is None, wait_nodes(nodes, tmp_path / "log")[1][-6000:]
        time.sleep(0.01)
    kill_node(nodes[1])
    wait_nodes(nodes, tmp_path / "log", timeout=120)
    left = [name for name in ("v3.npy", "v5.npy", "v7.npy") if not extracted(save_dir, name)]
    assert left, "node 1 finished before it could be killed"

    status, logs = launch_nodes([EXTRACTOR, *command(save_dir)], tmp_path / "log2")
    assert status == 0, logs[-6000:]
    assert f"rank 1] 4 videos: {4 - len(left)} already done, {len(left)} to extract" in logs, logs[-6000:]
    one, nodes_features = features(tmp_path / "one"), features(save_dir)
    assert sorted(one) == sorted(nodes_features) and len(one) == 8
    for name in one:
        np.testing.assert_array_equal(one[name], nodes_features[name], err_msg=name)
    assert (save_dir / "features.list").read_text() == (tmp_path / "one" / "features.list").read_text()


# ---- tagging ----

@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library")
    made = make_library(str(folder), num_videos=6, size=(64, 48), seconds=1.0)
    lines = [line for split in ("train", "val", "test") for line in (folder / f"{split}.list").read_text().splitlines()]
    (folder / "all.list").write_text("\n".join(lines) + "\n")
    paddle.seed(0)
    head = folder / "head.pdparams"
    paddle.save(build_head(load_config(default_config_path("AttentionLSTM"), TINY_HEAD + ["MODEL.num_classes=18"]).MODEL)
                .state_dict(), str(head))
    return {"list": folder / "all.list", "labels": made["labels_file"], "head": head, "videos": len(lines)}


def tag_args(library, save_dir):
    return ["--model", "AttentionLSTM", "--label_file", library["labels"], "--topk", "5", "--weights",
            str(library["head"]), "--filelist", str(library["list"]), "--save_dir", str(save_dir),
            "--extractor_backend", "dygraph", *overrides("-o", TINY_HEAD + ["MODEL.num_classes=18"]),
            *overrides("--extractor_override", TINY_EXTRACT)]


def test_tagging_on_two_nodes_equals_one_process(library, tmp_path):
    assert predict_cli.main(tag_args(library, tmp_path / "one")) == 0
    status, logs = launch_nodes(["predict.py", *tag_args(library, tmp_path / "nodes")], tmp_path / "log")
    assert status == 0, logs[-6000:]
    assert not (tmp_path / "nodes" / "parts").exists()  # rank 0 merged both nodes' journals
    one = (tmp_path / "one" / "predictions.jsonl").read_text()
    assert (tmp_path / "nodes" / "predictions.jsonl").read_text() == one
    assert len(one.splitlines()) == library["videos"]
    assert (tmp_path / "nodes" / "predictions.csv").read_text() == (tmp_path / "one" / "predictions.csv").read_text()

"""train.py / eval.py / predict.py end to end on synthetic features: learning, checkpoints, resume,
fine-tuning, several processes, and bad input."""
import json
import logging
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import eval as eval_cli
import predict as predict_cli
import train as train_cli
from features import write_feature_dataset
from launch import launch_two

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {
    "AttentionLSTM": ["MODEL.embedding_size=16", "MODEL.lstm_size=16", "MODEL.hidden_sizes=[32, 16]"],
    "AttentionCluster": ["MODEL.cluster_nums=4", "MODEL.seg_num=8", "MODEL.hidden_sizes=[32, 16]"],
    "NeXtVLAD": ["MODEL.cluster_size=8", "MODEL.groups=2", "MODEL.hidden_size=32", "MODEL.gating_reduction=4"],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    return {"train": write_feature_dataset(folder, 96, prefix="train"),
            "val": write_feature_dataset(folder, 48, seed=1, prefix="val"), "folder": folder}


def cli_args(model, dataset, save_dir, *extra, epochs=3, drop_rate=0.0, optimizer="Adam", lr=0.01):
    overrides = TINY[model] + [
        "MODEL.num_classes=6", "MODEL.feature_dims=[16]", f"MODEL.drop_rate={drop_rate}",
        f"TRAIN.filelist={dataset['train']}", f"VALID.filelist={dataset['val']}", f"TEST.filelist={dataset['val']}",
        f"INFER.filelist={dataset['val']}", "TRAIN.batch_size=16", f"TRAIN.epoch={epochs}",
        f"TRAIN.optimizer={optimizer}", f"TRAIN.learning_rate={lr}", "VALID.batch_size=20", "TEST.batch_size=20",
        "TRAIN.num_workers=2"] + list(extra)
    args = ["--model_name", model, "--save_dir", str(save_dir)]
    for item in overrides:
        args += ["-o", item]
    return args


def params(path):
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


@pytest.mark.smoke
def test_train_eval_predict_attention_lstm(dataset, tmp_path):
    args = cli_args("AttentionLSTM", dataset, tmp_path, epochs=10)
    train_cli.main(args)
    for n in range(1, 5):
        assert os.path.isfile(tmp_path / f"AttentionLSTM_epoch{n}.pdparams")
        assert os.path.isfile(tmp_path / f"AttentionLSTM_epoch{n}.pdopt")
    best = tmp_path / "AttentionLSTM_best.pdparams"
    metrics = eval_cli.main(args + ["--weights", str(best)])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == {"gap", "hit_at_one", "perr", "map", "loss"}
    assert saved == pytest.approx(metrics)
    # The run's resolved config is saved beside its checkpoints: no -o needed to evaluate them.
    assert "lstm_size: 16" in (tmp_path / "config.yaml").read_text()
    again = eval_cli.main(["--model_name", "AttentionLSTM", "--weights", str(best), "--save_dir", str(tmp_path / "again")])
    assert again == pytest.approx(metrics)
    # Chance: about 1.5 of 6 classes are true, so random scores give a GAP near 0.3.
    assert metrics["gap"] > 0.8 and metrics["hit_at_one"] > 0.8

    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"tag{i}" for i in range(6)) + "\n")
    predict_cli.main(args + ["--weights", str(best), "--label_file", str(labels), "--topk", "3"])
    lines = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    listed = [x.split()[0] for x in open(dataset["val"]).read().splitlines()]
    assert [x["video"] for x in lines] == listed
    for line in lines:
        probabilities = [t["probability"] for t in line["tags"]]
        assert len(line["tags"]) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert all(t["class_name"] == f"tag{t['class_id']}" for t in line["tags"])


@pytest.mark.parametrize("model", ["AttentionCluster", "NeXtVLAD"])
def test_other_heads_learn_through_the_cli(model, dataset, tmp_path):
    args = cli_args(model, dataset, tmp_path, epochs=10)
    train_cli.main(args)
    metrics = eval_cli.main(args + ["--weights", str(tmp_path / f"{model}_best.pdparams")])
    assert metrics["gap"] > 0.7


def test_resume_equals_uninterrupted(dataset, tmp_path):
    # Dropout on and a learning-rate step after epoch 1: resume must restore both.
    extra = ["TRAIN.lr_schedule=piecewise", "TRAIN.decay_epochs=[1]"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_cli.main(cli_args("AttentionLSTM", dataset, whole, *extra, epochs=2, drop_rate=0.5, optimizer="RMSProp"))
    train_cli.main(cli_args("AttentionLSTM", dataset, parts, *extra, epochs=1, drop_rate=0.5, optimizer="RMSProp"))
    train_cli.main(cli_args("AttentionLSTM", dataset, parts, *extra, epochs=2, drop_rate=0.5, optimizer="RMSProp")
                   + ["--resume"])
    a, b = params(whole / "AttentionLSTM_epoch2.pdparams"), params(parts / "AttentionLSTM_epoch2.pdparams")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    first = params(whole / "AttentionLSTM_epoch1.pdparams")
    assert any(not np.allclose(first[k], a[k]) for k in a)


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_finetune_to_another_label_set(dataset, tmp_path):
    source = tmp_path / "six"
    train_cli.main(cli_args("AttentionLSTM", dataset, source, epochs=1))
    folder = tmp_path / "four"
    four = {"train": write_feature_dataset(folder, 32, num_classes=4, prefix="train"),
            "val": write_feature_dataset(folder, 16, num_classes=4, seed=1, prefix="val")}
    args = cli_args("AttentionLSTM", four, tmp_path / "tuned", "MODEL.num_classes=4", epochs=1, lr=0.0)
    recorder = Recorder()
    logging.getLogger("videotag").addHandler(recorder)
    try:
        train_cli.main(args + ["--pretrain", str(source / "AttentionLSTM_epoch1.pdparams")])
    finally:
        logging.getLogger("videotag").removeHandler(recorder)
    before, after = params(source / "AttentionLSTM_epoch1.pdparams"), params(tmp_path / "tuned" / "AttentionLSTM_epoch1.pdparams")
    assert after["classifier.weight"].shape[-1] == 4
    for k in after:
        if not k.startswith("classifier."):  # learning rate 0: the loaded values stay as they were
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert any("initialised fresh: classifier.weight" in line for line in recorder.lines)


def test_two_processes_equal_one(dataset, tmp_path):
    # Momentum is linear in the gradients; Adam would magnify float-order noise on near-zero gradients.
    # 0.05 / 16: AttentionLSTM steps on the loss summed over the batch of 16 (TRAIN.batch_loss: sum).
    one, two = tmp_path / "one", tmp_path / "two"
    train_cli.main(cli_args("AttentionLSTM", dataset, one, epochs=1, optimizer="Momentum", lr=0.05 / 16))
    args_two = cli_args("AttentionLSTM", dataset, two, epochs=1, optimizer="Momentum", lr=0.05 / 16)
    status, logs = launch_two(["train.py"] + args_two, tmp_path / "log")
    assert status == 0, logs[-6000:]
    a, b = params(one / "AttentionLSTM_epoch1.pdparams"), params(two / "AttentionLSTM_epoch1.pdparams")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
    # Only the first process writes: one set of checkpoints, and its validation log line.
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))


# ---- bad input: one line naming the file and line, nothing half-written ----

def write_list(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def expect_input_error(capsys, args, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(args)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


def bad_list_case(tmp_path, dataset, lines):
    lst = write_list(tmp_path / "bad.list", lines)
    data = dict(dataset, train=str(lst))
    return cli_args("AttentionLSTM", data, tmp_path / "out", epochs=1), str(lst)


@pytest.mark.smoke
@pytest.mark.parametrize("case", ["missing", "malformed", "label_range", "dim", "nan", "empty"])
def test_bad_feature_lists(case, dataset, tmp_path, capsys):
    good = os.path.join(dataset["folder"], "train", "video000.npy")
    np.save(tmp_path / "wide.npy", np.zeros((5, 17), np.float32))
    nan = np.ones((5, 16), np.float32)
    nan[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    lines, fragments = {
        "missing": ([f"{good} 1", "nowhere.npy 2"], ["bad.list:2:", "feature file not found"]),
        "malformed": ([f"{good} 1", f"{good} 1 x"], ["bad.list:2:", "malformed line"]),
        "label_range": ([f"{good} 1", f"{good} 6"], ["bad.list:2:", "label 6 is out of range", "num_classes is 6"]),
        "dim": ([f"{good} 1"] * 15 + ["wide.npy 0"], ["bad.list:16:", "wide.npy", "[5, 17]", "16"]),
        "nan": ([f"{good} 1"] * 15 + ["nan.npy 0"], ["bad.list:16:", "nan.npy", "NaN"]),
        "empty": (["", "# nothing"], ["bad.list", "empty"]),
    }[case]
    args, list_path = bad_list_case(tmp_path, dataset, lines)
    expect_input_error(capsys, args, *fragments)
    out = tmp_path / "out"
    assert not out.exists() or not any(f.endswith((".pdparams", ".pdopt", ".tmp")) for f in os.listdir(out))


def test_checkpoint_of_another_head_is_refused(dataset, tmp_path, capsys):
    train_cli.main(cli_args("NeXtVLAD", dataset, tmp_path, epochs=1))
    weights = str(tmp_path / "NeXtVLAD_best.pdparams")
    with pytest.raises(SystemExit):
        eval_cli.main(cli_args("AttentionLSTM", dataset, tmp_path / "eval") + ["--weights", weights])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and weights in err and "AttentionLSTM" in err
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_config_errors_list_the_valid_keys(dataset, tmp_path, capsys):
    args = cli_args("AttentionLSTM", dataset, tmp_path) + ["-o", "TRAIN.epochs=3"]
    expect_input_error(capsys, args, "unknown key TRAIN.epochs", "valid keys of TRAIN:", "epoch,")
    args = cli_args("AttentionLSTM", dataset, tmp_path) + ["-o", "SOLVER.lr=3"]
    expect_input_error(capsys, args, "unknown section 'SOLVER'", "MODEL, TRAIN, VALID, TEST, INFER")


# 64 MB tensors made, written and freed in a fresh process, with or without a Trainer (on the CPU)
# built first; prints the page faults of the last 32, once 8 have settled the heap.
FRESH_PAGES = """
import resource, sys
sys.path.insert(0, sys.argv[3])
import core, paddle
if sys.argv[1] == "trainer":
    from core.trainer import Trainer
    Trainer(task=None, save_dir=sys.argv[2])
def fill():
    x = paddle.full([16 * 2**20], 1.0)
    del x
for _ in range(8):
    fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(32):
    fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.smoke
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_training_on_the_cpu_reuses_freed_memory(tmp_path):
    """A training step's large tensors come back on pages already faulted in (core/heap.py), not on
    fresh ones: a 64 MB tensor is 16,384 pages, each zero-filled by the kernel on first touch. (While the
    heap settles, an aligned block may not fit the hole its predecessor left: the first 0-4 here.)"""
    faults = {}
    for mode in ("plain", "trainer"):
        out = subprocess.run([sys.executable, "-c", FRESH_PAGES, mode, str(tmp_path), ROOT],
                             capture_output=True, text=True, check=True)
        faults[mode] = int(out.stdout.split()[-1])
    assert faults["plain"] > 32 * 16000, faults  # glibc maps and unmaps every such block
    assert faults["trainer"] < 1000, faults


@pytest.mark.smoke
@pytest.mark.parametrize("optimizer", ["RMSProp", "Adam", "Momentum"])
def test_the_update_in_shares_equals_one_optimizer(optimizer):
    """On the CPU the parameters are updated in shares on several cores at once (core/parallel_update.py):
    the same parameters after three steps, bit for bit, with L2 on some of them, and one state dict that
    either kind resumes from."""
    from core.config import load_config
    from core.trainer import build_optimizer, portable_optimizer_state
    from videotag.models import default_config_path, make_task

    overrides = TINY["AttentionLSTM"] + ["MODEL.num_classes=6", "MODEL.feature_dims=[16]", "MODEL.drop_rate=0",
                                         f"TRAIN.optimizer={optimizer}", "TRAIN.weight_decay=0.01"]
    task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), overrides))
    rng = np.random.default_rng(0)
    features = paddle.to_tensor(rng.standard_normal((4, 5, 16)).astype("float32"))
    mask = paddle.to_tensor((np.arange(5)[None, :] < np.array([5, 3, 4, 2])[:, None]).astype("float32"))

    def train(shares, steps, start=None):
        """Parameters and portable optimizer state after `steps` steps (from `start`'s, when given)."""
        paddle.seed(0)
        model = task.build_model()
        model.train()
        optimizer = build_optimizer(task.cfg.TRAIN, model, shares=shares)
        if start:
            model.set_state_dict(start[0])
            optimizer.set_state_dict(portable_optimizer_state(start[1], model, to_portable=False))
        for _ in range(steps):
            model([features], mask).pow(2).mean().backward()
            optimizer.step()
            optimizer.clear_grad()
        assert len(getattr(optimizer, "optimizers", [optimizer])) == shares
        return {k: p.numpy() for k, p in model.named_parameters()}, portable_optimizer_state(optimizer.state_dict(), model)

    def same(a, b):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    one, two = train(1, 3), train(2, 3)
    assert same(one[0], two[0]) and same({k: v.numpy() for k, v in one[1].items()}, {k: v.numpy() for k, v in two[1].items()})
    # a checkpoint of either kind resumed by the other: the step it would have taken
    assert same(train(2, 1, start=train(1, 2))[0], one[0])
    assert same(train(1, 1, start=train(2, 2))[0], one[0])

"""Training's curves, schedule, early stopping and length bucketing, and that the shipped defaults learn
the order of events (bench/order_tasks.py; the full multi-seed study is bench/training_defaults.py)."""
import json
import logging
import os

import numpy as np
import pytest

import train as train_cli
from bench import order_tasks
from core import bf16_products
from core.config import CONFIG_DIR, load_config
from core.errors import InputError
from core.trainer import learning_rate, planned_epochs, scaled_learning_rate, warmup_length
from features import write_feature_dataset
from sequence.data import FeatureListSource
from videotag.models import default_config_path
from videotag_yaml import write_configs

LSTM_REF = default_config_path("AttentionLSTM")
TINY_LSTM = ["MODEL.embedding_size=16", "MODEL.lstm_size=16", "MODEL.hidden_sizes=[32, 16]", "MODEL.num_classes=6",
             "MODEL.feature_dims=[16]", "MODEL.drop_rate=0.0", "TRAIN.num_workers=1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    return {"train": write_feature_dataset(folder, 64, prefix="train", max_frames=16),
            "val": write_feature_dataset(folder, 24, seed=1, prefix="val")}


def run(dataset, save_dir, *overrides, resume=False):
    args = ["--model_name", "AttentionLSTM", "--save_dir", str(save_dir)] + (["--resume"] if resume else [])
    for item in TINY_LSTM + [f"TRAIN.filelist={dataset['train']}", f"VALID.filelist={dataset['val']}",
                             f"TEST.filelist={dataset['val']}", "TRAIN.batch_size=16", "VALID.batch_size=24",
                             "TEST.batch_size=24"] + list(overrides):
        args += ["-o", item]
    train_cli.main(args)
    return [json.loads(line) for line in open(save_dir / "metrics.jsonl")]


def test_curves_are_written_and_a_resumed_run_continues_them(dataset, tmp_path):
    first = run(dataset, tmp_path, "TRAIN.epoch=2", "TRAIN.learning_rate=0.003")
    assert [r["epoch"] for r in first] == [1, 2]
    assert {"train_loss", "lr", "valid_gap", "valid_loss"} <= set(first[0])
    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    (tmp_path / "metrics.jsonl").write_text(
        (tmp_path / "metrics.jsonl").read_text() + json.dumps({"epoch": 3, "train_loss": 9.0}) + "\n")  # a stray
    resumed = run(dataset, tmp_path, "TRAIN.epoch=3", "TRAIN.learning_rate=0.003", resume=True)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    assert resumed[:2] == first and resumed[2]["train_loss"] != 9.0


def test_early_stopping_keeps_the_best_and_says_why(dataset, tmp_path, logs):
    records = run(dataset, tmp_path, "TRAIN.epoch=6", "TRAIN.learning_rate=0.0", "TRAIN.patience=2")
    assert len(records) == 3  # nothing improves after epoch 1 (learning rate 0): epochs 2 and 3, then stop
    assert any("stopping early after epoch 3" in line for line in logs)
    assert (tmp_path / "AttentionLSTM_best.pdparams").exists()
    assert any("only 24 optimizer steps: probably too few to converge" in line for line in logs)


def test_min_steps_adds_epochs_to_a_small_set(dataset, tmp_path, logs):
    records = run(dataset, tmp_path, "TRAIN.epoch=1", "TRAIN.min_steps=10", "TRAIN.patience=0")  # 4 steps an epoch
    assert len(records) == 3
    assert any("TRAIN.epoch 1 raised to reach TRAIN.min_steps 10" in line for line in logs)


def test_the_rate_scales_with_the_batch_warms_up_and_decays():
    train = load_config(LSTM_REF, ["TRAIN.batch_size=128"]).TRAIN
    assert train.lr_schedule == "cosine" and train.reference_batch_size == 32
    assert scaled_learning_rate(train) == pytest.approx(train.learning_rate * 4)
    total = 1000
    rates = [learning_rate(train, 0, step * 128, total) for step in range(total)]
    warmup = train.warmup_steps
    assert rates[0] < rates[warmup // 2] < rates[warmup] == pytest.approx(scaled_learning_rate(train))
    assert rates[warmup] > rates[total // 2] > rates[-1] >= 0
    assert planned_epochs(train, steps_per_epoch=10) == train.min_steps // 10
    # a short run warms up for a tenth of it, no more
    assert learning_rate(train, 0, 10 * 128, 100) == pytest.approx(scaled_learning_rate(train))


@pytest.mark.parametrize("recipe, epochs, warmup", [("pptsm.yaml", 80, 40), ("pptsmv2.yaml", 120, 50)])
def test_pp_recipes_warm_up_ten_epochs_from_half_the_rate(recipe, epochs, warmup):
    """PaddleVideo's: 10 epochs from half the rate (capped at a tenth of the run: 80 epochs warm up 8)."""
    train = load_config(os.path.join(CONFIG_DIR, recipe)).TRAIN
    assert (train.epoch, train.warmup_epochs, train.warmup_start, train.warmup_steps) == (epochs, 10, 0.5, 0)
    base, per_epoch = scaled_learning_rate(train), 5
    total = epochs * per_epoch
    assert warmup_length(train, total, per_epoch) == warmup

    def rate(step):
        return learning_rate(train, 0, step * train.batch_size, total, per_epoch)
    for step in (0, 7, warmup - 1):
        assert rate(step) == pytest.approx(base * (0.5 + 0.5 * (step + 1) / (warmup + 1)), rel=1e-12)
    assert rate(warmup) == pytest.approx(base, rel=1e-12)  # then the cosine from the full rate
    assert rate(total - 1) < 0.001 * base


def test_warmup_epochs_and_start_default_to_todays_schedule():
    train = load_config(LSTM_REF).TRAIN
    assert (train.warmup_epochs, train.warmup_start) == (0, 0.0)
    plain = dict(train)
    del plain["warmup_epochs"], plain["warmup_start"]
    plain = type(train)(plain)
    for step in (0, 50, 99, 100, 500):
        assert learning_rate(train, 0, step * train.batch_size, 1000, 40) == \
            learning_rate(plain, 0, step * train.batch_size, 1000)
    # the longer of warmup_steps (100) and warmup_epochs, capped at a tenth of the run
    longer = load_config(LSTM_REF, ["TRAIN.warmup_epochs=3"]).TRAIN
    assert [warmup_length(longer, 10000, n) for n in (10, 40, 400)] == [100, 120, 1000]


@pytest.mark.parametrize("override, message", [("TRAIN.warmup_start=1.5", "TRAIN.warmup_start .* at most 1"),
                                               ("TRAIN.warmup_epochs=-1", "TRAIN.warmup_epochs must be at least 0"),
                                               ("TRAIN.warmup_epochs=0.5", "TRAIN.warmup_epochs must be an integer")])
def test_warmup_keys_out_of_range_are_refused(override, message):
    with pytest.raises(InputError, match=message):
        load_config(LSTM_REF, [override])


def test_a_config_that_names_its_rate_keeps_its_recipe(tmp_path):
    """VideoTag's yaml: its learning rate was for its own batch, on its piecewise schedule, no warm-up,
    exactly its epochs."""
    videotag = load_config(write_configs(tmp_path)["attention_lstm-single.yaml"], [], LSTM_REF).TRAIN
    assert (videotag.reference_batch_size, videotag.lr_schedule, videotag.warmup_steps, videotag.min_steps) == \
        (128, "piecewise", 0, 0)
    assert scaled_learning_rate(videotag) == pytest.approx(0.000125)
    mine = load_config(LSTM_REF, ["TRAIN.learning_rate=0.002", "TRAIN.reference_batch_size=64",
                                  "TRAIN.lr_schedule=cosine"]).TRAIN
    assert (mine.reference_batch_size, mine.lr_schedule, mine.min_steps) == (64, "cosine", 1000)
    pp = load_config(os.path.join(CONFIG_DIR, "pptsm.yaml"), ["TRAIN.learning_rate=0.02"]).TRAIN
    assert (pp.warmup_epochs, pp.lr_schedule, pp.reference_batch_size) == (0, "cosine", pp.batch_size)


def padded_frames(source, **kwargs):
    return sum(batch.mask.size for batch in source.batches(**kwargs))


def test_bucketing_cuts_padding_and_splits_processes_as_one(tmp_path):
    lengths = np.random.default_rng(0).integers(4, 60, 200)
    lines = []
    for i, frames in enumerate(lengths):
        np.save(tmp_path / f"v{i}.npy", np.ones((frames, 4), np.float32))
        lines.append(f"v{i}.npy {i % 3}")
    (tmp_path / "all.list").write_text("\n".join(lines) + "\n")
    model = {"feature_names": ["rgb"], "feature_dims": [4], "num_classes": 3}
    plain = FeatureListSource(str(tmp_path / "all.list"), model, 16)
    bucketed = FeatureListSource(str(tmp_path / "all.list"), model, 16, bucket_batches=4)
    epoch = dict(shuffle=True, drop_last=True, epoch=1, seed=5)
    assert padded_frames(bucketed, **epoch) < 0.75 * padded_frames(plain, **epoch)
    one = [list(b.indices) for b in bucketed.batches(**epoch)]
    assert len({i for b in one for i in b}) == 12 * 16  # each video once, the short last batch dropped
    assert one == [list(b.indices) for b in bucketed.batches(**epoch)]  # the same for the same (seed, epoch)
    assert one != [list(b.indices) for b in bucketed.batches(**dict(epoch, epoch=2))]
    two = [list(a.indices) + list(b.indices) for a, b in zip(bucketed.batches(0, 2, **epoch),
                                                             bucketed.batches(1, 2, **epoch))]
    assert two == one


def test_attention_lstm_at_shipped_defaults_learns_order(tmp_path, logs):
    """The order labels (which event came first) are out of reach of an order-blind model on pooled
    frames; AttentionLSTM at the shipped TRAIN defaults learns them (small widths, 3 kinds of event and
    min_steps 240 instead of 1000 to take seconds)."""
    paths = order_tasks.write_task(str(tmp_path / "task"), seed=0, train=512, valid=64, test=128, num_events=3,
                                   min_frames=6, max_frames=10)
    blind = order_tasks.order_blind_baseline(paths, num_events=3)
    scores, _ = order_tasks.train_and_score("AttentionLSTM", paths, str(tmp_path / "run"),
                                            ["TRAIN.min_steps=240"] + order_tasks.TINY["AttentionLSTM"],
                                            num_events=3)
    assert blind["order_ap"] < 0.45 and blind["presence_ap"] > 0.9
    assert scores["order_ap"] > blind["order_ap"] + 0.25, (scores, blind)
    if not bf16_products.unavailable_reason():  # --amp on this CPU: the large products in bf16
        logger, level = logging.getLogger("videotag"), logging.getLogger("videotag").level
        logger.setLevel(logging.INFO)  # the line below is an info line
        try:
            amp, _ = order_tasks.train_and_score("AttentionLSTM", paths, str(tmp_path / "amp"),
                                                 ["TRAIN.min_steps=240"] + order_tasks.TINY["AttentionLSTM"],
                                                 num_events=3, amp=True)
        finally:
            logger.setLevel(level)
        assert "--amp on the CPU: AttentionLSTM's large matrix products in bfloat16 (oneDNN), the rest in float32" in logs
        assert amp["order_ap"] > blind["order_ap"] + 0.25, (amp, blind)
        assert abs(amp["order_ap"] - scores["order_ap"]) < 0.05 and abs(amp["gap"] - scores["gap"]) < 0.03

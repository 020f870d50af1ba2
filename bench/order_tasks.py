"""Synthetic frame-feature tasks whose labels need the order of two events, plus presence labels:
the training defaults are judged on them (bench/training_defaults.py, tests/test_training_defaults.py).

Every sequence is T frames (T in [min_frames, max_frames]) of Gaussian noise in which two different
events of `num_events` kinds happen, each a fixed random direction added to `event_frames`
consecutive frames, the first event before the second. Labels:
  0 .. E-1                      event e happens (presence: an order-blind model sees it);
  E + a * (E-1) + b'            event a happens before event b (b' is b's index among the others):
                                both orders of a pair hold the same frames, so only order tells them apart.
"""
import os

import numpy as np
from sklearn.linear_model import LogisticRegression

from core import checkpoint
from core.config import load_config
from core.trainer import Trainer
from sequence.metrics import gap, mean_ap
from sequence.task import sigmoid
from videotag.models import default_config_path, make_task

NUM_EVENTS = 4
DIM = 64
# Model widths cut down for CPU time; every TRAIN key stays at the shipped default unless overridden.
SMALL = {"AttentionLSTM": ["MODEL.embedding_size=128", "MODEL.lstm_size=64", "MODEL.hidden_sizes=[256, 128]"],
         "AttentionCluster": ["MODEL.cluster_nums=16", "MODEL.seg_num=24", "MODEL.hidden_sizes=[256, 256]"],
         "NeXtVLAD": ["MODEL.cluster_size=32", "MODEL.groups=4", "MODEL.hidden_size=256"]}
TINY = {"AttentionLSTM": ["MODEL.embedding_size=32", "MODEL.lstm_size=32", "MODEL.hidden_sizes=[64, 32]"]}  # tests


def num_classes(num_events=NUM_EVENTS):
    return num_events + num_events * (num_events - 1)


def order_label(first, second, num_events):
    return num_events + first * (num_events - 1) + (second if second < first else second - 1)


def make_split(count, rng, directions, min_frames=12, max_frames=24, event_frames=2, strength=1.5):
    """count sequences ([T, D] float32 arrays) and their label lists."""
    num_events, dim = directions.shape
    sequences, labels = [], []
    for _ in range(count):
        frames = int(rng.integers(min_frames, max_frames + 1))
        features = rng.standard_normal((frames, dim)).astype(np.float32)
        first, second = rng.choice(num_events, 2, replace=False)
        start_a = int(rng.integers(0, frames - 2 * event_frames + 1))
        start_b = int(rng.integers(start_a + event_frames, frames - event_frames + 1))
        features[start_a:start_a + event_frames] += strength * directions[first]
        features[start_b:start_b + event_frames] += strength * directions[second]
        sequences.append(features)
        labels.append(sorted([int(first), int(second), order_label(first, second, num_events)]))
    return sequences, labels


def write_task(folder, seed, train=1200, valid=300, test=600, num_events=NUM_EVENTS, dim=DIM, **shape):
    """Write train/valid/test feature lists (npy per sequence) for one seed; returns {split: list path}."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((num_events, dim)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True) / np.sqrt(dim) * 4  # |d| = 2 per unit noise
    paths = {}
    for split, count in (("train", train), ("valid", valid), ("test", test)):
        sequences, labels = make_split(count, rng, directions, **shape)
        os.makedirs(os.path.join(folder, split), exist_ok=True)
        lines = []
        for i, (features, video_labels) in enumerate(zip(sequences, labels)):
            name = f"{split}/{i:05d}.npy"
            np.save(os.path.join(folder, name), features)
            lines.append(" ".join([name] + [str(x) for x in video_labels]))
        paths[split] = os.path.join(folder, f"{split}.list")
        with open(paths[split], "w") as f:
            f.write("\n".join(lines) + "\n")
    return paths


def read_split(list_path, classes):
    """(list of [T, D] arrays, multi-hot [N, classes]) of a written list."""
    folder = os.path.dirname(list_path)
    sequences, targets = [], []
    for line in open(list_path).read().splitlines():
        name, *labels = line.split()
        sequences.append(np.load(os.path.join(folder, name)))
        row = np.zeros(classes, np.float32)
        row[[int(x) for x in labels]] = 1
        targets.append(row)
    return sequences, np.stack(targets)


def scores(probabilities, targets, num_events=NUM_EVENTS):
    """GAP over all labels, mAP of the presence labels and of the order labels."""
    return {"gap": gap(probabilities, targets), "presence_ap": mean_ap(probabilities[:, :num_events],
                                                                       targets[:, :num_events]),
            "order_ap": mean_ap(probabilities[:, num_events:], targets[:, num_events:])}


def order_blind_baseline(paths, num_events=NUM_EVENTS):
    """One logistic regression per label on mean- and max-pooled frames: sees presence, not order."""
    classes = num_classes(num_events)
    train, train_y = read_split(paths["train"], classes)
    test, test_y = read_split(paths["test"], classes)

    def pooled(sequences):
        return np.stack([np.concatenate([s.mean(0), s.max(0)]) for s in sequences])

    x_train, x_test = pooled(train), pooled(test)
    probabilities = np.zeros_like(test_y)
    for label in range(classes):
        fit = LogisticRegression(max_iter=2000).fit(x_train, train_y[:, label])
        probabilities[:, label] = fit.predict_proba(x_test)[:, 1]
    return scores(probabilities, test_y, num_events)


def train_and_score(model_name, paths, save_dir, overrides=(), num_events=NUM_EVENTS, amp=False):
    """Train a head with train.py's trainer on a written task (shipped TRAIN defaults plus `overrides`,
    `amp`: train.py's --amp), then score its best checkpoint on the test split; returns (scores, epochs trained)."""
    settings = SMALL[model_name] + [
        f"MODEL.num_classes={num_classes(num_events)}", f"MODEL.feature_dims=[{DIM}]",
        f"TRAIN.filelist={paths['train']}", f"VALID.filelist={paths['valid']}", f"TEST.filelist={paths['test']}",
        "TRAIN.num_workers=1"] + list(overrides)
    task = make_task(model_name, load_config(default_config_path(model_name), settings))
    trainer = Trainer(task, save_dir, amp=amp)
    model = trainer.fit()
    checkpoint.load_exact(model, os.path.join(save_dir, f"{model_name}_best.pdparams"), model_name)
    _, logits, targets = trainer.infer(model, task.source("test"))
    epochs = len(open(os.path.join(save_dir, "metrics.jsonl")).read().splitlines())
    return scores(sigmoid(logits), targets, num_events), epochs

"""Video quality from features already extracted (stage two): for a library tagged first, its kept
frame features scored without decoding a video again (docs/QUALITY.md).

The head pools a video's frame features over time into their mean (what the frames show) and their
standard deviation (how they change: frozen frames change little), normalises that per video (layer
norm: batch norm's statistics over small batches made training diverge on the synthetic study),
and regresses one score with a small MLP. Loss: L1, as the end-to-end model
(extractor/quality.py); metrics SROCC (the best checkpoint's), PLCC, loss.

Lists: `features.npy score` per line (or `store.h5#id score`; core.lists.scored_entries), the
features as the extractor or `bash run.sh tag --keep_features` writes them.
"""
import os
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.correlation import ScoreRegression
from core.config import check_model_name
from core.errors import InputError
from core.lists import batch_count, list_shares, read_ahead, resolve, scored_entries

from .data import Video, load_features, pad_batch, segments
from .models import build_model


class FeatureQuality(nn.Layer):
    def __init__(self, feature_dims, hidden_size=256, drop_rate=0.5):
        super().__init__()
        dim = int(feature_dims[0])
        self.norm = nn.LayerNorm(2 * dim)
        self.hidden = nn.Linear(2 * dim, hidden_size)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, features, mask):
        """features: [float32 [B, T, D]] (one modality), mask float32 [B, T] -> scores [B, 1]."""
        frames, weights = features[0], mask.unsqueeze(-1)
        count = weights.sum(axis=1).clip(min=1.0)
        mean = (frames * weights).sum(axis=1) / count
        variance = (((frames - mean.unsqueeze(1)) ** 2) * weights).sum(axis=1) / count
        pooled = paddle.concat([mean, paddle.sqrt(variance + 1e-6)], axis=1)
        return self.fc(self.dropout(F.relu(self.hidden(self.norm(pooled)))))


@dataclass
class ScoredFeatures:
    indices: np.ndarray  # positions in the list: evaluation gathers and reorders by them
    names: list
    features: list  # one float32 [B, T, D] array
    mask: np.ndarray  # float32 [B, T]: 1 for real frames
    scores: np.ndarray  # float32 [B, 1]


class ScoredFeatureSource:
    """Batches of a scored feature list, split among processes as every list (core.lists)."""

    def __init__(self, list_path, model_cfg, batch_size, num_workers=4, need_scores=True):
        self.list_path, self.batch_size, self.num_workers = list_path, int(batch_size), max(1, num_workers)
        self.feature_names, self.feature_dims = list(model_cfg["feature_names"]), list(model_cfg["feature_dims"])
        self.seg_num = model_cfg.get("seg_num")
        folder = os.path.dirname(os.path.abspath(list_path))  # as list_entries resolves
        self.videos, self.scores = [], []
        for entry in scored_entries(list_path, "scored feature list", need_scores):
            file_part, _, key = entry.name.partition("#")
            path = resolve(file_part, folder)
            if not os.path.isfile(path):
                raise InputError(f"feature file not found: {file_part} (neither beside the list nor in the "
                                 "working directory)", list_path, entry.line)
            self.videos.append(Video(entry.name, path, key, [], list_path, entry.line))
            self.scores.append(entry.score)

    def __len__(self):
        return len(self.videos)

    def num_batches(self, drop_last):
        return batch_count(len(self.videos), self.batch_size, drop_last)

    def check(self, index):
        load_features(self.videos[index], self.feature_names, self.feature_dims)

    def load(self, index):
        return segments(load_features(self.videos[index], self.feature_names, self.feature_dims), self.seg_num), []

    def batches(self, rank=0, world=1, shuffle=False, drop_last=False, epoch=0, seed=0):
        shares = list_shares(len(self.videos), self.batch_size, rank, world, shuffle, drop_last, epoch, seed,
                             self.list_path)
        for share, samples in read_ahead(shares, self.load, self.num_workers):
            features, mask, _ = pad_batch(samples, 1)
            scores = np.array([[self.scores[i]] for i in share], np.float32)
            yield ScoredFeatures(np.array(share), [self.videos[i].name for i in share], features, mask, scores)


class FeatureQualityTask(ScoreRegression):
    def __init__(self, model_name, model_class, cfg):
        check_model_name(cfg, model_name)
        if len(cfg.MODEL.feature_names) != 1 or len(cfg.MODEL.feature_dims) != 1:
            raise InputError("the quality head takes one feature (MODEL.feature_names [rgb], feature_dims [2048])",
                             cfg.path)
        self.model_name, self.model_class, self.cfg = model_name, model_class, cfg

    def build_model(self):
        return build_model(self.model_class, self.cfg.MODEL)

    def source(self, split, filelist=None):
        section = self.cfg[split.upper()]
        filelist = filelist or section.get("filelist")
        if not filelist:
            return None
        return ScoredFeatureSource(filelist, self.cfg.MODEL, section["batch_size"], need_scores=split != "infer",
                                   num_workers=self.cfg.TRAIN.get("num_workers", 4))

    def forward(self, model, batch):
        return model([paddle.to_tensor(batch.features[0])], paddle.to_tensor(batch.mask))

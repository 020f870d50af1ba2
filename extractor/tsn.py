"""Fine-tuning a stage-one backbone as a video classifier (VideoTag's TSN, PaddleVideo's PP-TSN,
PP-TSM, PP-TSMv2): any backbone of extractor/backbones.py on each sampled frame, the mean of the
segment features, dropout, one fc; single-label softmax cross-entropy (with label smoothing and
mixup when TRAIN asks); top-1 / top-5 accuracy.

The model holds the backbone as `backbone` and the classifier as `fc`, so a checkpoint loads
straight into the extractor (its weight loader strips `backbone.` and ignores `fc`).

Where the dropout goes follows PaddleVideo's heads: after the segment mean for frame-wise backbones
(ppTSNHead), on each frame's features before the mean for temporal-shift backbones (ppTSMHead and
PP-TSMv2's own head). The mean before a linear fc equals the mean of the per-frame logits.

`--pretrain` takes our checkpoints and whatever the backbone's loader reads (VideoTag static,
PaddleVideo's released checkpoints, a bare backbone): the backbone is renamed to ours, the source's
classifier dropped.
"""

import re

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.config import check_model_name
from core.errors import InputError
from core.log import log

from . import backbones
from .tsn_data import VideoListSource

SPLITS = ("TRAIN", "VALID", "TEST")
ATTENTION_KEY = re.compile(r"(^|\.)(global|temporal)_attention\.")  # PP-TSMv2's, in PaddleVideo's names or ours


class TSN(nn.Layer):
    def __init__(self, depth=101, num_classes=400, drop_rate=0.0, freeze_bn=False, model_cfg=None):
        """model_cfg: the MODEL section naming the backbone and its options (None: ResNet TSN of `depth`)."""
        super().__init__()
        self.model_cfg = {**(model_cfg or {}), "num_layers": depth}
        spec = backbones.get(self.model_cfg)
        self.backbone = spec.build(self.model_cfg)
        self.feature_dim = spec.feature_dim(self.model_cfg)
        self.clip_frames = spec.clip_frames(self.model_cfg)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.feature_dim, num_classes)
        # Frozen BN normalises with the running statistics while training (its scale and shift
        # still learn): results then do not depend on how a batch is split among processes.
        self.frozen_bn = [m for m in self.backbone.sublayers() if isinstance(m, nn.BatchNorm2D)] if freeze_bn else []

    def forward(self, images):
        """images float32 [B, seg_num, 3, S, S] -> logits [B, num_classes]."""
        for bn in self.frozen_bn:
            bn.training = False  # set here: DataParallel.train() does not go through our train()
        batch, seg_num = images.shape[0], images.shape[1]
        features = self.backbone(images.reshape([-1, *images.shape[2:]]))
        if self.clip_frames:  # ppTSMHead: dropout on each frame's features, then their mean
            return self.fc(self.dropout(features).reshape([batch, seg_num, self.feature_dim]).mean(axis=1))
        pooled = features.reshape([batch, seg_num, self.feature_dim]).mean(axis=1)
        return self.fc(self.dropout(pooled))


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def top_k_accuracy(logits, labels, k):
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def soft_targets(labels, num_classes, smoothing=0.0, mixed_labels=None, lam=1.0):
    """float32 [B, num_classes] targets: PaddleVideo's label smoothing, (1 - eps) * one_hot + eps / C,
    and mixup's blend of the two label sets, lam * t(labels) + (1 - lam) * t(mixed_labels) (the
    cross-entropy is linear in its targets: the same as blending the two losses)."""
    def smoothed(ids):
        return np.eye(num_classes, dtype=np.float32)[ids] * (1 - smoothing) + smoothing / num_classes

    targets = smoothed(labels)
    if mixed_labels is not None:
        targets = lam * targets + (1 - lam) * smoothed(mixed_labels)
    return targets.astype(np.float32)


class TSNTask:
    best_metric = "top1"

    def __init__(self, model_name, model_class, cfg):
        check_model_name(cfg, model_name)
        self.model_name, self.model_class, self.cfg = model_name, model_class, cfg
        self.spec = backbones.get(cfg.MODEL, cfg.path)
        self.pretrain_path = None
        self._check_clip_frames()

    def _check_clip_frames(self):
        """A temporal-shift backbone shifts exactly MODEL.num_seg frames together: every split must
        sample that many (a clip of another length would be cut across videos)."""
        frames = self.spec.clip_frames(self.cfg.MODEL)
        for split in SPLITS:
            seg_num = self.cfg[split].get("seg_num")
            if frames and seg_num != frames:
                raise InputError(f"{split}.seg_num is {seg_num} but {self.spec.description} shifts MODEL.num_seg "
                                 f"{frames} frames together: set both to the same count", self.cfg.path)

    def build_model(self):
        model_cfg = self.cfg.MODEL
        return self.model_class(int(model_cfg.get("num_layers", 101)), int(model_cfg.num_classes),
                                model_cfg.get("drop_rate", 0.0), bool(model_cfg.get("freeze_bn", False)), dict(model_cfg))

    def adopt_checkpoint(self, state, path):
        """Before the model is built: remember where the checkpoint is (--pretrain reads it with the
        backbone's own loader), and follow its PP-TSMv2 temporal attention (PaddleVideo's 16-frame
        distilled release has one, the others none), which changes the network."""
        self.pretrain_path = path
        if self.spec.name == "pptsmv2":
            attention = any(ATTENTION_KEY.search(key) for key in state)
            if attention != bool(self.cfg.MODEL.get("temporal_attention", False)):
                log.info("%s: %s temporal attention: MODEL.temporal_attention=%s", path,
                         "PP-TSMv2 weights with" if attention else "PP-TSMv2 weights without", str(attention).lower())
                self.cfg.MODEL["temporal_attention"] = attention
        return state

    def convert_pretrained(self, state, model):
        """--pretrain: our names pass as they are; anything else goes through the backbone's loader
        (VideoTag static, PaddleVideo's released checkpoints, a bare backbone), onto `backbone.*`,
        the source's classifier dropped."""
        backbone_state = model.backbone.state_dict()
        if any(key.startswith("backbone.") and key[len("backbone."):] in backbone_state for key in state):
            return state
        if self.pretrain_path is None:
            raise InputError("pretrained weights in another project's names need their file path")
        loaded = self.spec.build(model.model_cfg)
        missing, _ = self.spec.load_weights(loaded, self.pretrain_path)
        return {f"backbone.{key}": value for key, value in loaded.state_dict().items() if key not in set(missing)}

    def source(self, split, filelist=None):
        if split == "infer":
            return None  # extraction (python -m extractor) reads INFER, not the trainer
        filelist = filelist or self.cfg[split.upper()].get("filelist")
        if not filelist:
            return None
        train = self.cfg.TRAIN
        return VideoListSource(filelist, self.cfg[split.upper()], self.cfg.MODEL.num_classes,
                               training=split == "train", num_workers=train.get("num_workers", 4),
                               mixup_alpha=train.get("mixup_alpha", 0.0))

    def forward(self, model, batch):
        return model(paddle.to_tensor(batch.images))

    def loss(self, logits, batch):
        smoothing = self.cfg.TRAIN.get("label_smoothing", 0.0)
        if not smoothing and batch.mixed_labels is None:
            return F.cross_entropy(logits, paddle.to_tensor(batch.labels))  # softmax inside, once
        targets = soft_targets(batch.labels, logits.shape[1], smoothing, batch.mixed_labels, batch.lam)
        return F.cross_entropy(logits, paddle.to_tensor(targets), soft_label=True)

    def targets(self, batch):
        return batch.labels

    def metrics(self, logits, labels):
        loss = -log_softmax(logits)[np.arange(len(labels)), labels].mean()
        return {"top1": top_k_accuracy(logits, labels, 1),
                "top5": top_k_accuracy(logits, labels, min(5, logits.shape[1])), "loss": float(loss) + 0.0}  # no -0.0

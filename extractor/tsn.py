"""TSN fine-tuning (VideoTag stage one): the ResNet backbone on each sampled frame, the mean of the
segment features, one fc; single-label softmax cross-entropy; top-1 / top-5 accuracy.

The model holds the backbone as `backbone` and the classifier as `fc`, so a TSN checkpoint
loads straight into the extractor (extractor/weights.py strips `backbone.` and ignores `fc`).

`--pretrain` takes our TSN checkpoints and any ResNet the extractor reads (VideoTag static,
PaddleVideo dygraph, a bare ResNet): its backbone is renamed to ours, its classifier dropped.
"""

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.errors import InputError

from .resnet import FEATURE_DIM, ResNet
from .tsn_data import VideoListSource
from .weights import convert_state



class TSN(nn.Layer):
    def __init__(self, depth=101, num_classes=400, drop_rate=0.0, freeze_bn=False):
        super().__init__()
        self.backbone = ResNet(depth)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        # Frozen BN normalises with the running statistics while training (its scale and shift
        # still learn): results then do not depend on how a batch is split among processes.
        self.frozen_bn = [m for m in self.backbone.sublayers() if isinstance(m, nn.BatchNorm2D)] if freeze_bn else []

    def forward(self, images):
        """images float32 [B, seg_num, 3, S, S] -> logits [B, num_classes]."""
        for bn in self.frozen_bn:
            bn.training = False  # set here: DataParallel.train() does not go through our train()
        batch, seg_num = images.shape[0], images.shape[1]
        features = self.backbone(images.reshape([-1, *images.shape[2:]]))
        pooled = features.reshape([batch, seg_num, FEATURE_DIM]).mean(axis=1)
        return self.fc(self.dropout(pooled))


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def top_k_accuracy(logits, labels, k):
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


class TSNTask:
    best_metric = "top1"

    def __init__(self, model_name, model_class, cfg):
        if cfg.MODEL.get("name", model_name) != model_name:
            raise InputError(f"the config is for {cfg.MODEL['name']}, not {model_name}", cfg.path)
        self.model_name, self.model_class, self.cfg = model_name, model_class, cfg

    def convert_pretrained(self, state, model):
        """--pretrain: our TSN names pass as they are; a ResNet in another scheme the extractor reads
        (VideoTag static, PaddleVideo dygraph, a bare ResNet) is renamed onto `backbone.*`, and its
        classifier dropped."""
        backbone_state = model.backbone.state_dict()
        if any(key.startswith("backbone.") and key[len("backbone."):] in backbone_state for key in state):
            return state
        converted, _, _ = convert_state(state, backbone_state, model.backbone.depth)
        return {f"backbone.{key}": value for key, value in converted.items()}

    def build_model(self):
        model_cfg = self.cfg.MODEL
        return self.model_class(int(model_cfg.num_layers), int(model_cfg.num_classes), model_cfg.get("drop_rate", 0.0),
                   bool(model_cfg.get("freeze_bn", False)))

    def source(self, split, filelist=None):
        if split == "infer":
            return None  # extraction (python -m extractor) reads INFER, not the trainer
        filelist = filelist or self.cfg[split.upper()].get("filelist")
        if not filelist:
            return None
        return VideoListSource(filelist, self.cfg[split.upper()], self.cfg.MODEL.num_classes,
                               training=split == "train", num_workers=self.cfg.TRAIN.get("num_workers", 4))

    def forward(self, model, batch):
        return model(paddle.to_tensor(batch.images))

    def loss(self, logits, batch):
        return F.cross_entropy(logits, paddle.to_tensor(batch.labels))  # softmax inside, once

    def targets(self, batch):
        return batch.labels

    def metrics(self, logits, labels):
        loss = -log_softmax(logits)[np.arange(len(labels)), labels].mean()
        return {"top1": top_k_accuracy(logits, labels, 1),
                "top5": top_k_accuracy(logits, labels, min(5, logits.shape[1])), "loss": float(loss) + 0.0}  # no -0.0

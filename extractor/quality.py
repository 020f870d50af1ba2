"""The end-to-end video quality model (PaddleVideo's VideoQualityAssessment: PP-TSM fine-tuned as a
one-output regressor on mean opinion scores): a stage-one backbone of the registry (MODEL.backbone)
on each sampled frame, dropout, the mean over the segments, one fc to a single score.

As the reference's head (TSMRecHead with num_classes 1): dropout 0.5 on each frame's pooled
features before the segment mean, no output activation (scores are regressed as they are, MOS in
[0, 1] in KonVid-150k), fc weight and bias uniform in +-1/sqrt(features), the bias learning at twice
the rate and without L2. Loss: L1 (the mean absolute error), the reference head's default, which
its config keeps. Metrics over the whole set: SROCC (the best checkpoint's), PLCC, loss.

The model holds the backbone as `backbone` and the regressor as `fc`; PaddleVideo's checkpoints
(`backbone.*`, `head.fc.*`) load through the backbone's own weight loader (adopt_checkpoint).
"""
import math

import paddle
from paddle import nn

from core.correlation import ScoreRegression
from core.config import check_model_name
from core.errors import InputError
from core.log import log

from . import backbones
from .quality_data import QualityListSource, check_input

HEAD_PREFIX = "head."  # PaddleVideo's name of the head: head.fc.weight is our fc.weight


class QualityNet(nn.Layer):
    def __init__(self, model_cfg):
        super().__init__()
        spec = backbones.get(model_cfg)
        dim = spec.feature_dim(model_cfg)
        self.backbone = spec.build(model_cfg)
        self.dropout = nn.Dropout(float(model_cfg.get("drop_rate", 0.5)))
        bound = 1.0 / math.sqrt(dim)
        uniform = nn.initializer.Uniform(-bound, bound)
        self.fc = nn.Linear(dim, 1, weight_attr=paddle.ParamAttr(initializer=uniform),
                            bias_attr=paddle.ParamAttr(initializer=uniform, learning_rate=2.0))

    def forward(self, images):
        """images float32 [B, seg_num, 3, H, W] -> scores [B, 1]."""
        batch, seg_num = images.shape[0], images.shape[1]
        features = self.backbone(images.reshape([-1, *images.shape[2:]]))
        pooled = self.dropout(features).reshape([batch, seg_num, -1]).mean(axis=1)
        return self.fc(pooled)


class QualityTask(ScoreRegression):
    def __init__(self, model_name, model_class, cfg):
        check_model_name(cfg, model_name)
        self.model_name, self.model_class, self.cfg = model_name, model_class, cfg
        self.spec = backbones.get(cfg.MODEL, cfg.path)
        clip = self.spec.clip_frames(cfg.MODEL)
        for split in ("TRAIN", "VALID", "TEST", "INFER"):
            section = cfg.get(split) or {}
            check_input(section, cfg.path, split)
            if clip and section.get("seg_num") and int(section["seg_num"]) != clip:
                raise InputError(f"{split}.seg_num {section['seg_num']}: {self.spec.description} shifts "
                                 f"{clip} frames together, so each video must give exactly {clip}", cfg.path)

    def build_model(self):
        return self.model_class(self.cfg.MODEL)

    def adopt_checkpoint(self, state, path):
        """Our checkpoints as they are; another project's (PaddleVideo's quality model: `backbone.*` in its
        names, `head.fc.*`; or a bare backbone, e.g. PP-TSM or ResNet from ImageNet/Kinetics) through the
        backbone's own weight loader, with `head.fc.*` as our `fc.*`."""
        if "fc.weight" in state:
            return state
        network = self.spec.build(self.cfg.MODEL)
        missing, _ = self.spec.load_weights(network, path)
        if missing:
            raise InputError(f"{len(missing)} weights of the {self.spec.description} backbone are not in this "
                             f"checkpoint (first: {missing[0]})", path)
        converted = {f"backbone.{key}": value.numpy() for key, value in network.state_dict().items()}
        head = {key[len(HEAD_PREFIX):]: value for key, value in state.items() if key.startswith(HEAD_PREFIX + "fc.")}
        log.info("%s: another project's weights, the backbone read as %s%s", path, self.spec.description,
                 ", head.fc as fc" if head else "")
        return {**converted, **head}

    def source(self, split, filelist=None):
        section = self.cfg[split.upper()]
        filelist = filelist or section.get("filelist")
        if not filelist:
            return None
        return QualityListSource(filelist, section, training=split == "train", need_scores=split != "infer",
                                 num_workers=self.cfg.TRAIN.get("num_workers", 4))

    def forward(self, model, batch):
        return model(paddle.to_tensor(batch.images))

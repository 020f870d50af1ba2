"""TSN fine-tuning (VideoTag stage one): the ResNet backbone on each sampled frame, the mean of the
segment features, one fc; single-label softmax cross-entropy; top-1 / top-5 accuracy.

The model holds the backbone as `backbone` and the classifier as `fc`, so a TSN checkpoint
loads straight into the extractor (extractor/weights.py strips `backbone.` and ignores `fc`).

`--pretrain` loads parameters by name (ours: `backbone.stem.conv.weight`, ...). Convert an
ImageNet or VideoTag checkpoint in another naming scheme first:
    python -m extractor.tsn --convert resnet101_static.pdparams --out imagenet_r101.pdparams
"""
import argparse
import logging

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from videotag.errors import InputError, exit_on_input_error

from .resnet import FEATURE_DIM, ResNet
from .tsn_data import VideoListSource

log = logging.getLogger("videotag")


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
    model_name = "TSN"
    best_metric = "top1"

    def __init__(self, cfg):
        if cfg.MODEL.get("name", "TSN") != "TSN":
            raise InputError(f"the config is for {cfg.MODEL['name']}, not TSN", cfg.path)
        self.cfg = cfg

    def build_model(self):
        model_cfg = self.cfg.MODEL
        return TSN(int(model_cfg.num_layers), int(model_cfg.num_classes), model_cfg.get("drop_rate", 0.0),
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


def convert_for_pretrain(in_path, out_path, depth):
    """Write `in_path` (a ResNet in any scheme extractor.weights reads) under TSN's names, for --pretrain."""
    from .weights import load_weights

    backbone = ResNet(depth)
    missing, _ = load_weights(backbone, in_path)
    if missing:
        raise InputError(f"{len(missing)} backbone weights missing (e.g. {missing[0]}): not a ResNet-{depth}?",
                         in_path)
    paddle.save({f"backbone.{k}": v for k, v in backbone.state_dict().items()}, out_path)
    log.info("wrote %s: the ResNet-%d backbone of %s under TSN's names (fc left for fine-tuning)",
             out_path, depth, in_path)


@exit_on_input_error
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m extractor.tsn", description=convert_for_pretrain.__doc__)
    p.add_argument("--convert", required=True, metavar="WEIGHTS", help="ResNet checkpoint: static, PaddleVideo or ours")
    p.add_argument("--out", required=True, help="the .pdparams to pass to train.py --pretrain")
    p.add_argument("--depth", type=int, default=101, help="ResNet depth (MODEL.num_layers)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    convert_for_pretrain(args.convert, args.out, args.depth)


if __name__ == "__main__":
    main()

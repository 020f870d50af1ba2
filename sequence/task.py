"""What the trainer needs to know about the multi-label heads: data, loss, metrics."""
import numpy as np
import paddle
import paddle.nn.functional as F

from core.config import check_model_name
from core.errors import InputError
from core.log import log

from . import metrics as metric_fns
from . import yt8m
from .data import FeatureListSource, observed_dims
from .models import build_model

def sigmoid(logits):
    return np.exp(-np.logaddexp(0, -logits))  # no overflow for large negative logits


class SequenceTask:
    best_metric = "gap"

    def __init__(self, model_name, model_class, cfg):
        check_model_name(cfg, model_name)
        self.model_name, self.model_class, self.cfg = model_name, model_class, cfg
        # MODEL.feature_dims left to the reference config: taken from the first feature list opened
        # before the model is built (the backbone decides it: 2048 ResNet, 1280 PP-TSMv2, ...)
        self.dims_open = "MODEL.feature_dims" not in getattr(cfg, "named", {"MODEL.feature_dims"})
        if not self.dims_open:
            self._check_dims()

    def _check_dims(self):
        dims, names = self.cfg.MODEL.feature_dims, self.cfg.MODEL.feature_names
        if len(dims) != len(names):
            raise InputError(f"MODEL.feature_names {names} and MODEL.feature_dims {dims} differ in length",
                             self.cfg.path)

    def build_model(self):
        if self.dims_open:  # no feature list opened first (eval, predict): the config's sizes
            self._check_dims()
            self.dims_open = False  # the model's sizes are fixed from here on
        return build_model(self.model_class, self.cfg.MODEL)

    def _take_dims_from(self, source):
        """MODEL.feature_dims from the first video of `source`; its check() holds every other file to them."""
        video = source.videos[0]
        dims = observed_dims(video, source.feature_names)
        if dims != list(self.cfg.MODEL.feature_dims):
            log.info("MODEL.feature_dims %s, from the features (%s; the config does not set it)", dims, video.path)
        self.cfg.MODEL["feature_dims"] = dims
        source.feature_dims = dims
        self.dims_open = False

    def adopt_checkpoint(self, state, path):
        """The checkpoint at `path` in our names (VideoTag's, the PaddleCV zoo's, PaddleVideo's, ours:
        sequence/models/*_weights.py); sets the MODEL switches it needs (e.g. MODEL.lstm), so call it
        before build_model."""
        convert = getattr(self.model_class, "convert_checkpoint", None)
        if convert is None:
            return state
        try:
            converted = convert(state, self.cfg.MODEL)
        except InputError as err:
            raise InputError(str(err), path) from None
        changed = {k: v for k, v in converted.model.items() if self.cfg.MODEL.get(k) != v}
        if converted.family != "ours" or changed:
            log.info("%s: %s weights for %s%s", path, converted.family, self.model_name,
                     "".join(f", MODEL.{k}={v}" for k, v in changed.items()))
        self.cfg.MODEL.update(converted.model)
        return converted.state

    def source(self, split, filelist=None):
        section = self.cfg[split.upper()]
        filelist = filelist or section.get("filelist")
        if not filelist:
            return None
        train = self.cfg.TRAIN
        if yt8m.names_records(filelist):  # the rule is in sequence/data.py's docstring
            return yt8m.RecordSource(filelist, self.cfg.MODEL, section["batch_size"],
                                     num_workers=train.get("num_workers", 4),
                                     shuffle_buffer=train.get("shuffle_buffer", yt8m.SHUFFLE_BUFFER))
        source = FeatureListSource(filelist, self.cfg.MODEL, section["batch_size"], need_labels=split != "infer",
                                   num_workers=train.get("num_workers", 4),
                                   bucket_batches=train.get("bucket_batches", 0))
        if self.dims_open:
            self._take_dims_from(source)
        return source

    def forward(self, model, batch):
        return model([paddle.to_tensor(f) for f in batch.features], paddle.to_tensor(batch.mask))

    def loss(self, logits, batch):
        labels = paddle.to_tensor(batch.labels)
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(axis=1).mean()

    def targets(self, batch):
        return batch.labels

    def metrics(self, logits, labels):
        probabilities = sigmoid(logits)
        # Sigmoid cross-entropy summed over classes, mean over videos, in a stable form.
        loss = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
        return {**metric_fns.all_metrics(probabilities, labels), "loss": float(loss.sum(axis=1).mean())}

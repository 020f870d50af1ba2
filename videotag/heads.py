"""The head as tagging runs it: from a checkpoint (dygraph) or from an export (paddle.inference),
and the Tagger that turns frame-feature sequences into top-k tags."""
import json
import os

import numpy as np
import paddle
import paddle.inference

from core.checkpoint import build_with_weights
from core.errors import InputError
from extractor import backbones
from extractor.predictor import backbone_shape, model_file
from sequence.data import Batch, pad_batch, segments
from sequence.task import sigmoid

MANIFEST = "export.json"  # written by videotag.export next to the two models


def read_label_names(path, num_classes):
    if not path:
        return [str(i) for i in range(num_classes)]
    if not os.path.isfile(path):
        raise InputError("label file not found", path)
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    while names and not names[-1].strip():
        names.pop()
    if len(names) != num_classes:
        raise InputError(f"{len(names)} label names, but MODEL.num_classes is {num_classes}", path)
    return names


def top_tags(probabilities, label_names, topk):
    best = np.argsort(-probabilities, kind="stable")[:topk]
    return [{"class_id": int(c), "class_name": label_names[c], "probability": round(float(probabilities[c]), 6)}
            for c in best]


class DygraphHead:
    def __init__(self, task, weights):
        self.task, self.model = task, build_with_weights(task, weights)
        self.model.eval()

    def __call__(self, batch):
        with paddle.no_grad():
            return self.task.forward(self.model, batch).numpy()


class InferenceHead:
    """The head exported by videotag.export, through paddle.inference; inputs fed by name."""

    def __init__(self, prefix, feature_names, device):
        config = paddle.inference.Config(model_file(prefix), prefix + ".pdiparams")
        if device.startswith("gpu"):
            config.enable_use_gpu(256, int(device.partition(":")[2] or 0))
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(os.cpu_count() or 1)
        config.disable_glog_info()
        self.predictor = paddle.inference.create_predictor(config)
        self.feature_names = list(feature_names)

    def __call__(self, batch):
        for name, array in [*zip(self.feature_names, batch.features), ("mask", batch.mask)]:
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()


class Tagger:
    """Frame-feature sequences -> top-k tags, through a head (dygraph or exported)."""
    def __init__(self, head, model_cfg, label_names, topk, batch_size):
        self.head, self.label_names, self.topk = head, label_names, topk
        self.seg_num = model_cfg.get("seg_num")  # Attention Cluster's frame sampling, as in feature mode
        self.num_classes, self.batch_size = model_cfg["num_classes"], max(1, batch_size)
        self.feature_names, self.feature_dims = list(model_cfg["feature_names"]), list(model_cfg["feature_dims"])

    def __call__(self, sequences):
        tags = []
        for start in range(0, len(sequences), self.batch_size):
            samples = [(segments([s], self.seg_num), []) for s in sequences[start:start + self.batch_size]]
            features, mask, labels = pad_batch(samples, self.num_classes)
            logits = self.head(Batch(np.arange(len(samples)), [""] * len(samples), features, mask, labels))
            tags += [top_tags(p, self.label_names, self.topk) for p in sigmoid(logits)]
        return tags


def load_manifest(inference_dir):
    path = os.path.join(inference_dir, MANIFEST)
    if not os.path.isfile(path):
        raise InputError(f"no {MANIFEST}: not a folder written by `bash run.sh export` (or it did not finish)",
                         inference_dir)
    with open(path) as f:
        return json.load(f)


def as_overrides(sections):
    """{"MODEL": {...}} -> ["MODEL.key=<json>", ...]: an export's settings, as config overrides."""
    return [f"{section}.{key}={json.dumps(value)}" for section, values in sections.items()
            for key, value in values.items()]


def check_head_takes_extractor_features(model_cfg, path, extractor_model=None):
    """Refuse a head that cannot take the features of the extractor's backbone (its MODEL section;
    None: VideoTag's ResNet TSN)."""
    extractor_model = extractor_model or {}
    feature_dim = backbone_shape(extractor_model)[0]
    if len(model_cfg["feature_names"]) != 1 or list(model_cfg["feature_dims"]) != [feature_dim]:
        raise InputError(f"tagging videos feeds the head the extractor's one {feature_dim}-d feature "
                         f"({backbones.get(extractor_model).description}), but MODEL.feature_names is "
                         f"{model_cfg['feature_names']} with feature_dims {model_cfg['feature_dims']}", path)

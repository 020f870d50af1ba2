"""Every model the commands know, in one place: adding a head is an entry here plus its file in
sequence/models/. run.sh, the command-line tools, the demo and bench/ read this table."""
import dataclasses
import os

from core.config import CONFIG_DIR
from core.errors import InputError
from extractor.quality import QualityNet, QualityTask
from extractor.tsn import TSN, TSNTask
from sequence.models import build_model
from sequence.models.attention_cluster import AttentionCluster
from sequence.models.attention_lstm import AttentionLSTM
from sequence.models.nextvlad import NeXtVLAD
from sequence.quality import FeatureQuality, FeatureQualityTask
from sequence.task import SequenceTask


@dataclasses.dataclass(frozen=True)
class Entry:
    model_class: type
    config: str  # its reference config, in configs/
    task: type  # what the trainer needs to know: task(model_name, model_class, cfg)
    demo: tuple = ()  # overrides that shrink a head for `bash run.sh demo` (stage-two heads only)


MODELS = {
    "AttentionLSTM": Entry(AttentionLSTM, "attention_lstm.yaml", SequenceTask, demo=(
        "MODEL.embedding_size=128", "MODEL.lstm_size=64", "MODEL.hidden_sizes=[256, 128]")),
    "AttentionCluster": Entry(AttentionCluster, "attention_cluster.yaml", SequenceTask, demo=(
        "MODEL.seg_num=8", "MODEL.cluster_nums=8", "MODEL.hidden_sizes=[256, 128]")),
    "NeXtVLAD": Entry(NeXtVLAD, "nextvlad.yaml", SequenceTask, demo=(
        "MODEL.cluster_size=16", "MODEL.groups=4", "MODEL.hidden_size=256", "MODEL.gating_reduction=4")),
    "TSN": Entry(TSN, "tsn.yaml", TSNTask),
    # stage one's PaddleVideo backbones fine-tuned as classifiers: the TSN task, MODEL.backbone from their config
    "PPTSN": Entry(TSN, "pptsn.yaml", TSNTask),
    "PPTSM": Entry(TSN, "pptsm.yaml", TSNTask),
    "PPTSMv2": Entry(TSN, "pptsmv2.yaml", TSNTask),
    "Quality": Entry(QualityNet, "quality.yaml", QualityTask),  # end to end, on videos
    "QualityHead": Entry(FeatureQuality, "quality_head.yaml", FeatureQualityTask),  # on extracted features
}
HEADS = tuple(name for name, entry in MODELS.items() if entry.task is SequenceTask)


def entry(model_name):
    if model_name not in MODELS:
        raise InputError(f"unknown model '{model_name}'; choose one of {', '.join(MODELS)}")
    return MODELS[model_name]


def default_config_path(model_name):
    """configs/attention_lstm.yaml for AttentionLSTM, configs/tsn.yaml for TSN, ..."""
    return os.path.join(CONFIG_DIR, entry(model_name).config)


def make_task(model_name, cfg):
    return entry(model_name).task(model_name, entry(model_name).model_class, cfg)


def build_head(model_cfg):
    """A stage-two head from a MODEL section, the class picked by its `name`."""
    name = model_cfg.get("name")
    if name not in HEADS:
        raise InputError(f"unknown model name {name!r}; valid: {', '.join(HEADS)}")
    return build_model(MODELS[name].model_class, model_cfg)

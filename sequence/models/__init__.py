"""Stage-two heads: multi-label classifiers over variable-length frame-feature sequences.

Every head is called as `logits = model(features, mask)`: `features` is a list with one
float32 [B, T, D_i] tensor per modality (in feature_names order), `mask` is float32 [B, T]
with 1 for real frames and 0 for padding. Padded frames never change the output. The final
layer is always `model.classifier` (an nn.Linear), so fine-tuning can re-initialise exactly it.

Each head's class has `convert_checkpoint(state, model_cfg)`: checkpoints of VideoTag, the PaddleCV
zoo and PaddleVideo onto its names, and the MODEL switches they need (`<head>_weights.py`).
"""
import inspect

from core.errors import InputError


def build_model(model_class, model_cfg):
    """A `model_class` built from the MODEL section of a config.

    Keys the head's constructor does not take (name, feature_names, topk, seg_num, ...)
    belong to the data side and are ignored.
    """
    name = model_class.__name__
    parameters = inspect.signature(model_class.__init__).parameters
    missing = [key for key, parameter in parameters.items()
               if key != "self" and parameter.default is inspect.Parameter.empty and key not in model_cfg]
    if missing:
        raise InputError(f"MODEL section for {name} lacks {', '.join(missing)}")
    return model_class(**{key: value for key, value in model_cfg.items() if key in parameters})

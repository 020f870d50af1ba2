"""Stage one's networks, chosen by MODEL.backbone in the extractor's config: each one turns
frames into features, with its classifier removed.

Every backbone is a paddle Layer: float32 images [N, 3, S, S] -> float32 features [N, feature_dim].
A temporal-shift backbone (PP-TSM, PP-TSMv2) mixes the frames of one clip: N is then a multiple
of `clip_frames(MODEL)` and each run of that many consecutive images is one clip, in time order.

Adding a backbone: its network in one file of extractor/, its weight loader, and an entry here.
"""
import dataclasses
from typing import Callable

from core.errors import InputError

from . import pp_weights, pptsm_v2, resnet, resnet_vd, weights


@dataclasses.dataclass(frozen=True)
class Backbone:
    name: str  # MODEL.backbone
    description: str  # for logs and errors
    build: Callable  # MODEL section -> the network (random weights, train mode)
    load_weights: Callable  # (network, path) -> (missing, unexpected): any checkpoint layout we read
    feature_dim: Callable  # MODEL section -> the feature size
    clip_frames: Callable = lambda model_cfg: 0  # MODEL section -> frames shifted together (0: frames independent)
    depths: tuple = ()  # the MODEL.num_layers it accepts (empty: it has none)


def _depth(model_cfg):
    return int(model_cfg.get("num_layers", 101))


def _resnet_tsn(model_cfg):
    return resnet.ResNet(_depth(model_cfg))


def _clip_frames(model_cfg):
    frames = model_cfg.get("num_seg", 8)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise InputError(f"MODEL.num_seg must be a whole number of frames >= 1, not {frames!r}")
    return frames


def _pptsn(model_cfg):
    return resnet_vd.ResNetVd(_depth(model_cfg))


def _pptsm(model_cfg):
    return resnet_vd.ResNetVd(_depth(model_cfg), temporal_shift=True,
                              clip_frames=_clip_frames(model_cfg))


def _pptsmv2(model_cfg):
    # temporal attention: PaddleVideo's 16-frame distilled release has it, the others do not
    return pptsm_v2.PPTSMv2(_clip_frames(model_cfg), bool(model_cfg.get("temporal_attention", False)))


BACKBONES = {
    "resnet_tsn": Backbone("resnet_tsn", "ResNet TSN (VideoTag's stage one)", _resnet_tsn, weights.load_weights,
                           lambda model_cfg: resnet.FEATURE_DIM, depths=tuple(resnet.BLOCKS_PER_STAGE)),
    "pptsn": Backbone("pptsn", "PP-TSN (ResNet-vd TSN)", _pptsn, pp_weights.load_weights,
                      lambda model_cfg: resnet_vd.FEATURE_DIM, depths=(50,)),
    "pptsm": Backbone("pptsm", "PP-TSM (ResNet-vd, temporal shift)", _pptsm, pp_weights.load_weights,
                      lambda model_cfg: resnet_vd.FEATURE_DIM, _clip_frames, depths=(50, 101)),
    "pptsmv2": Backbone("pptsmv2", "PP-TSMv2 (PP-LCNetV2, temporal shift)", _pptsmv2, pp_weights.load_weights,
                        lambda model_cfg: pptsm_v2.FEATURE_DIM, _clip_frames),
}
DEFAULT = "resnet_tsn"  # a config without MODEL.backbone: VideoTag's ResNet TSN


def backbone_name(model_cfg):
    return str(model_cfg.get("backbone", DEFAULT))


def get(model_cfg, where=None):
    """The Backbone a MODEL section names; refuses an unknown name or depth in one line."""
    name = backbone_name(model_cfg)
    if name not in BACKBONES:
        raise InputError(f"MODEL.backbone '{name}' is not one of {', '.join(BACKBONES)}", where)
    spec = BACKBONES[name]
    if spec.depths and _depth(model_cfg) not in spec.depths:
        raise InputError(f"{spec.description} has no depth {_depth(model_cfg)}: MODEL.num_layers is one of "
                         f"{', '.join(map(str, spec.depths))}", where)
    return spec

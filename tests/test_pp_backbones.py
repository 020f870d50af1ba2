"""The PP backbones (PP-TSN, PP-TSM, PP-TSMv2) against PaddleVideo's own classes.

tests/fixtures/paddlevideo/ holds what tools/paddlevideo_reference/make_fixtures.py recorded from
PaddleVideo's backbone classes: each network's state-dict names and shapes, shared input frames,
and PaddleVideo's features. The weights are made again here (tests/paddlevideo_weights.py), saved
in one of PaddleVideo's checkpoint layouts and loaded through our loaders.
"""
import json
import pathlib

import extractor  # noqa: F401  (before paddle)
import numpy as np
import paddle
import pytest
from safetensors.numpy import save_file

import paddlevideo_weights
from core.errors import InputError
from extractor import backbones, pp_weights
from extractor.pptsm_v2 import PPTSMv2
from extractor.resnet_vd import ResNetVd
from extractor.temporal_shift import temporal_shift

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "paddlevideo"
REPORT = json.loads((FIXTURES / "nets.json").read_text())
IO = np.load(FIXTURES / "io.npz")

MODEL = {  # fixture -> our MODEL section
    "pptsn_r50": {"backbone": "pptsn", "num_layers": 50},
    "pptsm_r50": {"backbone": "pptsm", "num_layers": 50, "num_seg": 8},
    "pptsm_r101": {"backbone": "pptsm", "num_layers": 101, "num_seg": 8},
    "pptsmv2_8": {"backbone": "pptsmv2", "num_seg": 8},
    "pptsmv2_16_attention": {"backbone": "pptsmv2", "num_seg": 16, "temporal_attention": True},
}
HEAD = {"head.fc.weight": np.zeros([2048, 4], "float32"), "head.fc.bias": np.zeros([4], "float32")}
TEACHER = {"Teacher.0.conv1_1._conv.weight": np.zeros([32, 3, 3, 3], "float32"),
           "Teacher.1.fc.weight": np.zeros([2048, 4], "float32")}


def layout(state, kind):
    """PaddleVideo's names as one of its checkpoint files holds them."""
    if kind == "recognizer":
        return {**{"backbone." + k: v for k, v in state.items()}, **HEAD}
    if kind == "distillation":
        return {**{"Student.0." + k: v for k, v in state.items()}, **TEACHER}
    if kind == "student":
        return {"0." + k: v for k, v in state.items()}
    return dict(state)


def write(path, state):
    if str(path).endswith(".safetensors"):
        save_file(state, str(path))
    else:
        paddle.save(state, str(path))  # arrays: what paddle.save writes for tensors too
    return str(path)


def build(name):
    cfg = MODEL[name]
    spec = backbones.get(cfg)
    return spec, spec.build(cfg)


@pytest.mark.smoke
@pytest.mark.parametrize("name, kind, suffix", [
    ("pptsn_r50", "recognizer", ".pdparams"),
    ("pptsm_r50", "bare", ".safetensors"),
    ("pptsm_r101", "recognizer", ".pdparams"),
    ("pptsmv2_8", "student", ".pdparams"),
    ("pptsmv2_16_attention", "distillation", ".pdparams"),
])
def test_features_match_paddlevideo(name, kind, suffix, tmp_path):
    recorded = REPORT["nets"][name]
    spec, net = build(name)
    assert spec.feature_dim(MODEL[name]) == IO[name].shape[1]
    state = paddlevideo_weights.state(recorded["state"])
    path = write(tmp_path / f"{name}{suffix}", layout(state, kind))
    missing, unexpected = spec.load_weights(net, path)
    assert missing == [] and unexpected == []
    net.eval()
    with paddle.no_grad():
        ours = net(paddle.to_tensor(IO["frames"][:recorded["frames"]].astype("float32"))).numpy()
    reference = IO[name]
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()


def test_every_layout_loads_the_same_weights(tmp_path):
    state = paddlevideo_weights.state(REPORT["nets"]["pptsmv2_8"]["state"])
    loaded = []
    for kind in ("bare", "recognizer", "distillation", "student"):
        net = PPTSMv2(8)
        pp_weights.load_weights(net, write(tmp_path / f"{kind}.pdparams", layout(state, kind)))
        loaded.append({k: v.numpy() for k, v in net.state_dict().items()})
    for other in loaded[1:]:
        assert all(np.array_equal(loaded[0][k], other[k]) for k in loaded[0])


def test_our_own_names_load_back(tmp_path):
    saved = {k: v.numpy() + 0.5 for k, v in PPTSMv2(8, temporal_attention=True).state_dict().items()}
    again = PPTSMv2(8, temporal_attention=True)
    assert pp_weights.load_weights(again, write(tmp_path / "ours.pdparams", saved)) == ([], [])
    assert all(np.array_equal(v.numpy(), saved[k]) for k, v in again.state_dict().items())


def features_after_changing_one_frame(net, clip_frames, changed, seeded_weights=False):
    """Features of 2 clips, then of the same with frame `changed` of the first clip altered.
    `seeded_weights`: the fixtures' kind of weights (with paddle's defaults the input fades in PP-LCNetV2)."""
    if seeded_weights:
        ours = [(k, v.shape) for k, v in net.state_dict().items()]
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in paddlevideo_weights.state(ours).items()})
    net.eval()
    frames = paddlevideo_weights.frames(2 * clip_frames, 32)
    altered = frames.copy()
    altered[changed] = paddlevideo_weights.frames(1, 32, seed="another frame")[0]
    with paddle.no_grad():
        return net(paddle.to_tensor(frames)).numpy(), net(paddle.to_tensor(altered)).numpy()


def changed_frames(before, after):
    scale = np.abs(before).max()
    return [i for i in range(len(before)) if np.abs(before[i] - after[i]).max() > 1e-5 * scale]


def test_temporal_shift_mixes_a_clip_and_only_that_clip():
    # PP-TSMv2 shifts once: the changed frame and its two neighbours
    before, after = features_after_changing_one_frame(PPTSMv2(4), 4, changed=1, seeded_weights=True)
    assert changed_frames(before, after) == [0, 1, 2]
    # PP-TSM shifts in all 16 blocks: the whole clip, never the other clip
    before, after = features_after_changing_one_frame(ResNetVd(50, temporal_shift=True, clip_frames=4), 4, changed=1)
    assert changed_frames(before, after) == [0, 1, 2, 3]
    # PP-TSN: frames are independent
    before, after = features_after_changing_one_frame(ResNetVd(50), 4, changed=1)
    assert changed_frames(before, after) == [1]


def test_wrong_shape_is_one_line_naming_the_file(tmp_path):
    path = write(tmp_path / "wide.pdparams", {"backbone.conv1_1._conv.weight": np.zeros([32, 3, 5, 5], "float32")})
    with pytest.raises(InputError) as err:
        pp_weights.load_weights(ResNetVd(50), path)
    assert str(err.value).startswith(path) and "conv1_1._conv.weight" in str(err.value)
    assert "[32, 3, 5, 5]" in str(err.value) and "\n" not in str(err.value)


def test_unrelated_checkpoint_is_refused(tmp_path):
    path = write(tmp_path / "lstm.pdparams", {"rgb_lstm.weight_ih": np.zeros([4, 4], "float32")})
    for net in (ResNetVd(50), PPTSMv2(8)):
        with pytest.raises(InputError, match="no PP-.* weights found") as err:
            pp_weights.load_weights(net, path)
        assert str(err.value).startswith(path) and "\n" not in str(err.value)


def test_temporal_attention_must_agree_with_the_checkpoint(tmp_path):
    stem = np.zeros([32, 3, 3, 3], "float32")
    with_attention = write(tmp_path / "att.pdparams", {"backbone.stem.0.conv.weight": stem,
                                                       "backbone.global_attention.fc.weight": np.zeros([8, 8], "float32")})
    with pytest.raises(InputError, match="temporal_attention: true"):
        pp_weights.load_weights(PPTSMv2(8), with_attention)
    without = write(tmp_path / "plain.pdparams", {"stem.0.conv.weight": stem})
    with pytest.raises(InputError, match="temporal_attention: false"):
        pp_weights.load_weights(PPTSMv2(8, temporal_attention=True), without)


def test_registry_refuses_unknown_backbones_and_depths():
    with pytest.raises(InputError, match="'pptsm3' is not one of resnet_tsn, pptsn, pptsm, pptsmv2"):
        backbones.get({"backbone": "pptsm3"})
    with pytest.raises(InputError, match="PP-TSN .* has no depth 101: MODEL.num_layers is one of 50"):
        backbones.get({"backbone": "pptsn", "num_layers": 101})
    with pytest.raises(InputError, match="has no depth 152: MODEL.num_layers is one of 50, 101"):
        backbones.get({"backbone": "pptsm", "num_layers": 152})
    with pytest.raises(InputError, match="MODEL.num_seg"):
        backbones.get({"backbone": "pptsmv2"}).build({"backbone": "pptsmv2", "num_seg": 0})


def test_registry_sizes():
    assert [backbones.get(MODEL[n]).clip_frames(MODEL[n]) for n in MODEL] == [0, 8, 8, 8, 16]
    assert [backbones.get(MODEL[n]).feature_dim(MODEL[n]) for n in MODEL] == [2048, 2048, 2048, 1280, 1280]


@pytest.mark.smoke
@pytest.mark.parametrize("clip_frames, channels", [(8, 64), (16, 256), (3, 10), (4, 7)])
def test_our_temporal_shift_is_paddles_op_bit_for_bit(clip_frames, channels):
    x = paddle.to_tensor(np.random.default_rng(clip_frames).standard_normal((2 * clip_frames, channels, 3, 2)),
                         dtype="float32")
    expected = paddle.nn.functional.temporal_shift(x, clip_frames, 1.0 / clip_frames).numpy()
    assert np.array_equal(temporal_shift(x, clip_frames).numpy(), expected)

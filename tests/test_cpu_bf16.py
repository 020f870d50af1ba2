"""`--amp` on the CPU: the large products in bfloat16 through oneDNN (core/bf16_products.py), their
gradients too; everything else float32. (That a head trains to the same scores with it:
test_training_defaults.py.)"""
import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle is imported)
import numpy as np
import paddle
import pytest

from core import bf16_products
from sequence.models.attention_lstm import AttentionLSTM
from sequence.models.nextvlad import NeXtVLAD

pytestmark = pytest.mark.skipif(bool(bf16_products.unavailable_reason()),
                                reason=bf16_products.unavailable_reason() or "runs")


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def products_and_gradients(on, tensors):
    for tensor in tensors.values():
        tensor.clear_gradient()
    with bf16_products.enabled(on):
        assert bf16_products.active() == on
        out = (bf16_products.linear(tensors["x"], tensors["w"], tensors["b"]).tanh().sum()
               + bf16_products.matmul(tensors["u"], tensors["v"], transpose_y=True).square().sum()
               + (bf16_products.matmul(tensors["p"], tensors["u"]) * 1e-2).sum())
    out.backward()
    assert not bf16_products.active()
    return float(out), {name: t.grad.numpy().copy() for name, t in tensors.items() if t.grad is not None}


def test_products_and_their_gradients_run_in_bf16_close_to_float32():
    rng = np.random.default_rng(0)
    shapes = {"x": [64, 32], "w": [32, 48], "b": [48], "u": [2, 64, 33], "v": [2, 40, 33], "p": [2, 40, 64]}
    tensors = {name: paddle.to_tensor((rng.normal(size=shape) / np.sqrt(shape[-1])).astype("float32"))
               for name, shape in shapes.items()}
    for name, tensor in tensors.items():
        tensor.stop_gradient = name == "x"  # a data input: no gradient asked for, none computed
    fp32, fp32_grads = products_and_gradients(False, tensors)
    bf16, bf16_grads = products_and_gradients(True, tensors)
    assert fp32_grads.keys() == bf16_grads.keys() == {"w", "b", "u", "v", "p"}
    assert abs(bf16 - fp32) < 1e-2 * abs(fp32)
    for name, grad in fp32_grads.items():
        assert 0 < relative(bf16_grads[name], grad) < 2e-2, name  # bf16 rounding: close, never exact


def bf16_against_float32(model, lengths, dim, seed, logits_within, parameters):
    """The model's logits and the named parameters' gradients with bf16 products against float32:
    close (within `logits_within`, 5e-2 for gradients), never equal (the bf16 kernels ran)."""
    rng = np.random.default_rng(seed)
    steps = max(lengths)
    features = [paddle.to_tensor(rng.normal(size=(len(lengths), steps, dim)).astype("float32"))]
    mask = paddle.to_tensor((np.arange(steps)[None] < np.array(lengths)[:, None]).astype("float32"))
    runs = []
    for on in (False, True):
        model.clear_gradients()
        with bf16_products.enabled(on):
            logits = model(features, mask)
        logits.sum().backward()
        runs.append((logits.numpy(), {n: p.grad.numpy().copy() for n, p in model.named_parameters()
                                      if p.grad is not None}))
    (logits32, grads32), (logits16, grads16) = runs
    assert 0 < relative(logits16, logits32) < logits_within
    for name in parameters:
        assert 0 < relative(grads16[name], grads32[name]) < 5e-2, name


def test_attention_lstm_trains_with_bf16_products_on_its_packed_path():
    paddle.seed(1)
    model = AttentionLSTM(5, [48], embedding_size=32, lstm_size=16, drop_rate=0.0, hidden_sizes=(32, 32))
    model.packed = True
    bf16_against_float32(model, [12, 5, 9, 1], 48, seed=1, logits_within=2e-2, parameters=(
        "encoders.0.embedding.weight", "encoders.0.lstm.weight_ih_l0", "encoders.0.lstm.weight_hh_l0"))


def test_nextvlad_trains_with_bf16_frame_products():
    paddle.seed(2)
    model = NeXtVLAD(5, [48], cluster_size=8, groups=4, expansion=2, hidden_size=32, drop_rate=0.0)
    bf16_against_float32(model, [10, 4, 7, 2], 48, seed=2, logits_within=3e-2,
                         parameters=("encoders.0.expand.weight", "encoders.0.cluster_logits.weight"))

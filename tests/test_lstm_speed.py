"""AttentionLSTM's packed LSTM (real frames only, hand-written backward) against the padded one
(nn.LSTM / the peephole loop): same outputs, same gradients, same parameter names."""
import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle is imported)
import numpy as np
import paddle
import pytest

from sequence.models.attention_lstm import AttentionLSTM
from sequence.models.packed_lstm import Packing


def tiny(kind, rng):
    paddle.seed(1)
    model = AttentionLSTM(5, [16, 8], embedding_size=12, lstm_size=7, drop_rate=0.0, hidden_sizes=(32, 32), lstm=kind)
    for name, parameter in model.named_parameters():
        if "peephole" in name:  # zero at initialisation: give them weight so their gradient is tested
            parameter.set_value(rng.normal(size=parameter.shape).astype("float32"))
    return model


def outputs_and_gradients(model, features, mask, upstream, packed):
    model.packed = packed
    model.clear_gradients()
    logits = model(features, mask)
    (logits * upstream).sum().backward()
    return logits.numpy(), {name: p.grad.numpy().copy() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.smoke
@pytest.mark.parametrize("kind", ["standard", "peephole"])
@pytest.mark.parametrize("lengths", [[5, 9, 3, 9, 1], [4, 4, 4]])
def test_packed_lstm_equals_padded(kind, lengths):
    rng = np.random.default_rng(0)
    model = tiny(kind, rng)
    steps = 11
    features = [paddle.to_tensor(rng.normal(size=(len(lengths), steps, dim)).astype("float32")) for dim in (16, 8)]
    mask = paddle.to_tensor((np.arange(steps)[None] < np.array(lengths)[:, None]).astype("float32"))
    upstream = paddle.to_tensor(rng.normal(size=(len(lengths), 5)).astype("float32"))
    padded_out, padded_grads = outputs_and_gradients(model, features, mask, upstream, packed=False)
    packed_out, packed_grads = outputs_and_gradients(model, features, mask, upstream, packed=True)
    np.testing.assert_allclose(packed_out, padded_out, rtol=1e-5, atol=1e-6)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in padded_grads.items():
        np.testing.assert_allclose(packed_grads[name], grad, rtol=1e-4, atol=1e-6, err_msg=name)


def test_packing_computes_real_frames_only():
    packing = Packing([3, 1, 2], steps=4)
    assert packing.active == [3, 2, 1]  # step t runs the sequences longer than t, longest first
    assert packing.frames.numpy().tolist() == [0, 8, 4, 1, 9, 2]  # padded rows b * 4 + t
    # the backward direction's row k is the frame len - 1 - t of the same sequence
    assert packing.both_directions.numpy().tolist() == [0, 1, 2, 3, 4, 5, 5, 4, 2, 3, 1, 0]


@pytest.mark.smoke
def test_packed_lstm_without_gradients_gives_the_same_logits():
    rng = np.random.default_rng(1)
    model = tiny("peephole", rng)
    model.eval()
    features = [paddle.to_tensor(rng.normal(size=(3, 6, dim)).astype("float32")) for dim in (16, 8)]
    mask = paddle.to_tensor((np.arange(6)[None] < np.array([6, 2, 4])[:, None]).astype("float32"))
    with_grad = model(features, mask).numpy()
    with paddle.no_grad():
        np.testing.assert_allclose(model(features, mask).numpy(), with_grad, rtol=1e-6, atol=1e-7)

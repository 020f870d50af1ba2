"""The LSTM over packed real frames, as fluid's LoD batches (AttentionLSTM's CPU training path).

A batch's sequences are sorted by length and step t computes only those still running; the
recurrence has a hand-written backward (PackedRecurrence). The parameters are nn.LSTM's (and
PeepholeLSTM's peepholes), so checkpoints do not change; the results equal the padded path's
within float rounding (tests/test_lstm_speed.py).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from core import bf16_products


class Packing:
    """Where each real frame goes when a batch runs as fluid's LoD batches: sequences sorted by length
    (longest first), step t computing only the n_t sequences still running, their rows stored step
    after step ([N real frames] in all). Built from the lengths on the host, once per batch.
    """

    def __init__(self, lengths, steps):
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        self.active = [int(n) for n in (sorted_lengths[None, :] > np.arange(int(sorted_lengths[0]))[:, None]).sum(1)]
        time_major = [(t, j) for t, n in enumerate(self.active) for j in range(n)]
        step, rank = np.array(time_major, dtype=np.int64).T
        sequence = order[rank]
        forward = sequence * steps + step  # padded row (b * T + t) of each packed row, both directions
        backward = sequence * steps + sorted_lengths[rank] - 1 - step
        self.frames = paddle.to_tensor(forward)
        position = np.empty(len(lengths) * steps, dtype=np.int64)
        position[forward] = np.arange(len(forward))
        # Packed rows of both directions' inputs: the forward rows, then the backward rows in forward order
        self.both_directions = paddle.to_tensor(np.concatenate([np.arange(len(forward)), position[backward]]))
        # For each padded row, the forward then the backward output row of [2N + 1, H] (2N: the zero row)
        unpack = np.full((len(lengths) * steps, 2), 2 * len(forward), dtype=np.int64)
        unpack[forward, 0] = np.arange(len(forward))
        unpack[backward, 1] = len(forward) + np.arange(len(forward))
        self.unpack = paddle.to_tensor(unpack.reshape(-1))


class PackedRecurrence(paddle.autograd.PyLayer):
    """Both directions' recurrence over packed rows, with a hand-written backward: per step only the
    [n_t, 4H] x [4H, H] products that must be sequential; the gradients of the recurrent weights and
    the peepholes are one product over all frames after the loop (autograd would take one per step).

    projected [2, N, 4H] (input projections and biases), recurrent [2, 4H, H], peepholes [2, 3H] or
    None; active: the sequences running at each step (Packing); keep: hold each step's gates for the
    backward pass (not when evaluating: ~1.4 GB for 128 videos of 300 frames). Returns hidden [2N + 1, H]:
    the forward direction's rows, the backward one's, then a zero row that padding is gathered from.
    """

    @staticmethod
    def forward(ctx, projected, recurrent, peepholes, active, keep=True):
        hidden_size = recurrent.shape[-1]
        h = c = paddle.zeros([2, active[0], hidden_size], dtype=projected.dtype)
        if peepholes is not None:
            peep_i, peep_f, peep_o = _peephole_rows(peepholes, active[0])
        # [2, H, 4H] copied once: h x W^T with transpose_y costs ~1.4x a plain product at these shapes
        recurrent_t = paddle.transpose(recurrent, [0, 2, 1]).contiguous()
        saved, start = [], 0
        for n in active:
            h_prev, c_prev = h[:, :n], c[:, :n]
            gates = projected[:, start:start + n] + paddle.matmul(h_prev, recurrent_t)
            start += n
            gate_i, gate_f, gate_c, gate_o = paddle.split(gates, 4, axis=-1)
            if peepholes is None:
                i, f = F.sigmoid(gate_i), F.sigmoid(gate_f)
            else:
                i, f = F.sigmoid(gate_i + peep_i[:, :n] * c_prev), F.sigmoid(gate_f + peep_f[:, :n] * c_prev)
            candidate = F.tanh(gate_c)
            c = f * c_prev + i * candidate
            o = F.sigmoid(gate_o if peepholes is None else gate_o + peep_o[:, :n] * c)
            tanh_c = F.tanh(c)
            h = o * tanh_c
            saved.append((h_prev, c_prev, i, f, candidate, o, c, tanh_c, h) if keep else (h,))
        ctx.saved, ctx.active, ctx.recurrent, ctx.peepholes = saved, active, recurrent, peepholes
        ctx.bf16 = bf16_products.active()  # the backward runs outside the forward's context
        hidden = paddle.concat([step[-1] for step in saved], axis=1)  # [2, N, H]
        return paddle.concat([hidden.reshape([-1, hidden_size]), paddle.zeros([1, hidden_size], hidden.dtype)])

    @staticmethod
    def backward(ctx, d_hidden):
        recurrent, peepholes, active, saved = ctx.recurrent, ctx.peepholes, ctx.active, ctx.saved
        hidden_size = recurrent.shape[-1]
        d_hidden = d_hidden[:-1].reshape([2, -1, hidden_size])
        if peepholes is not None:
            peep_i, peep_f, peep_o = _peephole_rows(peepholes, active[0])
        end = d_hidden.shape[1]
        dh_next = dc_next = None
        d_gates = []
        for (h_prev, c_prev, i, f, candidate, o, c, tanh_c, _), n in zip(reversed(saved), reversed(active)):
            dh = d_hidden[:, end - n:end]
            end -= n
            if dh_next is not None:
                dh = dh + _pad_rows(dh_next, n)
            d_gate_o = dh * tanh_c * o * (1 - o)
            dc = dh * o * (1 - tanh_c * tanh_c)
            if peepholes is not None:
                dc = dc + d_gate_o * peep_o[:, :n]
            if dc_next is not None:
                dc = dc + _pad_rows(dc_next, n)
            d_gate_i = dc * candidate * i * (1 - i)
            d_gate_f = dc * c_prev * f * (1 - f)
            d_gate_c = dc * i * (1 - candidate * candidate)
            dg = paddle.concat([d_gate_i, d_gate_f, d_gate_c, d_gate_o], axis=-1)
            d_gates.append(dg)
            dh_next = paddle.matmul(dg, recurrent)
            dc_next = dc * f
            if peepholes is not None:
                dc_next = dc_next + d_gate_i * peep_i[:, :n] + d_gate_f * peep_f[:, :n]
        d_gates = paddle.concat(d_gates[::-1], axis=1)  # [2, N, 4H]
        h_prev = paddle.concat([step[0] for step in saved], axis=1)
        with bf16_products.enabled(ctx.bf16):  # one large product (the per-step ones stay float32)
            d_recurrent = bf16_products.product(d_gates, h_prev, transpose_x=True)
        if peepholes is None:
            return d_gates, d_recurrent
        c_prev = paddle.concat([step[1] for step in saved], axis=1)
        c_new = paddle.concat([step[6] for step in saved], axis=1)
        d_peep = _sum_rows(paddle.concat([d_gates[:, :, :hidden_size] * c_prev,
                                          d_gates[:, :, hidden_size:2 * hidden_size] * c_prev,
                                          d_gates[:, :, 3 * hidden_size:] * c_new], axis=-1))
        return d_gates, d_recurrent, d_peep


def _peephole_rows(peepholes, rows):
    """peepholes [2, 3H] as i, f, o [2, rows, H] each: a same-shape product per step (Paddle's CPU
    broadcast of [2, 1, H] is ~20x slower)."""
    tiled = paddle.matmul(paddle.ones([2, rows, 1], peepholes.dtype), peepholes.unsqueeze(1))
    return paddle.chunk(tiled, 3, axis=-1)


def _sum_rows(tensor):
    """[2, N, K] summed over N, as a product with ones (Paddle's CPU sum over a middle axis is ~30x slower)."""
    return paddle.matmul(paddle.ones([2, 1, tensor.shape[1]], tensor.dtype), tensor).squeeze(1)


def _pad_rows(tensor, rows):
    """tensor [2, n, H] with zero rows appended up to `rows` (sequences that end at this step)."""
    missing = rows - tensor.shape[1]
    if missing == 0:
        return tensor
    return paddle.concat([tensor, paddle.zeros([2, missing, tensor.shape[2]], dtype=tensor.dtype)], axis=1)


def packed_bidirectional(lstm, embedded, packing, peepholes):
    """lstm's parameters (nn.LSTM's names) over packed real frames embedded [N, E] -> hidden [2N + 1, H]."""
    # The biases ride in the projection as a column of ones: adding [2, 1, 4H] to [2, N, 4H] is a slow
    # broadcast on the CPU, and their gradient comes out of the product's.
    with_ones = paddle.concat([embedded, paddle.ones([embedded.shape[0], 1], embedded.dtype)], axis=1)
    inputs = paddle.gather(with_ones, packing.both_directions).reshape([2, -1, with_ones.shape[-1]])
    directions = ((lstm.weight_ih_l0, lstm.bias_ih_l0, lstm.bias_hh_l0),
                  (lstm.weight_ih_l0_reverse, lstm.bias_ih_l0_reverse, lstm.bias_hh_l0_reverse))
    weights = paddle.stack([paddle.concat([weight, (bias_ih + bias_hh).unsqueeze(1)], axis=1)
                            for weight, bias_ih, bias_hh in directions])
    projected = bf16_products.matmul(inputs, weights, transpose_y=True)  # in bf16 with --amp on the CPU
    recurrent = paddle.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse])
    return PackedRecurrence.apply(projected, recurrent, peepholes, packing.active, paddle.is_grad_enabled())

"""AttentionLSTM: per modality a bidirectional LSTM whose outputs are pooled by attention.

Two kinds of LSTM (MODEL.lstm): `standard` is paddle.nn.LSTM (PaddleVideo's head); `peephole` is
fluid's dynamic_lstm (VideoTag and the PaddleCV zoo), whose input and forget gates also look at
the previous cell and whose output gate looks at the new one. Loading a VideoTag or zoo checkpoint
picks `peephole` by itself (sequence/models/attention_lstm_weights.py).

On the CPU in eager mode both kinds run packed (`Packing`, `PackedRecurrence`): only real frames are
embedded and projected, and step t computes only the sequences still running, as fluid's LoD batches;
the parameters are the same ones (same names, same checkpoints), the results equal the padded path's
within float rounding (tests/test_lstm_speed.py). Exports and GPUs take the padded batch.
"""
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from core.errors import InputError

from .attention_lstm_weights import convert

LSTM_KINDS = ("standard", "peephole")


def reverse_index(lengths, steps):
    """[B, T] index that reverses each sequence within its length and leaves its padding in place."""
    t = paddle.arange(steps, dtype="int64").unsqueeze(0)
    length = lengths.unsqueeze(1)
    return paddle.where(t < length, length - 1 - t, t)


def take_steps(sequences, index):
    """sequences [B, T, D] reordered along time by index [B, T]."""
    return paddle.take_along_axis(sequences, index.unsqueeze(-1), axis=1)


class PeepholeLSTM(nn.Layer):
    """Bidirectional LSTM with peepholes, called like nn.LSTM: (outputs [B, T, 2H], None).

    Parameters are named and laid out as nn.LSTM's (gate blocks i, f, c~, o), plus peephole_l0 and
    peephole_l0_reverse [3H] (i, f, o). Padded steps never reach a real one: both directions run on
    sequences that start at step 0 (the backward one reversed within its length first), so padding
    only follows the real steps.
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        bound = 1.0 / math.sqrt(hidden_size)  # nn.LSTM's initialisation
        uniform = nn.initializer.Uniform(-bound, bound)
        for suffix in ("_l0", "_l0_reverse"):
            for name, shape in (("weight_ih", [4 * hidden_size, input_size]),
                                ("weight_hh", [4 * hidden_size, hidden_size]),
                                ("bias_ih", [4 * hidden_size]), ("bias_hh", [4 * hidden_size])):
                setattr(self, name + suffix, self.create_parameter(shape, default_initializer=uniform))
            setattr(self, "peephole" + suffix, self.create_parameter(
                [3 * hidden_size], default_initializer=nn.initializer.Constant(0.0)))

    def forward(self, inputs, sequence_length):
        reverse = reverse_index(sequence_length, paddle.shape(inputs)[1])
        # The input projection of every step at once; only the recurrence loops over time.
        projected = paddle.stack([
            paddle.matmul(inputs, self.weight_ih_l0, transpose_y=True) + self.bias_ih_l0 + self.bias_hh_l0,
            paddle.matmul(take_steps(inputs, reverse), self.weight_ih_l0_reverse, transpose_y=True)
            + self.bias_ih_l0_reverse + self.bias_hh_l0_reverse]).transpose([2, 0, 1, 3])  # [T, 2 directions, B, 4H]
        # [2, 4H, H], multiplied with transpose_y: a transposed view (.T) multiplies ~30x slower in
        # Paddle 3, and its strided gradient is averaged wrongly across processes by DataParallel.
        recurrent = paddle.stack([self.weight_hh_l0, self.weight_hh_l0_reverse])
        peep_i, peep_f, peep_o = paddle.chunk(
            paddle.stack([self.peephole_l0, self.peephole_l0_reverse]).unsqueeze(1), 3, axis=-1)
        h = c = paddle.zeros_like(projected[0, :, :, :self.hidden_size])  # [2, B, H]
        # Steps as a list in dygraph: the gradient of indexing one step is the size of all of them
        # (quadratic in T); a static graph (export) indexes.
        step_inputs = paddle.unbind(projected) if paddle.in_dynamic_mode() else projected
        outputs = []
        for t in range(paddle.shape(inputs)[1]):
            gate_i, gate_f, gate_c, gate_o = paddle.chunk(step_inputs[t] + paddle.matmul(h, recurrent, transpose_y=True), 4, axis=-1)
            i = F.sigmoid(gate_i + peep_i * c)
            f = F.sigmoid(gate_f + peep_f * c)
            c = f * c + i * F.tanh(gate_c)
            h = F.sigmoid(gate_o + peep_o * c) * F.tanh(c)
            outputs.append(h)
        steps = paddle.stack(outputs, axis=2)  # [2, B, T, H]
        return paddle.concat([steps[0], take_steps(steps[1], reverse)], axis=-1), None


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
        d_recurrent = paddle.matmul(d_gates, h_prev, transpose_x=True)
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
    projected = paddle.matmul(inputs, weights, transpose_y=True)
    recurrent = paddle.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse])
    return PackedRecurrence.apply(projected, recurrent, peepholes, packing.active, paddle.is_grad_enabled())


class LSTMAttentionEncoder(nn.Layer):
    """Frames [B, T, D] -> one vector [B, 2 * lstm_size] per sequence."""

    def __init__(self, feature_dim, embedding_size, lstm_size, drop_rate, lstm="standard"):
        super().__init__()
        self.embedding = nn.Linear(feature_dim, embedding_size)
        if lstm == "peephole":
            self.lstm = PeepholeLSTM(embedding_size, lstm_size)
        else:
            self.lstm = nn.LSTM(embedding_size, lstm_size, direction="bidirect")
        self.dropout = nn.Dropout(drop_rate)
        self.attention = nn.Linear(2 * lstm_size, 1, bias_attr=False)

    def forward(self, frames, mask, lengths, packing=None):
        if packing is None:
            embedded = F.tanh(self.embedding(frames))
            # sequence_length makes the backward direction start at each sequence's true end.
            outputs, _ = self.lstm(embedded, sequence_length=lengths)
        else:
            outputs = self.packed_lstm(frames, packing)
        outputs = self.dropout(outputs)
        scores = self.attention(outputs).squeeze(-1)
        # Softmax over valid steps only. Paddle's softmax clamps exp, leaving ~1e-28 on the -1e9
        # steps: the product with the mask makes their weight exactly 0.
        weights = F.softmax(scores - (1.0 - mask) * 1e9, axis=1) * mask
        # The weighted sum over steps as [B, 1, T] x [B, T, 2H]: Paddle's CPU broadcast product and
        # middle-axis sum take ~20x longer.
        return paddle.matmul(weights.unsqueeze(1), outputs).squeeze(1)

    def packed_lstm(self, frames, packing):
        """The LSTM's outputs [B, T, 2H] computed over real frames only (padding rows are 0)."""
        batch, steps, dim = frames.shape
        real = paddle.gather(frames.reshape([batch * steps, dim]), packing.frames)
        embedded = F.tanh(self.embedding(real))
        peepholes = None
        if isinstance(self.lstm, PeepholeLSTM):
            peepholes = paddle.stack([self.lstm.peephole_l0, self.lstm.peephole_l0_reverse])
        hidden = packed_bidirectional(self.lstm, embedded, packing, peepholes)
        return paddle.gather(hidden, packing.unpack).reshape([batch, steps, -1])


class AttentionLSTM(nn.Layer):
    """logits = model(features, mask): features is a list of [B, T, D_i], mask is [B, T]."""

    convert_checkpoint = staticmethod(convert)  # other projects' checkpoints onto ours: attention_lstm_weights.py

    def __init__(self, num_classes, feature_dims, embedding_size=1024, lstm_size=512,
                 drop_rate=0.5, hidden_sizes=(8192, 4096), lstm="standard"):
        super().__init__()
        if lstm not in LSTM_KINDS:
            raise InputError(f"MODEL.lstm is '{lstm}', not one of {', '.join(LSTM_KINDS)}")
        self.encoders = nn.LayerList(
            [LSTMAttentionEncoder(dim, embedding_size, lstm_size, drop_rate, lstm) for dim in feature_dims]
        )
        self.fc1 = nn.Linear(2 * lstm_size * len(feature_dims), hidden_sizes[0])
        self.fc2 = nn.Linear(hidden_sizes[0], hidden_sizes[1])
        self.classifier = nn.Linear(hidden_sizes[1], num_classes)
        self.packed = True  # real frames only, as fluid's LoD (dygraph on the CPU); False: padded batches

    def forward(self, features, mask):
        if len(features) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} feature tensors, got {len(features)}")
        lengths = paddle.sum(mask, axis=1).astype("int64")
        packing = None
        # Packing needs the lengths on the host (free on the CPU) and eager ops; exports and GPUs
        # (cuDNN's LSTM) take the padded batch.
        if self.packed and paddle.in_dynamic_mode() and mask.place.is_cpu_place():
            host_lengths = lengths.numpy()
            packing = Packing(host_lengths, mask.shape[1]) if host_lengths.max() > 0 else None
        pooled = [encoder(frames, mask, lengths, packing) for encoder, frames in zip(self.encoders, features)]
        hidden = F.relu(self.fc1(paddle.concat(pooled, axis=1)))
        hidden = F.tanh(self.fc2(hidden))
        return self.classifier(hidden)

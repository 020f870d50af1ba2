"""AttentionLSTM: per modality a bidirectional LSTM whose outputs are pooled by attention.

Two kinds of LSTM (MODEL.lstm): `standard` is paddle.nn.LSTM (PaddleVideo's head); `peephole` is
fluid's dynamic_lstm (VideoTag and the PaddleCV zoo), whose input and forget gates also look at
the previous cell and whose output gate looks at the new one. Loading a VideoTag or zoo checkpoint
picks `peephole` by itself (sequence/models/attention_lstm_weights.py).

On the CPU in eager mode both kinds run packed (packed_lstm.py): only real frames are
embedded and projected, and step t computes only the sequences still running, as fluid's LoD batches;
the parameters are the same ones (same names, same checkpoints), the results equal the padded path's
within float rounding (tests/test_lstm_speed.py). Exports and GPUs take the padded batch.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from core import bf16_products
from core.errors import InputError

from .attention_lstm_weights import convert
from .packed_lstm import Packing, packed_bidirectional

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
        embedded = F.tanh(bf16_products.linear(real, self.embedding.weight, self.embedding.bias))
        peepholes = None
        if isinstance(self.lstm, PeepholeLSTM):
            peepholes = paddle.stack([self.lstm.peephole_l0, self.lstm.peephole_l0_reverse])
        hidden = packed_bidirectional(self.lstm, embedded, packing, peepholes)
        return paddle.gather(hidden, packing.unpack).reshape([batch, steps, -1])


class AttentionLSTM(nn.Layer):
    """logits = model(features, mask): features is a list of [B, T, D_i], mask is [B, T]."""

    convert_checkpoint = staticmethod(convert)  # other projects' checkpoints onto ours: attention_lstm_weights.py
    cpu_bf16 = True  # with --amp on the CPU its large products run in bf16 (core/bf16_products.py)

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

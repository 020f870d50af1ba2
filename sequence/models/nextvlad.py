"""NeXtVLAD: grouped soft-assignment VLAD per modality, then an SE context-gated hidden layer."""
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from core import bf16_products
from core.errors import InputError

from .nextvlad_weights import convert


class NeXtVLADEncoder(nn.Layer):
    """Frames [B, T, D] -> [B, cluster_size * expansion * D / groups]."""

    def __init__(self, feature_dim, cluster_size, groups, expansion):
        super().__init__()
        expanded_dim = expansion * feature_dim
        if expanded_dim % groups:
            raise ValueError(f"expansion * feature_dim = {expanded_dim} is not divisible by groups = {groups}")
        self.cluster_size = cluster_size
        self.groups = groups
        self.group_dim = expanded_dim // groups
        self.expand = nn.Linear(feature_dim, expanded_dim)
        self.group_attention = nn.Linear(expanded_dim, groups)
        # No bias: the BatchNorm that follows has its own offset.
        self.cluster_logits = nn.Linear(expanded_dim, groups * cluster_size, bias_attr=False)
        self.cluster_bn = nn.BatchNorm1D(groups * cluster_size)
        self.centers = self.create_parameter(
            [cluster_size, self.group_dim],
            default_initializer=nn.initializer.Normal(std=1.0 / math.sqrt(self.group_dim)))
        self.vlad_bn = nn.BatchNorm1D(cluster_size * self.group_dim)

    def normalize_cluster_logits(self, logits, mask):
        """BatchNorm over per-frame rows [B, T, G*K]; in training, batch statistics of real frames only."""
        rows = logits.reshape([-1, self.groups * self.cluster_size])
        if self.training:
            valid = paddle.nonzero(mask.reshape([-1]) > 0.5).squeeze(-1)
            normalized_valid = self.cluster_bn(paddle.gather(rows, valid))
            # Padded rows stay 0; the mask zeroes their assignments anyway.
            normalized = paddle.scatter(paddle.zeros_like(rows), valid, normalized_valid)
        else:
            normalized = self.cluster_bn(rows)
        return normalized.reshape([paddle.shape(logits)[0], -1, self.groups, self.cluster_size])

    def forward(self, frames, mask):
        expanded = bf16_products.linear(frames, self.expand.weight, self.expand.bias)  # [B, T, lambda*D]
        # Padded frames get a group attention of 0, which removes them from every VLAD sum.
        attention = F.sigmoid(self.group_attention(expanded)) * mask.unsqueeze(-1)  # [B, T, G]
        logits = self.normalize_cluster_logits(bf16_products.linear(expanded, self.cluster_logits.weight), mask)  # [B, T, G, K]
        assignment = F.softmax(logits, axis=-1) * attention.unsqueeze(-1)
        assignment = assignment.reshape([0, -1, self.cluster_size])  # [B, T*G, K]
        grouped_frames = expanded.reshape([0, -1, self.group_dim])  # [B, T*G, lambda*D/G]
        vlad = paddle.matmul(assignment, grouped_frames, transpose_x=True)  # [B, K, lambda*D/G]
        vlad = vlad - assignment.sum(axis=1).unsqueeze(-1) * self.centers
        vlad = F.normalize(vlad, axis=2)
        return self.vlad_bn(paddle.flatten(vlad, start_axis=1))


class NeXtVLAD(nn.Layer):
    """logits = model(features, mask): features is a list of [B, T, D_i], mask is [B, T]."""

    convert_checkpoint = staticmethod(convert)  # other projects' checkpoints onto ours: nextvlad_weights.py
    cpu_bf16 = True  # with --amp on the CPU its frame-level products run in bf16 (core/bf16_products.py)

    def __init__(self, num_classes, feature_dims, cluster_size=128, groups=8, expansion=2,
                 hidden_size=2048, gating_reduction=8, drop_rate=0.5, eigen_file=None, scale_rgb=False):
        super().__init__()
        self.rgb_scale = None
        # YouTube-8M: rgb reweighted by the square roots of its PCA eigenvalues, read from eigen_file,
        # or (scale_rgb, set by loading a zoo checkpoint) taken from the checkpoint's eigen_param.
        if eigen_file or scale_rgb:
            values = eigen_scale(eigen_file, feature_dims[0]) if eigen_file else np.ones(feature_dims[0], "float32")
            self.rgb_scale = self.create_parameter([feature_dims[0]], default_initializer=nn.initializer.Assign(values))
            self.rgb_scale.stop_gradient = True
        self.encoders = nn.LayerList(
            [NeXtVLADEncoder(dim, cluster_size, groups, expansion) for dim in feature_dims])
        vlad_dim = sum(cluster_size * expansion * dim // groups for dim in feature_dims)
        gate_dim = hidden_size // gating_reduction
        self.dropout = nn.Dropout(drop_rate)
        self.hidden = nn.Linear(vlad_dim, hidden_size, bias_attr=False)
        self.hidden_bn = nn.BatchNorm1D(hidden_size)
        # Context gating (squeeze-and-excitation) over the hidden units.
        self.gate_squeeze = nn.Linear(hidden_size, gate_dim, bias_attr=False)
        self.gate_bn = nn.BatchNorm1D(gate_dim)
        self.gate_excite = nn.Linear(gate_dim, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, features, mask):
        if len(features) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} feature tensors, got {len(features)}")
        if self.rgb_scale is not None:
            features = [(features[0] - 4.0 / 512) * self.rgb_scale] + list(features[1:])
        pooled = [encoder(frames, mask) for encoder, frames in zip(self.encoders, features)]
        hidden = self.hidden_bn(self.hidden(self.dropout(paddle.concat(pooled, axis=1))))
        gates = F.relu(self.gate_bn(self.gate_squeeze(hidden)))
        gates = F.sigmoid(self.gate_excite(gates))
        return self.classifier(hidden * gates)


def eigen_scale(eigen_file, dim):
    """sqrt of the first `dim` eigenvalues in an .npy of shape [>= dim] or [>= dim, 1], plus 1e-4
    (the reference NeXtVLAD reader's rgb scaling, applied after dequantisation)."""
    try:
        values = np.load(eigen_file).reshape(-1)
    except Exception as err:
        raise InputError(f"cannot read eigenvalues ({type(err).__name__}: {err})", eigen_file) from None
    if values.size < dim or not np.isfinite(values[:dim]).all() or (values[:dim] < 0).any():
        raise InputError(f"expected at least {dim} finite non-negative eigenvalues, found {values.size}", eigen_file)
    return (np.sqrt(values[:dim]) + 1e-4).astype("float32")

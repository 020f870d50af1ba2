"""Attention Clusters: per modality, several independent attention poolings over frames."""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .attention_cluster_weights import convert


class AttentionClusterEncoder(nn.Layer):
    """Frames [B, T, D] -> [B, cluster_nums * D]: one attention-pooled vector per cluster."""

    def __init__(self, feature_dim, cluster_nums):
        super().__init__()
        self.cluster_scores = nn.Linear(feature_dim, cluster_nums)
        # The shifting operation: a learned scale and offset per cluster.
        self.shift_scale = self.create_parameter(
            [cluster_nums, 1], default_initializer=nn.initializer.Constant(1.0))
        self.shift_bias = self.create_parameter(
            [cluster_nums, 1], default_initializer=nn.initializer.Constant(0.0))
        self.cluster_nums = cluster_nums

    def forward(self, frames, mask):
        scores = self.cluster_scores(frames)  # [B, T, C]
        # Softmax over valid frames only. Paddle's softmax clamps exp, leaving ~1e-28 on the -1e9
        # frames: the product with the mask makes their weight exactly 0.
        valid = mask.unsqueeze(-1)
        weights = F.softmax(scores - (1.0 - valid) * 1e9, axis=1) * valid
        pooled = paddle.matmul(weights, frames, transpose_x=True)  # [B, C, D]
        shifted = pooled * self.shift_scale + self.shift_bias
        normalized = F.normalize(shifted, axis=2) / math.sqrt(self.cluster_nums)
        return paddle.flatten(normalized, start_axis=1)


class AttentionCluster(nn.Layer):
    """logits = model(features, mask): features is a list of [B, T, D_i], mask is [B, T]."""

    convert_checkpoint = staticmethod(convert)  # other projects' checkpoints onto ours: attention_cluster_weights.py

    def __init__(self, num_classes, feature_dims, cluster_nums=32, drop_rate=0.5,
                 hidden_sizes=(1024, 4096)):
        super().__init__()
        self.encoders = nn.LayerList([AttentionClusterEncoder(dim, cluster_nums) for dim in feature_dims])
        self.dropout = nn.Dropout(drop_rate)
        self.fc1 = nn.Linear(cluster_nums * sum(feature_dims), hidden_sizes[0])
        self.fc2 = nn.Linear(hidden_sizes[0], hidden_sizes[1])
        self.classifier = nn.Linear(hidden_sizes[1], num_classes)

    def forward(self, features, mask):
        if len(features) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} feature tensors, got {len(features)}")
        pooled = [encoder(frames, mask) for encoder, frames in zip(self.encoders, features)]
        hidden = self.dropout(paddle.concat(pooled, axis=1))
        hidden = F.tanh(self.fc1(hidden))
        hidden = F.tanh(self.fc2(hidden))
        return self.classifier(hidden)

"""AttentionLSTM: per modality a bidirectional LSTM whose outputs are pooled by attention."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class LSTMAttentionEncoder(nn.Layer):
    """Frames [B, T, D] -> one vector [B, 2 * lstm_size] per sequence."""

    def __init__(self, feature_dim, embedding_size, lstm_size, drop_rate):
        super().__init__()
        self.embedding = nn.Linear(feature_dim, embedding_size)
        self.lstm = nn.LSTM(embedding_size, lstm_size, direction="bidirect")
        self.dropout = nn.Dropout(drop_rate)
        self.attention = nn.Linear(2 * lstm_size, 1, bias_attr=False)

    def forward(self, frames, mask, lengths):
        embedded = F.tanh(self.embedding(frames))
        # sequence_length makes the backward direction start at each sequence's true end.
        outputs, _ = self.lstm(embedded, sequence_length=lengths)
        outputs = self.dropout(outputs)
        scores = self.attention(outputs).squeeze(-1)
        # Softmax over valid steps only. Paddle's softmax clamps exp, leaving ~1e-28 on the -1e9
        # steps: the product with the mask makes their weight exactly 0.
        weights = F.softmax(scores - (1.0 - mask) * 1e9, axis=1) * mask
        return paddle.sum(outputs * weights.unsqueeze(-1), axis=1)


class AttentionLSTM(nn.Layer):
    """logits = model(features, mask): features is a list of [B, T, D_i], mask is [B, T]."""

    def __init__(self, num_classes, feature_dims, embedding_size=1024, lstm_size=512,
                 drop_rate=0.5, hidden_sizes=(8192, 4096)):
        super().__init__()
        self.encoders = nn.LayerList(
            [LSTMAttentionEncoder(dim, embedding_size, lstm_size, drop_rate) for dim in feature_dims]
        )
        self.fc1 = nn.Linear(2 * lstm_size * len(feature_dims), hidden_sizes[0])
        self.fc2 = nn.Linear(hidden_sizes[0], hidden_sizes[1])
        self.classifier = nn.Linear(hidden_sizes[1], num_classes)

    def forward(self, features, mask):
        if len(features) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} feature tensors, got {len(features)}")
        lengths = paddle.sum(mask, axis=1).astype("int64")
        pooled = [encoder(frames, mask, lengths) for encoder, frames in zip(self.encoders, features)]
        hidden = F.relu(self.fc1(paddle.concat(pooled, axis=1)))
        hidden = F.tanh(self.fc2(hidden))
        return self.classifier(hidden)

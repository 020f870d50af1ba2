"""ResNet backbone (v1: stride on the 3x3 conv, ReLU after the residual add) without fc.

`ResNet(depth)(images)` returns the global-average-pooled features [N, 2048]. A TSN
classifier is this backbone as attribute `backbone` plus a segment mean and an fc: its
checkpoint then loads straight into the extractor (weights.py strips `backbone.`, ignores fc).

Parameter names (our scheme): stem.conv.weight, stem.bn.{weight,bias,_mean,_variance},
stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*
"""
import paddle
from paddle import nn

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck widths; outputs are 4x these
EXPANSION = 4
FEATURE_DIM = STAGE_WIDTHS[-1] * EXPANSION


class ConvBN(nn.Layer):
    """Conv without bias, then batch norm (ReLU is left to the caller: the last one of a block
    must come after the residual add)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class Bottleneck(nn.Layer):
    def __init__(self, in_channels, width, stride):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = ConvBN(in_channels, width, 1)
        self.conv2 = ConvBN(width, width, 3, stride)
        self.conv3 = ConvBN(width, out_channels, 1)
        self.shortcut = (ConvBN(in_channels, out_channels, 1, stride)
                         if stride != 1 or in_channels != out_channels else None)
        self.relu = nn.ReLU()
        # Zero-initialised last scale: a fresh block starts as its shortcut. This keeps random
        # (untrained) features in a sane range through 33 blocks and is a good start for training.
        self.conv3.bn.weight.set_value(paddle.zeros_like(self.conv3.bn.weight))

    def forward(self, x):
        y = self.relu(self.conv1(x))
        y = self.relu(self.conv2(y))
        y = self.conv3(y)
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(y + identity)


class ResNet(nn.Layer):
    def __init__(self, depth=101):
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth must be one of {sorted(BLOCKS_PER_STAGE)}, not {depth}")
        self.depth = depth
        self.stem = ConvBN(3, 64, 7, stride=2)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        stages = []
        in_channels = 64
        for stage, (blocks, width) in enumerate(zip(BLOCKS_PER_STAGE[depth], STAGE_WIDTHS)):
            layers = []
            for block in range(blocks):
                stride = 2 if block == 0 and stage > 0 else 1
                layers.append(Bottleneck(in_channels, width, stride))
                in_channels = width * EXPANSION
            stages.append(nn.Sequential(*layers))
        self.stages = nn.LayerList(stages)
        self.avgpool = nn.AdaptiveAvgPool2D(1)

    def forward(self, images):
        x = self.pool(self.relu(self.stem(images)))
        for stage in self.stages:
            x = stage(x)
        return paddle.flatten(self.avgpool(x), 1)

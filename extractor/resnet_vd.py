"""ResNet-vd ("tweaks") backbone without fc: PP-TSN, and PP-TSM when the temporal shift is on.

What differs from resnet.py (v1), as PaddleVideo's ResNetTweaksTSN / ResNetTweaksTSM compute it:
- the stem is three 3x3 convs (3->32 stride 2, 32->32, 32->64), then the 3x3 max pool;
- a downsampling shortcut first averages 2x2 blocks (stride 2, ceil mode) and then runs a stride-1
  1x1 conv; the first block of the net (no downsampling) keeps a plain 1x1 conv;
- the 3x3 conv of a bottleneck carries the stride (as in v1).
PP-TSM (`temporal_shift=True`) also
- shifts, at the input of every bottleneck's residual branch (the shortcut sees the unshifted
  input), 1/clip_frames of the channels one frame forward and as many one frame back, within each
  clip of `clip_frames` consecutive images (zeros at the clip's ends; extractor/temporal_shift.py);
- uses leaky ReLU (slope 0.01) wherever PP-TSN uses ReLU.

`ResNetVd(depth, temporal_shift, clip_frames)(images)` returns the global-average-pooled features
[N, 2048]: what PaddleVideo's heads average over a clip's frames and give to their fc.

Parameter names (our scheme): stem.<i>.conv.weight, stem.<i>.bn.{weight,bias,_mean,_variance} (i = 0..2),
stages.<s>.<b>.{conv1,conv2,conv3,shortcut}.{conv,bn}.*
"""
import paddle
from paddle import nn

from .resnet import BLOCKS_PER_STAGE as _ALL_DEPTHS, EXPANSION, STAGE_WIDTHS
from .temporal_shift import temporal_shift

BLOCKS_PER_STAGE = {depth: _ALL_DEPTHS[depth] for depth in (50, 101)}
FEATURE_DIM = STAGE_WIDTHS[-1] * EXPANSION
STEM_WIDTHS = (32, 32, 64)
LEAKY_SLOPE = 0.01  # paddle's leaky_relu default, which PP-TSM uses


class ConvBN(nn.Layer):
    """Conv without bias, then batch norm; `pool_first`: the vd shortcut's 2x2 average pool before it."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, pool_first=False):
        super().__init__()
        self.pool = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True) if pool_first else None
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        return self.bn(self.conv(x))


class Bottleneck(nn.Layer):
    def __init__(self, in_channels, width, stride, act, shift_frames):
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = ConvBN(in_channels, width, 1)
        self.conv2 = ConvBN(width, width, 3, stride)
        self.conv3 = ConvBN(width, out_channels, 1)
        if stride != 1 or in_channels != out_channels:
            # vd: the stride moves into an average pool, so the 1x1 conv sees every pixel
            self.shortcut = ConvBN(in_channels, out_channels, 1, pool_first=stride != 1)
        else:
            self.shortcut = None
        self.act = act
        self.shift_frames = shift_frames  # 0: no temporal shift

    def forward(self, x):
        y = x
        if self.shift_frames:
            y = temporal_shift(y, self.shift_frames)
        y = self.act(self.conv1(y))
        y = self.act(self.conv2(y))
        y = self.conv3(y)
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.act(y + identity)


class ResNetVd(nn.Layer):
    def __init__(self, depth=50, temporal_shift=False, clip_frames=8):
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet-vd depth must be one of {sorted(BLOCKS_PER_STAGE)}, not {depth}")
        if temporal_shift and clip_frames < 1:
            raise ValueError(f"a temporal shift needs clip_frames >= 1, not {clip_frames}")
        self.depth = depth
        self.temporal_shift = temporal_shift
        self.clip_frames = clip_frames if temporal_shift else 0
        self.act = nn.LeakyReLU(LEAKY_SLOPE) if temporal_shift else nn.ReLU()
        stem, in_channels = [], 3
        for i, width in enumerate(STEM_WIDTHS):
            stem.append(ConvBN(in_channels, width, 3, stride=2 if i == 0 else 1))
            in_channels = width
        self.stem = nn.LayerList(stem)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        stages = []
        for stage, (blocks, width) in enumerate(zip(BLOCKS_PER_STAGE[depth], STAGE_WIDTHS)):
            layers = []
            for block in range(blocks):
                stride = 2 if block == 0 and stage > 0 else 1
                layers.append(Bottleneck(in_channels, width, stride, self.act, self.clip_frames))
                in_channels = width * EXPANSION
            stages.append(nn.Sequential(*layers))
        self.stages = nn.LayerList(stages)
        self.avgpool = nn.AdaptiveAvgPool2D(1)

    def forward(self, images):
        x = images
        for conv in self.stem:
            x = self.act(conv(x))
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
        return paddle.flatten(self.avgpool(x), 1)


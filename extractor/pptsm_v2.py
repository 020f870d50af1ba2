"""PP-TSMv2 backbone without fc: PP-LCNetV2 (scale 1.0) with one temporal shift, as PaddleVideo's
PPTSM_v2 computes it.

- stem: 3x3 conv 3->32 stride 2, then a depthwise-separable block 32->64;
- four stages of depthwise-separable blocks (2, 2, 6, 2 blocks; the first of each halves the size and
  doubles the width: 128, 256, 512, 1024); depthwise kernels 3, 3, 5, 5;
- stages 3 and 4 sum parallel depthwise branches (kernel 5, 3 and, without stride, 1; each with its own
  batch norm) before one ReLU ("reparameterisable"); stage 3 adds squeeze-excitation (sigmoid) and
  splits the pointwise conv in two (->half width ->full width); stage 4's stride-1 blocks add their input;
- just before stage 3, and only there: optionally the temporal attention (a per-clip fc over the
  frames' mean activations, sigmoid, scaling each frame), then the temporal shift of 1/clip_frames of
  the channels one frame forward and as many back within each clip;
- global average pool, a 1x1 conv 1024->1280 without bias, ReLU, dropout 0.2 in paddle's
  "downscale_in_infer" mode (training drops without rescaling; inference multiplies by 0.8): the features.
PaddleVideo then averages a clip's frames and runs its fc; we stop before the average, so features
are per frame [N, 1280] and their mean over a clip is exactly what its fc takes.

Parameter names (our scheme): stem.conv.{conv,bn}.*, stem.block.*, stages.<s>.<b>.{dw | dw_branches.<i>,
se.reduce, se.expand, pw | pw1, pw2}.*, last_conv.weight, temporal_attention.fc.*
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

from .temporal_shift import temporal_shift

# (blocks, depthwise kernel, reparameterised branches, squeeze-excitation, split pointwise, residual)
STAGES = ((2, 3, False, False, False, False),
          (2, 3, False, False, False, False),
          (6, 5, True, True, True, False),
          (2, 5, True, False, False, True))
STEM_WIDTH, FIRST_WIDTH = 32, 64
FEATURE_DIM = 1280
DROPOUT = 0.2
SHIFT_BEFORE_STAGE = 2  # PaddleVideo shifts once, before the third stage, for speed


class ConvBN(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - 1) // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)
        self.relu = nn.ReLU() if relu else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self.relu is None else self.relu(x)


class SqueezeExcite(nn.Layer):
    def __init__(self, channels, reduction=4):
        super().__init__()
        self.reduce = nn.Conv2D(channels, channels // reduction, 1)
        self.expand = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.sigmoid(self.expand(F.relu(self.reduce(scale))))
        return x * scale


class DepthwiseSeparable(nn.Layer):
    def __init__(self, in_channels, out_channels, stride, kernel, branches=False, se=False,
                 split_pw=False, residual=False):
        super().__init__()
        if branches:
            kernels = [k for k in range(kernel, 0, -2) if not (k == 1 and stride != 1)]
            self.dw_branches = nn.LayerList([ConvBN(in_channels, in_channels, k, stride, groups=in_channels, relu=False)
                                             for k in kernels])
        else:
            self.dw = ConvBN(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.se = SqueezeExcite(in_channels) if se else None
        if split_pw:
            self.pw1 = ConvBN(in_channels, out_channels // 2, 1)
            self.pw2 = ConvBN(out_channels // 2, out_channels, 1)
        else:
            self.pw = ConvBN(in_channels, out_channels, 1)
        self.branches, self.split_pw = branches, split_pw
        self.residual = residual and stride == 1 and in_channels == out_channels

    def forward(self, x):
        if self.branches:
            y = F.relu(paddle.add_n([branch(x) for branch in self.dw_branches]))
        else:
            y = self.dw(x)
        if self.se is not None:
            y = self.se(y)
        y = self.pw2(self.pw1(y)) if self.split_pw else self.pw(y)
        return x + y if self.residual else y


class TemporalAttention(nn.Layer):
    """One weight per frame from the clip's per-frame mean activations (PP-TSMv2's "global attention")."""

    def __init__(self, clip_frames):
        super().__init__()
        self.clip_frames = clip_frames
        # PaddleVideo trains this fc at 5x (weight) and 10x (bias) the base learning rate
        self.fc = nn.Linear(clip_frames, clip_frames, weight_attr=paddle.ParamAttr(learning_rate=5.0),
                            bias_attr=paddle.ParamAttr(learning_rate=10.0))

    def forward(self, x):
        _, channels, height, width = x.shape
        clips = x.reshape([-1, self.clip_frames, channels, height, width])
        weights = F.sigmoid(self.fc(clips.mean(axis=[2, 3, 4])))
        return (clips * weights.reshape([-1, self.clip_frames, 1, 1, 1])).reshape([-1, channels, height, width])


class PPTSMv2(nn.Layer):
    def __init__(self, clip_frames=8, temporal_attention=False):
        super().__init__()
        if clip_frames < 1:
            raise ValueError(f"PP-TSMv2 needs clip_frames >= 1, not {clip_frames}")
        self.clip_frames = clip_frames
        self.stem = nn.Sequential(("conv", ConvBN(3, STEM_WIDTH, 3, stride=2)),
                                  ("block", DepthwiseSeparable(STEM_WIDTH, FIRST_WIDTH, 1, 3)))
        stages, in_channels = [], FIRST_WIDTH
        for blocks, kernel, branches, se, split_pw, residual in STAGES:
            out_channels = in_channels * 2
            stages.append(nn.Sequential(*[
                DepthwiseSeparable(in_channels if b == 0 else out_channels, out_channels, 2 if b == 0 else 1,
                                   kernel, branches, se, split_pw, residual) for b in range(blocks)]))
            in_channels = out_channels
        self.stages = nn.LayerList(stages)
        self.temporal_attention = TemporalAttention(clip_frames) if temporal_attention else None
        self.last_conv = nn.Conv2D(in_channels, FEATURE_DIM, 1, bias_attr=False)
        self.dropout = nn.Dropout(DROPOUT, mode="downscale_in_infer")

    def forward(self, images):
        x = self.stem(images)
        for index, stage in enumerate(self.stages):
            if index == SHIFT_BEFORE_STAGE:
                if self.temporal_attention is not None:
                    x = self.temporal_attention(x)
                x = temporal_shift(x, self.clip_frames)
            x = stage(x)
        x = F.relu(self.last_conv(F.adaptive_avg_pool2d(x, 1)))
        return paddle.flatten(self.dropout(x), 1)

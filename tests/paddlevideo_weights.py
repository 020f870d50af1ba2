"""Seeded random weights for PaddleVideo's PP backbones, in PaddleVideo's names.

tools/paddlevideo_reference/make_fixtures.py sets these into PaddleVideo's own classes to record
their features; tests/test_pp_backbones.py makes the same arrays again from the recorded names and
shapes (the weights themselves are not committed) and loads them through our loaders. Only numpy's
uniform draws are used, seeded by the parameter's name, so both sides get the same bits.

Values are chosen by role so that a wrong mapping shows: batch-norm statistics and scales far from
their defaults, convolutions scaled to keep activations in range.
"""
import zlib

import numpy as np


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def uniform(name, shape, low, high):
    return _rng(name).uniform(low, high, size=shape).astype("float32")


def weight(name, shape):
    """The value of parameter `name` (PaddleVideo's name, without any `backbone.` prefix)."""
    shape = tuple(shape)
    if name.endswith("_mean"):
        return uniform(name, shape, -0.3, 0.3)
    if name.endswith("_variance"):  # below ~0.4 PP-LCNetV2 (no residuals) blows up, above ~1 it forgets its input
        return uniform(name, shape, 0.4, 1.0)
    if len(shape) == 4:  # conv kernel [out, in / groups, k, k]: He uniform (keeps variance through ReLU)
        fan_in = int(np.prod(shape[1:]))
        bound = np.sqrt(6.0 / fan_in)
        return uniform(name, shape, -bound, bound)
    if len(shape) == 2:  # linear [in, out]
        bound = 1.0 / np.sqrt(shape[0])
        return uniform(name, shape, -bound, bound)
    if name.endswith("weight"):  # a batch-norm scale
        return uniform(name, shape, 0.5, 1.2)
    return uniform(name, shape, -0.2, 0.2)  # biases


def state(names_shapes):
    """{name: array} for [(name, shape), ...] in that order."""
    return {name: weight(name, shape) for name, shape in names_shapes}


def frames(count, size, seed="paddlevideo-fixture-frames"):
    """Normalised-looking images [count, 3, size, size], exactly representable in float16: per frame a
    colour, a gradient and a blob (what survives global pooling), plus pixel noise."""
    rng = _rng(seed)
    ramp = np.linspace(-1.0, 1.0, size)
    y, x = np.meshgrid(ramp, ramp, indexing="ij")
    colour = rng.uniform(-1.5, 1.5, size=(count, 3, 1, 1))
    slope = rng.uniform(-1.0, 1.0, size=(count, 3, 2, 1, 1))
    centre = rng.uniform(-0.6, 0.6, size=(count, 1, 2, 1, 1))
    blob = np.exp(-((x - centre[:, :, 0]) ** 2 + (y - centre[:, :, 1]) ** 2) / 0.1)
    images = colour + slope[:, :, 0] * x + slope[:, :, 1] * y + rng.uniform(-1.0, 1.0, size=(count, 3, 1, 1)) * blob
    images = images + rng.uniform(-0.3, 0.3, size=(count, 3, size, size))
    return images.astype("float16").astype("float32")

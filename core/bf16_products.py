"""bf16 matrix products for training on the CPU (`--amp`): the large products of a step run through
oneDNN's bfloat16 kernels (AMX or AVX512_BF16), everything else stays float32.

Paddle's eager mode has no bfloat16 matmul on the CPU (3.3.1: "kernel `matmul` is not registered"
for bfloat16, and auto_cast does nothing there); paddle.inference has one. So a product in bf16 is a
one-operation program (matmul, its transposes as attributes) run by a predictor, inside a PyLayer
whose backward runs the two gradient products the same way. Inputs and outputs stay float32
tensors: oneDNN rounds the operands to bfloat16 and accumulates in float32 (relative error ~3e-3,
as mixed precision on a GPU). Measured (bench/cpu_bf16_products.py): 3.2x the float32 product.

Use: `with enabled(True): ...` around a forward pass; models call `matmul` / `linear` for the
products worth it (each call costs a predictor run: only large ones).
"""
import contextlib
import os
import re
import tempfile
import threading
import warnings

import paddle

from . import cpu_threads
from .log import without_native_lines

# CPU features (/proc/cpuinfo flags) that make a precision worth running: oneDNN has bf16 and
# int8 kernels without them too, but they emulate and run slower than fp32 (extraction's check too).
CPU_FLAGS_NEEDED = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "avx_vnni", "amx_int8")}


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def unavailable_reason():
    """Why bf16 products cannot run here, or "" when they can."""
    if not cpu_flags() & set(CPU_FLAGS_NEEDED["bf16"]):
        return f"this CPU has no {' or '.join(CPU_FLAGS_NEEDED['bf16'])} (see /proc/cpuinfo)"
    if int(paddle.__version__.split(".")[0]) < 3 and paddle.__version__ != "0.0.0":
        # 2.6's predictor crashes running a program without parameters on tensors it is handed
        return f"Paddle {paddle.__version__} cannot run them (Paddle 3 can)"
    return ""


# glog's line when bf16 is switched on, whatever the flags: "I1126 16:54:05.119333 13179
# analysis_config.cc:713] Hardware support for BFLOAT16 is enabled"
BFLOAT16_NOTICE = re.compile(rb"^I\d{4} [\d:.]+ +\d+ analysis_config\.cc:\d+\] Hardware support for BFLOAT16 is enabled$")

_state = threading.local()


@contextlib.contextmanager
def enabled(on):
    """Products called by models (matmul, linear) within run in bf16 when `on`."""
    before = getattr(_state, "on", False)
    _state.on = bool(on)
    try:
        yield
    finally:
        _state.on = before


def active():
    return getattr(_state, "on", False)


def _in_bf16(*operands):
    """Whether a product of `operands` runs in bf16: within `enabled(True)`, float32 operands only."""
    return active() and all(operand.dtype == paddle.float32 for operand in operands)


class _Product(paddle.nn.Layer):
    def __init__(self, transpose_x, transpose_y):
        super().__init__()
        self.transpose_x, self.transpose_y = transpose_x, transpose_y

    def forward(self, x, y):
        return paddle.matmul(x, y, transpose_x=self.transpose_x, transpose_y=self.transpose_y)


_runners = {}  # (ndim, transpose_x, transpose_y) -> predictor, made on first use


def _runner(ndim, transpose_x, transpose_y):
    key = (ndim, transpose_x, transpose_y)
    if key not in _runners:
        spec = [paddle.static.InputSpec([-1] * ndim, "float32", name) for name in ("x", "y")]
        with tempfile.TemporaryDirectory(prefix="bf16-product-") as folder:  # read when the predictor is made
            prefix = os.path.join(folder, "product")
            with warnings.catch_warnings():  # "no variable in your model": a product has none
                warnings.simplefilter("ignore")
                paddle.jit.save(_Product(transpose_x, transpose_y), prefix, input_spec=spec)
            program = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
            with without_native_lines(BFLOAT16_NOTICE):
                config = paddle.inference.Config(program, prefix + ".pdiparams")
                config.disable_gpu()
                config.enable_mkldnn()
                config.enable_mkldnn_bfloat16()
                config.set_mkldnn_cache_capacity(8)  # shapes change every batch: keep the last few, not all
                config.set_cpu_math_library_num_threads(cpu_threads())
                config.disable_glog_info()
                _runners[key] = paddle.inference.create_predictor(config)
    return _runners[key]


def _contiguous(tensor):
    return tensor.contiguous() if hasattr(tensor, "is_contiguous") and not tensor.is_contiguous() else tensor


def _product(x, y, transpose_x=False, transpose_y=False):
    out = _runner(x.ndim, transpose_x, transpose_y).run([_contiguous(x), _contiguous(y)])[0]
    # A predictor's run leaves the process's math library on fewer threads: eager ops after it
    # ran on one core of two (measured) until this is said again.
    paddle.base.core.set_num_threads(cpu_threads())
    return out


class _MatMul(paddle.autograd.PyLayer):
    """x @ y, or x @ y^T (y [.., M, K]), in bf16, with its gradients in bf16."""

    @staticmethod
    def forward(ctx, x, y, transpose_y):
        ctx.save_for_backward(x, y)
        ctx.transpose_y = transpose_y
        return _product(x, y, transpose_y=transpose_y)

    @staticmethod
    def backward(ctx, d_out):
        x, y = ctx.saved_tensor()
        d_x = None if x.stop_gradient else _product(d_out, y, transpose_y=not ctx.transpose_y)
        # d_y: x^T d_out, or for y^T its transpose d_out^T x
        d_y = _product(d_out, x, transpose_x=True) if ctx.transpose_y else _product(x, d_out, transpose_x=True)
        return d_x, d_y


def product(x, y, transpose_x=False, transpose_y=False):
    """paddle.matmul without autograd (a hand-written backward's), in bf16 within `enabled(True)`.
    For large products only: a small one (a recurrence step's) runs slower in bf16 than in float32,
    its weights converted on every call."""
    if not _in_bf16(x, y):
        return paddle.matmul(x, y, transpose_x=transpose_x, transpose_y=transpose_y)
    return _product(x, y, transpose_x, transpose_y)


def matmul(x, y, transpose_y=False):
    """paddle.matmul(x, y, transpose_y=...) (2-D or batched 3-D), in bf16 within `enabled(True)`."""
    if not _in_bf16(x, y):
        return paddle.matmul(x, y, transpose_y=transpose_y)
    return _MatMul.apply(x, y, transpose_y)


def linear(x, weight, bias=None):
    """F.linear: x [..., in] @ weight [in, out] + bias, the product in bf16 within `enabled(True)`."""
    if not _in_bf16(x, weight):
        return paddle.nn.functional.linear(x, weight, bias)
    out = _MatMul.apply(x.reshape([-1, x.shape[-1]]), weight, False).reshape(x.shape[:-1] + [weight.shape[1]])
    return out if bias is None else out + bias

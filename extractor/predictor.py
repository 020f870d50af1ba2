"""The backbone as a callable: float32 images [N, 3, S, S] -> float32 features [N, feature_dim].

Which network is MODEL.backbone of the extractor's config (extractor/backbones.py); every function
here that names one takes that MODEL section, or a ResNet depth as before (VideoTag's ResNet TSN).
The callable carries `feature_dim` and `clip_frames` (0, or the clip a temporal-shift backbone
needs whole in every batch: extractor.pipeline batches clips).

The fast path exports the backbone once with paddle.jit.save into a cache folder keyed by the
weights' content and the precision, then runs it through paddle.inference (oneDNN on CPU, GPU and
optionally TensorRT on CUDA builds). Dygraph is the fallback, and what tests compare against.

Precision (INFER.precision): fp32; bf16 (oneDNN bfloat16 kernels, or a GPU's, on the same
exported program); int8 (a copy quantised by post-training quantisation on frames of the user's
own videos: `bash run.sh calibrate`, see quantize_int8).
"""
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import paddle

from core.bf16_products import BFLOAT16_NOTICE, CPU_FLAGS_NEEDED, cpu_flags  # noqa: F401  (this module's API too)
from core.errors import InputError
from core.fsutil import atomic_open
from core.log import log, without_native_lines

from . import backbones


DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "videotag", "extractor")
INPUT_NAME = "images"
RANDOM_INIT_SEED = 0

PRECISIONS = ("fp32", "bf16", "int8")
# What extraction.json records: fp32 keeps the name older records have, so their features stay valid.
RECORDED_PRECISION = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}
CALIBRATION_FRAMES = "calibration.npy"
CALIBRATION_RECORD = "calibration.json"
CALIBRATION_BATCH = 8


def model_section(model_cfg=101):
    """A MODEL section (dict) naming the backbone: `model_cfg` itself, or, for a ResNet depth (the
    older API), VideoTag's ResNet TSN of that depth."""
    if isinstance(model_cfg, dict):
        return dict(model_cfg)
    return {"backbone": backbones.DEFAULT, "num_layers": int(model_cfg)}


def section_of(model):
    """The MODEL section a built network was made from (a bare ResNet: its depth)."""
    return getattr(model, "model_section", None) or model_section(model.depth)


def build_model(model_cfg=101, weights=None):
    """The MODEL section's backbone (or a ResNet depth) in eval mode, loaded from `weights` or
    (loudly) left random."""
    section = model_section(model_cfg)
    spec = backbones.get(section)
    paddle.seed(RANDOM_INIT_SEED)  # random weights are reproducible, so their export can be cached
    model = spec.build(section)
    if weights:
        spec.load_weights(model, weights)
    else:
        log.warning("NO --extractor_weights GIVEN: the backbone has RANDOM weights and the features are "
                    "meaningless for tagging. Pass --extractor_weights (its checkpoint) for real features.")
    model.eval()
    model.model_section = section  # what export caches and the pipeline's clips are keyed on
    return model


def backbone_shape(model_cfg=101):
    """(feature_dim, clip_frames) of the backbone a MODEL section (or ResNet depth) names."""
    section = model_section(model_cfg)
    spec = backbones.get(section)
    return int(spec.feature_dim(section)), int(spec.clip_frames(section))


class DygraphBackbone:
    backend = "dygraph"

    def __init__(self, model):
        self.model = model
        self.feature_dim, self.clip_frames = backbone_shape(section_of(model))

    def __call__(self, images):
        with paddle.no_grad():
            return self.model(paddle.to_tensor(images)).numpy()


def model_file(prefix):
    """The program paddle.jit.save wrote: <prefix>.json on Paddle 3.x, <prefix>.pdmodel on 2.6."""
    for ext in (".json", ".pdmodel"):
        if os.path.exists(prefix + ext):
            return prefix + ext
    raise FileNotFoundError(f"no {prefix}.json or {prefix}.pdmodel")


def inference_device():
    """Where paddle.inference runs: the current GPU on CUDA builds, else the CPU."""
    return paddle.get_device() if paddle.device.is_compiled_with_cuda() else "cpu"


def check_precision(precision, device="cpu", backend="inference", where=None):
    """Refuse, in one line and before any compute, a precision this machine cannot run well."""
    if precision not in PRECISIONS:
        raise InputError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}", where)
    if precision == "fp32":
        return
    if backend != "inference":
        raise InputError(f"precision {precision} runs through paddle.inference: drop --extractor_backend "
                         f"{backend}", where)
    if device.startswith("gpu"):
        if precision == "int8":
            raise InputError("int8 is calibrated for the CPU (oneDNN): on a GPU use bf16 or fp32", where)
        major, minor = paddle.device.cuda.get_device_capability()
        if major < 8:
            raise InputError(f"bf16 needs a GPU of compute capability 8.0 or newer; this one is {major}.{minor}: "
                             "use fp32", where)
        return
    if not cpu_flags() & set(CPU_FLAGS_NEEDED[precision]):
        raise InputError(f"this CPU has no {' or '.join(CPU_FLAGS_NEEDED[precision])} (see /proc/cpuinfo), "
                         f"so {precision} would run slower than fp32: use fp32", where)


class InferenceBackbone:
    """An exported backbone through paddle.inference; `model_cfg`: the MODEL section (or ResNet
    depth) it was exported from."""
    backend = "inference"

    def __init__(self, model_prefix, device="cpu", use_tensorrt=False, max_batch=32, image_size=224,
                 precision="fp32", model_cfg=101, cpu_threads=0):
        self.feature_dim, self.clip_frames = backbone_shape(model_cfg)
        config = paddle.inference.Config(model_file(model_prefix), model_prefix + ".pdiparams")
        self.precision = precision
        if device.startswith("gpu"):
            device_id = int(device.partition(":")[2] or 0)
            if precision == "bf16":
                config.enable_use_gpu(512, device_id, paddle.inference.PrecisionType.Bfloat16)
            else:
                config.enable_use_gpu(512, device_id)
            if use_tensorrt:
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=max_batch,
                                              min_subgraph_size=3, use_static=False,
                                              use_calib_mode=False)
                smallest, largest = ({INPUT_NAME: [batch, 3, image_size, image_size]}
                                     for batch in (1, max_batch))
                config.set_trt_dynamic_shape_info(smallest, largest, largest)
        else:
            config.disable_gpu()
            config.enable_mkldnn()
            for fusion in broken_fusions(model_prefix):
                config.delete_pass(fusion)
            config.set_mkldnn_cache_capacity(4)  # full and last partial batch shapes
            if precision == "bf16":
                with without_pass_reports():  # its notice is printed here, not when the predictor is made
                    config.enable_mkldnn_bfloat16()
            elif precision == "int8":
                config.enable_mkldnn_int8()  # turns the quantised program's fake-quant ops into int8 kernels
            config.set_cpu_math_library_num_threads(cpu_threads or os.cpu_count() or 1)
        config.disable_glog_info()
        self.cpu_threads = config.cpu_math_library_num_threads()
        with without_pass_reports(precision != "fp32"):
            self.predictor = paddle.inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images):
        images = np.ascontiguousarray(images, dtype="float32")
        self.input.reshape(list(images.shape))
        self.input.copy_from_cpu(images)
        self.predictor.run()
        return self.output.copy_to_cpu()


# What the predictor's making prints to stderr whatever the flags say: oneDNN's int8 passes
# ("---    squashed 6 dequantize-quantize pairs" and ~30 like it, in colour codes) and the bf16
# switch ("I1126 16:54:05.119333 13179 analysis_config.cc:713] Hardware support for BFLOAT16 is enabled").
PASS_REPORT = re.compile(rb"^(\x1b\[[0-9;]*m)?---\s+(quantized|squashed) \d+ [^\n]*$|" + BFLOAT16_NOTICE.pattern)


# Paddle 3's warning while it converts a backbone to a program, about in-place ops it keeps as they
# are (the exported features equal dygraph's: tests/test_extractor.py).
EXPORT_NOTICE = re.compile(rb"^W\d{4} [\d:.]+ +\d+ eager_utils\.cc:\d+\] Paddle static graph\(PIR\) not support "
                           rb"input out tensor for now!*$")


def without_pass_reports(active=True):
    """Hold back those lines while the block runs (core.log.without_native_lines)."""
    return without_native_lines(PASS_REPORT, active)


# oneDNN fusions that crash Paddle 3.3 (SIGSEGV while the predictor is made) on a program with this
# op: any conv followed by leaky_relu (PP-TSM), batch norm or not, in the conv-activation fusion.
# Such a program runs without that one fusion (same features, tested); any other keeps every fusion.
# leaky_relu written as maximum(x, 0.01 x) (the same values) escapes the crash but ran slower still.
BROKEN_FUSIONS = {b"leaky_relu": "conv_activation_onednn_fuse_pass"}


def broken_fusions(model_prefix):
    with open(model_file(model_prefix), "rb") as f:
        program = f.read()
    return [fusion for op, fusion in BROKEN_FUSIONS.items() if op in program]


def weights_digest(weights):
    if not weights:
        return f"random{RANDOM_INIT_SEED}-zero-gamma"  # names the init: a changed init must not reuse an old export
    stat = os.stat(weights)
    return _file_digest(os.path.abspath(weights), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _file_digest(path, size, mtime_ns):
    """Content hash of a file, read once per process while it keeps its size and modification time
    (a run asks for it from the features' record, the export cache and the int8 calibration)."""
    digest = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# MODEL keys that never shape a backbone (the TSN classifier's, the heads'): left out of export keys.
NOT_BACKBONE = {"name", "backbone", "num_layers", "num_seg", "num_classes", "seg_num", "feature_dim", "drop_rate",
                "freeze_bn"}


def backbone_tag(model_cfg):
    """The backbone's name with what shapes its network: depth, the clip of a shift backbone and a
    digest of any other MODEL value (PP-TSMv2's temporal_attention, ...; a key too many only costs an
    export). VideoTag's ResNet keeps its older "resnet101", so earlier exports stay cached."""
    section = model_section(model_cfg)
    spec = backbones.get(section)
    depth = int(section.get("num_layers", 101)) if spec.depths else ""
    if spec.name == backbones.DEFAULT:
        return f"resnet{depth}"
    clip = spec.clip_frames(section)
    options = {key: value for key, value in section.items() if key not in NOT_BACKBONE}
    digest = hashlib.blake2b(json.dumps(options, sort_keys=True, default=str).encode(), digest_size=4).hexdigest()
    return f"{spec.name}{depth}" + (f"-seg{clip}" if clip else "") + f"-{digest}"


def cache_key(model_cfg, weights, image_size, precision="fp32"):
    """Names an exported backbone: which (MODEL section or ResNet depth), weights, size, paddle
    version and precision."""
    return (f"{backbone_tag(model_cfg)}-{image_size}-{weights_digest(weights)}-paddle{paddle.__version__}"
            f"-{precision}")


def save_inference_program(model, prefix, image_size):
    spec = paddle.static.InputSpec([None, 3, image_size, image_size], "float32", INPUT_NAME)
    # jit.save with a spec leaves `model` plain dygraph (to_static would convert it in place).
    with without_native_lines(EXPORT_NOTICE):
        paddle.jit.save(model, prefix, input_spec=[spec])


def publish(staging, folder, replace=False):
    """Rename a finished staging folder into place: concurrent processes never see half of one."""
    if replace and os.path.exists(folder):
        old = tempfile.mkdtemp(prefix=".old.", dir=os.path.dirname(folder))
        os.rename(folder, os.path.join(old, "x"))
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(staging, folder)
    except OSError:  # another process got there first
        pass


def export_model(model, weights, image_size, cache_dir=None, precision="fp32"):
    """Export `model` once per cache_key (fp32 or bf16); return the model path prefix."""
    cache_dir = cache_dir or DEFAULT_CACHE_DIR
    key = cache_key(section_of(model), weights, image_size, precision)
    folder = os.path.join(cache_dir, key)
    prefix = os.path.join(folder, "backbone")
    if os.path.exists(prefix + ".pdiparams"):
        return prefix
    os.makedirs(cache_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir)
    try:
        save_inference_program(model, os.path.join(staging, "backbone"), image_size)
        publish(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported the backbone for paddle.inference to %s", folder)
    return prefix


def check_int8_backbone(model_cfg, where=None):
    """Refuse int8 for PP-TSMv2: Paddle's post-training quantisation needs the older program format,
    which Paddle 3 cannot write for a sigmoid (its squeeze-excitation). PP-TSM quantises like the
    others, calibrated on whole clips."""
    section = model_section(model_cfg)
    spec = backbones.get(section)
    if spec.name == "pptsmv2" and int(paddle.__version__.split(".")[0]) >= 3:
        raise InputError(f"int8 is not supported for {spec.description} on Paddle {paddle.__version__}: "
                         "use --precision fp32 or bf16", where)


def int8_folder(model_cfg, weights, image_size, cache_dir=None):
    check_int8_backbone(model_cfg)
    return os.path.join(cache_dir or DEFAULT_CACHE_DIR, cache_key(model_cfg, weights, image_size, "int8"))


def read_calibration(model_cfg, weights, image_size, cache_dir=None):
    """The record of the int8 model calibrated for this backbone (MODEL section or ResNet depth),
    weights and settings; refuses when there is none."""
    folder = int8_folder(model_cfg, weights, image_size, cache_dir)
    try:
        with open(os.path.join(folder, CALIBRATION_RECORD)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(f"no int8 backbone calibrated for these weights and a {image_size}px crop yet: run "
                         "`bash run.sh calibrate --video_path YOUR_VIDEOS` (same --extractor_weights, config "
                         "and --cache_dir) first", folder) from None


def quantize_int8(model_cfg, weights, image_size, frames, cache_dir=None, sources=()):
    """Quantise the backbone (MODEL section or ResNet depth) to int8 with Paddle's post-training
    quantisation, its activation ranges measured on `frames` (normalised float32 [N, 3, S, S] from
    the user's videos; whole clips in time order for a shift backbone); cache it (replacing an older
    calibration) and return its record."""
    frames = np.ascontiguousarray(frames, dtype="float32")
    clip = backbone_shape(model_cfg)[1]
    if clip and len(frames) % clip:
        raise ValueError(f"calibrating a shift backbone needs whole {clip}-frame clips, not {len(frames)} frames")
    folder = int8_folder(model_cfg, weights, image_size, cache_dir)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".int8.", dir=os.path.dirname(folder))
    try:
        np.save(os.path.join(staging, CALIBRATION_FRAMES), frames)
        # Paddle's quantisation passes work on the old program format: Paddle 3 writes it only when
        # PIR is off from the start, so the work runs in a child process (Paddle 2.6 ignores the flag).
        env = dict(os.environ, FLAGS_enable_pir_api="0")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        child = subprocess.run([sys.executable, "-m", "extractor.predictor", "quantize", staging,
                                json.dumps(model_section(model_cfg)),
                                weights or "", str(image_size)], env=env, capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"int8 quantisation failed:\n{child.stderr[-3000:]}")
        os.remove(os.path.join(staging, CALIBRATION_FRAMES))
        record = {"frames": len(frames), "digest": hashlib.blake2b(frames.tobytes(), digest_size=8).hexdigest(),
                  "videos": list(sources), "algo": "hist", "paddle": paddle.__version__}
        with atomic_open(os.path.join(staging, CALIBRATION_RECORD)) as f:
            json.dump(record, f, indent=2)
        publish(staging, folder, replace=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("int8 backbone calibrated on %d frames, cached in %s", len(frames), folder)
    return record


class CalibrationBatches(paddle.io.DataLoader):
    """The calibration frames as the feeds PostTrainingQuantization runs: CALIBRATION_BATCH frames,
    or whole clips of a shift backbone (the frames come in clips, in time order). A DataLoader only
    because Paddle 2.6 accepts nothing else (it calls it and takes len(); Paddle 3 takes any callable)."""

    def __init__(self, frames, clip_frames=0):  # noqa: the DataLoader machinery is not needed
        self.frames = frames
        self.batch = max(clip_frames, CALIBRATION_BATCH // clip_frames * clip_frames) if clip_frames else \
            CALIBRATION_BATCH

    def __len__(self):
        return -(-len(self.frames) // self.batch)

    def __call__(self):
        for start in range(0, len(self.frames), self.batch):
            yield {INPUT_NAME: self.frames[start:start + self.batch]}


def _quantize_here(folder, model_cfg, weights, image_size):
    """The child of quantize_int8 (PIR off): fp32 program -> int8 program in `folder`."""
    from paddle.static.quantization import PostTrainingQuantization  # only here: it needs static mode

    save_inference_program(build_model(model_cfg, weights or None), os.path.join(folder, "fp32", "backbone"),
                           image_size)
    frames = np.load(os.path.join(folder, CALIBRATION_FRAMES))
    paddle.enable_static()
    batches = CalibrationBatches(frames, backbone_shape(model_cfg)[1])
    quantizer = PostTrainingQuantization(
        executor=paddle.static.Executor(paddle.CPUPlace()), model_dir=os.path.join(folder, "fp32"),
        model_filename="backbone.pdmodel", params_filename="backbone.pdiparams", data_loader=batches,
        batch_nums=len(batches), algo="hist", quantizable_op_type=["conv2d", "matmul_v2"],
        onnx_format=False)
    quantizer.quantize()
    quantizer.save_quantized_model(folder, model_filename="backbone.pdmodel", params_filename="backbone.pdiparams")
    shutil.rmtree(os.path.join(folder, "fp32"))


def create_backbone(model_cfg=101, weights=None, image_size=224, backend="inference", cache_dir=None,
                    max_batch=32, use_tensorrt=False, model=None, precision="fp32", cpu_threads=0):
    """A callable backbone: the MODEL section's (or a ResNet depth's), or the built `model`'s.
    backend "inference" falls back to dygraph, with a warning, when export or predictor creation
    fails (in fp32 only: a reduced precision that cannot run is an error). `cpu_threads`: the
    network's threads on the CPU (0: one per core)."""
    device = inference_device()
    check_precision(precision, device, backend)
    section = section_of(model) if model is not None else model_section(model_cfg)
    if precision == "int8":
        read_calibration(section, weights, image_size, cache_dir)  # refuses when not calibrated
        prefix = os.path.join(int8_folder(section, weights, image_size, cache_dir), "backbone")
        return InferenceBackbone(prefix, device, use_tensorrt, max_batch, image_size, precision, section, cpu_threads)
    model = model if model is not None else build_model(section, weights)
    if backend == "dygraph":
        return DygraphBackbone(model)
    try:
        prefix = export_model(model, weights, image_size, cache_dir, precision)
        return InferenceBackbone(prefix, device, use_tensorrt, max_batch, image_size, precision, section, cpu_threads)
    except Exception as err:  # any export/inference failure: still extract, only slower
        if precision != "fp32":
            raise
        log.warning("paddle.inference unavailable (%s: %s); falling back to dygraph, which is slower",
                    type(err).__name__, err)
        return DygraphBackbone(model)


if __name__ == "__main__":
    if sys.argv[1:2] == ["quantize"]:  # quantize_int8's child process
        _quantize_here(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5]))

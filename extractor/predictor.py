"""The backbone as a callable: float32 images [N, 3, S, S] -> float32 features [N, 2048].

The fast path exports the backbone once with paddle.jit.save into a cache folder keyed by the
weights' content, then runs it through paddle.inference (oneDNN on CPU, GPU and optionally
TensorRT on CUDA builds). Dygraph is the fallback, and what tests compare against.
"""
import hashlib
import os
import shutil
import tempfile

import numpy as np
import paddle

from core.log import log

from .resnet import ResNet
from .weights import load_weights


DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "videotag", "extractor")
INPUT_NAME = "images"
RANDOM_INIT_SEED = 0


def build_model(depth=101, weights=None):
    """ResNet backbone in eval mode, loaded from `weights` or (loudly) left random."""
    paddle.seed(RANDOM_INIT_SEED)  # random weights are reproducible, so their export can be cached
    model = ResNet(depth)
    if weights:
        load_weights(model, weights)
    else:
        log.warning("NO --extractor_weights GIVEN: the backbone has RANDOM weights and the features are "
                    "meaningless for tagging. Pass --extractor_weights tsn.pdparams for real features.")
    model.eval()
    return model


class DygraphBackbone:
    backend = "dygraph"

    def __init__(self, model):
        self.model = model

    def __call__(self, images):
        with paddle.no_grad():
            return self.model(paddle.to_tensor(images)).numpy()


def model_file(prefix):
    """The program paddle.jit.save wrote: <prefix>.json on Paddle 3.x, <prefix>.pdmodel on 2.6."""
    for ext in (".json", ".pdmodel"):
        if os.path.exists(prefix + ext):
            return prefix + ext
    raise FileNotFoundError(f"no {prefix}.json or {prefix}.pdmodel")


class InferenceBackbone:
    backend = "inference"

    def __init__(self, model_prefix, device="cpu", use_tensorrt=False, max_batch=32, image_size=224):
        config = paddle.inference.Config(model_file(model_prefix), model_prefix + ".pdiparams")
        if device.startswith("gpu"):
            device_id = int(device.partition(":")[2] or 0)
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
            config.set_mkldnn_cache_capacity(4)  # full and last partial batch shapes
            config.set_cpu_math_library_num_threads(os.cpu_count() or 1)
        config.disable_glog_info()
        self.predictor = paddle.inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, images):
        images = np.ascontiguousarray(images, dtype="float32")
        self.input.reshape(list(images.shape))
        self.input.copy_from_cpu(images)
        self.predictor.run()
        return self.output.copy_to_cpu()


def weights_digest(weights):
    if not weights:
        return f"random{RANDOM_INIT_SEED}-zero-gamma"  # names the init: a changed init must not reuse an old export
    digest = hashlib.blake2b(digest_size=10)
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def export_model(model, weights, image_size, cache_dir=None):
    """Export `model` once per (weights, depth, size, paddle version); return the model path prefix."""
    cache_dir = cache_dir or DEFAULT_CACHE_DIR
    key = f"resnet{model.depth}-{image_size}-{weights_digest(weights)}-paddle{paddle.__version__}"
    folder = os.path.join(cache_dir, key)
    prefix = os.path.join(folder, "backbone")
    if os.path.exists(prefix + ".pdiparams"):
        return prefix
    os.makedirs(cache_dir, exist_ok=True)
    # Export into a private folder and rename it into place: concurrent processes never see half.
    staging = tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir)
    try:
        spec = paddle.static.InputSpec([None, 3, image_size, image_size], "float32", INPUT_NAME)
        # jit.save with a spec leaves `model` plain dygraph (to_static would convert it in place).
        paddle.jit.save(model, os.path.join(staging, "backbone"), input_spec=[spec])
        try:
            os.rename(staging, folder)
        except OSError:  # another process got there first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported the backbone for paddle.inference to %s", folder)
    return prefix


def create_backbone(depth=101, weights=None, image_size=224, backend="inference", cache_dir=None,
                    max_batch=32, use_tensorrt=False, model=None):
    """A callable backbone. backend "inference" falls back to dygraph, with a warning, when
    export or predictor creation fails."""
    model = model if model is not None else build_model(depth, weights)
    if backend == "dygraph":
        return DygraphBackbone(model)
    try:
        prefix = export_model(model, weights, image_size, cache_dir)
        device = paddle.get_device() if paddle.device.is_compiled_with_cuda() else "cpu"
        return InferenceBackbone(prefix, device, use_tensorrt, max_batch, image_size)
    except Exception as err:  # any export/inference failure: still extract, only slower
        log.warning("paddle.inference unavailable (%s: %s); falling back to dygraph, which is slower",
                    type(err).__name__, err)
        return DygraphBackbone(model)

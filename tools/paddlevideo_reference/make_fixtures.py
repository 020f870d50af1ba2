"""Record PaddleVideo's own PP backbones (seeded random weights) into tests/fixtures/paddlevideo/.

Run by hand (see README.md), never by CI. PaddleVideo's backbone files are read from its git mirror
into a temporary package; only its registry, weight-init and checkpoint helpers are stubbed (the
networks never call them here). Writes:
  nets.json   per network: how it was built, its ordered state-dict names and shapes, frames used
  io.npz      `frames` (float16, shared: each network takes the first clips * num_seg) and
              `<network>` features [frames, feature_dim] (float32) as PaddleVideo computes them
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import paddle

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import paddlevideo_weights  # noqa: E402  (shared with the test; lives in tests/)

MIRROR = "/work/.mirror/PaddlePaddle+PaddleVideo/repo"
BACKBONE_FILES = ("resnet_tweaks_tsn.py", "resnet_tweaks_tsm.py", "pptsm_v2.py")
CLIPS, SIZE = 2, 48  # 48: odd feature-map sizes deep in the nets, so ceil-mode pooling and padding count

STUBS = {
    "__init__.py": "",
    "utils/__init__.py": "def load_ckpt(*args, **kwargs):\n    raise RuntimeError('not used by the fixtures')\n",
    "utils/save_load.py": "from . import load_ckpt\n",
    "modeling/__init__.py": "",
    "modeling/registry.py": ("class _Registry:\n    def register(self):\n        return lambda obj: obj\n\n"
                             "BACKBONES = _Registry()\n"),
    "modeling/weight_init.py": "def weight_init_(*args, **kwargs):\n    raise RuntimeError('not used')\n",
    "modeling/backbones/__init__.py": "",
}

# name -> (module, factory, keyword arguments, num_seg: frames per clip, 0 for a frame-wise net)
NETS = {
    "pptsn_r50": ("resnet_tweaks_tsn", "ResNetTweaksTSN", {"layers": 50}, 0),
    "pptsm_r50": ("resnet_tweaks_tsm", "ResNetTweaksTSM", {"depth": 50, "num_seg": 8}, 8),
    "pptsm_r101": ("resnet_tweaks_tsm", "ResNetTweaksTSM", {"depth": 101, "num_seg": 8}, 8),
    "pptsmv2_8": ("pptsm_v2", "PPTSM_v2", {"num_seg": 8, "class_num": 10}, 8),
    "pptsmv2_16_attention": ("pptsm_v2", "PPTSM_v2", {"num_seg": 16, "class_num": 10, "use_temporal_att": True}, 16),
}
TSN_FRAMES = 3  # PP-TSN's frames are independent: a few suffice


def unpack_paddlevideo(root, commit):
    """A package `pvref` in `root` holding PaddleVideo's three backbone files and the stubs."""
    package = os.path.join(root, "pvref")
    for relative, text in STUBS.items():
        os.makedirs(os.path.dirname(os.path.join(package, relative)), exist_ok=True)
        with open(os.path.join(package, relative), "w") as f:
            f.write(text)
    for name in BACKBONE_FILES:
        source = subprocess.run(["git", "-C", MIRROR, "show", f"{commit}:paddlevideo/modeling/backbones/{name}"],
                                check=True, capture_output=True, text=True).stdout
        with open(os.path.join(package, "modeling", "backbones", name), "w") as f:
            f.write(source)
    sys.path.insert(0, root)


def features(name, net, images):
    """What PaddleVideo's classifier takes, per frame: the head's global average pool of the
    ResNets' maps; for PP-TSMv2 the output of its dropout (the fc input is its mean over a clip)."""
    if name.startswith("pptsmv2"):
        seen = []
        net.dropout.register_forward_post_hook(lambda layer, inputs, output: seen.append(output))
        logits = net(images)
        per_frame = seen[0].reshape([seen[0].shape[0], -1])
        clip_mean = per_frame.reshape([-1, net.num_seg, per_frame.shape[1]]).mean(axis=1)
        fc_input = paddle.matmul(clip_mean, net.fc.weight) + net.fc.bias
        assert np.allclose(fc_input.numpy(), logits.numpy(), rtol=1e-4, atol=1e-4), "fc input is not the clip mean"
        return per_frame.numpy()
    return paddle.nn.functional.adaptive_avg_pool2d(net(images), 1).flatten(1).numpy()


def record(name, frames, root, commit):
    """Build network `name` from PaddleVideo's class, set the seeded weights, run `frames`; saves
    <root>/<name>.npz and .json. One network per process: PaddleVideo's ResNets name their
    parameters explicitly, and dygraph refuses a name twice in a process."""
    unpack_paddlevideo(root, commit)
    module, factory, kwargs, num_seg = NETS[name]
    build = getattr(__import__(f"pvref.modeling.backbones.{module}", fromlist=[factory]), factory)
    net = build(**kwargs)
    net.eval()
    names_shapes = [(key, list(value.shape)) for key, value in net.state_dict().items()]
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in paddlevideo_weights.state(names_shapes).items()})
    count = CLIPS * (num_seg or TSN_FRAMES)
    with paddle.no_grad():
        result = features(name, net, paddle.to_tensor(frames[:count]))
    np.save(os.path.join(root, f"{name}.npy"), result)
    with open(os.path.join(root, f"{name}.json"), "w") as f:
        json.dump({"class": factory, "kwargs": kwargs, "num_seg": num_seg, "frames": count, "state": names_shapes}, f)
    print(f"{name}: {len(names_shapes)} tensors, features {result.shape}, max |feature| {np.abs(result).max():.4g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/paddlevideo")
    parser.add_argument("--commit", default="HEAD", help="PaddleVideo commit in the mirror")
    parser.add_argument("--net", help=argparse.SUPPRESS)  # internal: record one network into --work
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    most_frames = max(CLIPS * (seg or TSN_FRAMES) for *_, seg in NETS.values())
    frames = paddlevideo_weights.frames(most_frames, SIZE)
    if args.net:
        record(args.net, frames, args.work, args.commit)
        return
    commit = subprocess.run(["git", "-C", MIRROR, "rev-parse", args.commit], check=True,
                            capture_output=True, text=True).stdout.strip()
    arrays = {"frames": frames.astype("float16")}
    report = {"paddlevideo_commit": commit, "paddle": paddle.__version__, "clips": CLIPS, "size": SIZE, "nets": {}}
    with tempfile.TemporaryDirectory() as work:
        for name in NETS:
            subprocess.run([sys.executable, os.path.abspath(__file__), "--net", name, "--work", work,
                            "--commit", commit], check=True)
            arrays[name] = np.load(os.path.join(work, f"{name}.npy"))
            with open(os.path.join(work, f"{name}.json")) as f:
                report["nets"][name] = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    np.savez_compressed(os.path.join(args.out, "io.npz"), **arrays)
    with open(os.path.join(args.out, "nets.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

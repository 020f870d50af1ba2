"""Peak resident memory of the extractor against video length, each video in its own process.

    .venv/bin/python bench/memory.py [--quick] [--json out.json]

A child process builds the backbone (the exported predictor, prepared beforehand by another
child so export costs are not counted), runs one batch of 32 to let oneDNN allocate, notes its
peak (VmHWM: the model alone), extracts one video with iter_video_features and reports VmHWM
again; the parent also reads the child's ru_maxrss from os.wait4. The reference extractor kept
every decoded frame: its frame memory is computed (frames x height x width x 3 bytes), not run.
--quick uses seg_num 32 instead of 300.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CLIPS = ["360p_10s", "360p_10min"]
EXPORTS = os.path.join(common.CACHE, "exports")


def vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB -> bytes
    raise KeyError(key)


def child(path, seg_num):
    import numpy as np

    from extractor.pipeline import InferSettings, iter_video_features
    from extractor.predictor import create_backbone

    backbone = create_backbone(101, None, 224, "inference", EXPORTS, 32)
    if path is None:  # prepare: export only
        return {}
    backbone(np.zeros((32, 3, 224, 224), "float32"))
    model_peak = vm("VmHWM")
    settings = InferSettings(seg_num=seg_num, short_size=256, target_size=224, batch_size=32,
                             num_workers=2)
    [result] = iter_video_features([path], settings, backbone)
    assert result.ok, result.error
    return {"model_peak": model_peak, "peak": vm("VmHWM"), "frame_count": result.info["frame_count"]}


def run_child(path, seg_num):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", path or "", "--seg_num", str(seg_num)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{cmd} failed ({status}): {out}")
    result = json.loads(out.strip().splitlines()[-1])
    result["ru_maxrss"] = usage.ru_maxrss * 1024  # kB on Linux
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seg_num", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child or None, args.seg_num)))
        return
    seg_num = 32 if args.quick else 300
    print(f"# {common.machine()}; {common.load()} at start", flush=True)
    paths = {name: common.clip(name) for name in CLIPS}
    run_child(None, seg_num)
    mb = lambda n: f"{n / 2**20:.0f} MB"  # noqa: E731
    rows, fig = [], {"seg_num": seg_num}
    for name in CLIPS:
        r = run_child(paths[name], seg_num)
        height, width, _, _ = common.CLIPS[name]
        r["reference_frames_bytes"] = r["frame_count"] * height * width * 3
        fig[name] = r
        rows.append([name, r["frame_count"], mb(r["model_peak"]), mb(r["peak"]), mb(r["ru_maxrss"]),
                     mb(r["reference_frames_bytes"])])
        print(f"# {name}: peak {mb(r['peak'])}; {common.load()}", flush=True)
    ratio = fig[CLIPS[1]]["peak"] / fig[CLIPS[0]]["peak"]
    fig["ratio"] = ratio
    print()
    print(common.table(rows, ["video", "frames", "model only (VmHWM)", f"peak, seg_num {seg_num} (VmHWM)",
                              "peak (ru_maxrss)", "reference: decoded frames alone"]))
    print(f"\npeak 10 min / peak 10 s: {ratio:.2f}\n{common.machine()}; {common.load()} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fig, f, indent=1)


if __name__ == "__main__":
    main()

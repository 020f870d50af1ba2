"""Synthetic frame-feature data sets that a head can learn: each class has a prototype vector, and a
video carries a label exactly when its class's prototype appears in some of its frames."""
import os

import numpy as np


def write_feature_dataset(folder, num_videos=96, num_classes=6, dim=16, max_frames=10, seed=0, prefix="train"):
    """Write <folder>/<prefix>/*.npy and <folder>/<prefix>.list; returns the list path."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(1234).normal(0, 3, (num_classes, dim))  # shared by every split
    os.makedirs(os.path.join(folder, prefix), exist_ok=True)
    lines = []
    for v in range(num_videos):
        frames = rng.integers(max_frames // 2, max_frames + 1)
        labels = sorted(rng.choice(num_classes, size=rng.integers(1, 3), replace=False).tolist())
        x = rng.normal(0, 1, (frames, dim))
        for c in labels:
            x[rng.choice(frames, size=2, replace=False)] += prototypes[c]
        name = f"{prefix}/video{v:03d}.npy"
        np.save(os.path.join(folder, name), x.astype(np.float32))
        lines.append(" ".join([name] + [str(c) for c in labels]))
    list_path = os.path.join(folder, f"{prefix}.list")
    with open(list_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return list_path

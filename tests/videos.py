"""Real mp4 test videos (OpenCV mp4v, readable by decord) whose frames tell their index."""
import os

import cv2
import numpy as np


def frame_pattern(index, height, width, seed=0):
    """RGB frame number `index`: a smooth random picture plus an index code (red steps by 28 with
    index % 8, green with index // 8, unique up to 64 frames) that survives compression."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 40, (4, 4, 3), dtype=np.uint8), (width, height),
                      interpolation=cv2.INTER_LINEAR).astype(np.int32)
    base[..., 0] += (index % 8) * 28
    base[..., 1] += (index // 8 % 8) * 28
    return base.clip(0, 255).astype(np.uint8)


def write_video(path, num_frames=12, height=48, width=64, fps=10.0, seed=0):
    """Write `num_frames` frames of frame_pattern to `path` (.mp4) and return the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for index in range(num_frames):
        writer.write(cv2.cvtColor(frame_pattern(index, height, width, seed), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# Two classes told apart by colour: class 0 red, class 1 blue.
CLASS_COLOURS = [(220, 30, 30), (30, 40, 220)]


def write_colour_classes(folder, count, **video):
    """`count` coloured videos in folder/clips, alternately class 0 and 1, and folder/train.list
    naming them relative to the list; `video`: write_coloured_video's num_frames and size."""
    os.makedirs(folder / "clips")
    lines = []
    for i in range(count):
        write_coloured_video(folder / "clips" / f"v{i}.mp4", CLASS_COLOURS[i % 2], seed=i, **video)
        lines.append(f"clips/v{i}.mp4 {i % 2}")
    (folder / "train.list").write_text("\n".join(lines) + "\n")
    return folder


def write_coloured_video(path, colour, seed, num_frames=8, size=(40, 32)):
    """A noisy frame of one RGB colour, brightness drifting over time (classification tests: the
    class is the colour)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for t in range(num_frames):
        frame = np.array(colour, np.float32) * (0.8 + 0.02 * t) + rng.normal(0, 8, (size[1], size[0], 3))
        writer.write(cv2.cvtColor(frame.clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()

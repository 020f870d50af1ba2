"""Seeded generator of a small multi-label mp4 library, so the demo runs without downloads.

Each video shows 1-3 identical objects over a grey background. It carries one label from
every single-frame group and one or two temporal labels.

Single-frame groups (visible in every frame that shows the objects):
  colour      red, green, blue, yellow
  shape       circle, square, triangle
  count       one_object, two_objects, three_objects
  background  plain_background, textured_background (checkerboard)
Temporal groups (the two labels of a pair show the same set of frames, only in the opposite
order; reversing a video in time swaps them, see `reversed_labels`):
  brightness  fade_in (the whole frame brightens) / fade_out (it darkens)
  presence    appears (objects absent, then present) / disappears (present, then absent)
  size        grows / shrinks
A group that stays steady in a video contributes no label to it.

Temporal labels change brightness, coloured area and size rather than positions, because
globally average-pooled features of a randomly initialised CNN (the demo has no pretrained
weights) keep colour, brightness, area and texture but lose position.

    python -m videotag.synthetic --save_dir data/demo --num_videos 240 --seed 0
"""
import argparse
import dataclasses
import os

import cv2
import numpy as np
from tqdm import tqdm

from core.errors import InputError, exit_on_input_error
from core.fsutil import atomic_open, atomic_path
from core.lists import write_list

COLOURS = {"red": (210, 40, 40), "green": (40, 180, 60), "blue": (50, 70, 220), "yellow": (220, 200, 40)}
SHAPES = ("circle", "square", "triangle")
COUNTS = ("one_object", "two_objects", "three_objects")
BACKGROUNDS = ("plain_background", "textured_background")
TEMPORAL_PAIRS = (("fade_in", "fade_out"), ("appears", "disappears"), ("grows", "shrinks"))
LABELS = [*COLOURS, *SHAPES, *COUNTS, *BACKGROUNDS, *(name for pair in TEMPORAL_PAIRS for name in pair)]
SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}
NOISE_SIGMA = np.float32(3)  # grey levels of per-frame sensor noise

_REVERSED = {a: b for pair in TEMPORAL_PAIRS for a, b in (pair, pair[::-1])}


def reversed_labels(labels):
    """The labels of `labels`' video played backwards: temporal pairs swap, the rest stay."""
    return sorted((_REVERSED.get(name, name) for name in labels), key=LABELS.index)


@dataclasses.dataclass
class VideoPlan:
    """Everything needed to draw one video; per-frame arrays have one row per frame."""

    labels: list  # tag names, in LABELS order
    colour: tuple  # RGB of the objects
    shape: str
    background: np.ndarray  # (h, w, 3) uint8 RGB
    centres: np.ndarray  # (frames, objects, 2) x, y in pixels
    radius: np.ndarray  # (frames,) radius of the circle each object fits in
    present: np.ndarray  # (frames,) whether the objects are drawn
    brightness: np.ndarray  # (frames,) gain applied to the whole frame
    noise_seeds: np.ndarray  # (frames,) so that reversing the plan reverses the noise too


def reverse_plan(plan):
    """The plan of the same video played backwards."""
    flip = {f: getattr(plan, f)[::-1].copy() for f in ("centres", "radius", "present", "brightness", "noise_seeds")}
    return dataclasses.replace(plan, labels=reversed_labels(plan.labels), **flip)


def _ramp(rng, num_frames, low, high, rising):
    values = np.linspace(rng.uniform(*low), rng.uniform(*high), num_frames)
    return values if rising else values[::-1].copy()


def plan_video(rng, size=(112, 84), num_frames=30):
    """Draw a random video description (labels plus everything needed to render it)."""
    width, height = size
    colour_name = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    count = int(rng.integers(1, 4))
    textured = bool(rng.random() < 0.5)
    # One or two temporal groups change, each in a random direction; the others stay steady.
    changing = {int(g): bool(rng.random() < 0.5) for g in rng.choice(3, size=int(rng.integers(1, 3)), replace=False)}
    labels = [colour_name, shape, COUNTS[count - 1], BACKGROUNDS[textured]]
    labels += [TEMPORAL_PAIRS[g][0 if forward else 1] for g, forward in changing.items()]

    if 0 in changing:  # the low end stays >= 0.3 so colours still read in the darkest frame
        brightness = _ramp(rng, num_frames, (0.3, 0.4), (0.9, 1.0), changing[0])
    else:
        brightness = np.full(num_frames, rng.uniform(0.8, 1.0))
    present = np.ones(num_frames, bool)
    if 1 in changing:  # switch in the middle third, so objects show in >= 1/3 of frames
        switch = int(round(rng.uniform(0.35, 0.65) * num_frames))
        present = (np.arange(num_frames) >= switch) == changing[1]
    side = min(width, height)
    radius = np.full(num_frames, rng.uniform(0.13, 0.155) * side)
    if 2 in changing:  # the size changes over the frames that show the objects, by 2x or more
        radius[present] *= _ramp(rng, int(present.sum()), (0.6, 0.65), (1.2, 1.25), changing[2])

    # Objects sit in distinct cells of a 2x2 grid over the central square, so the short-side
    # resize and centre crop of the feature extractor keep them whole, and drift a little.
    # Jitter and drift are small enough that objects at their largest never touch.
    cells = rng.choice(4, size=count, replace=False)
    cell_centres = np.stack([(width - side) / 2 + (cells % 2 + 0.5) * side / 2,
                             (height - side) / 2 + (cells // 2 + 0.5) * side / 2], axis=1)
    start = cell_centres + rng.uniform(-0.025, 0.025, (count, 2)) * side
    drift = rng.uniform(-0.02, 0.02, (count, 2)) * side
    centres = start[None] + np.linspace(0, 1, num_frames)[:, None, None] * drift[None]

    grey = rng.uniform(95, 135)
    if textured:
        cell = int(rng.integers(6, 11))
        ys, xs = np.mgrid[:height, :width] + rng.integers(0, cell, 2)[:, None, None]
        contrast = rng.uniform(25, 35)
        background = np.where((ys // cell + xs // cell) % 2 == 0, grey - contrast, grey + contrast)
    else:
        background = np.full((height, width), grey)
    background = np.repeat(background[..., None], 3, axis=2).round().astype(np.uint8)
    colour = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in COLOURS[colour_name])
    return VideoPlan(labels=sorted(labels, key=LABELS.index), colour=colour, shape=shape,
                     background=background, centres=centres, radius=radius, present=present,
                     brightness=brightness, noise_seeds=rng.integers(0, 2**31, num_frames))


def _draw_object(image, shape, centre, radius, colour):
    shift = 4  # cv2 sub-pixel coordinates, so sizes change smoothly rather than by whole pixels
    scale = 1 << shift
    x, y = centre
    if shape == "circle":
        cv2.circle(image, (round(x * scale), round(y * scale)), round(radius * scale), colour, -1, cv2.LINE_AA, shift)
        return
    if shape == "square":
        corners = [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)]
    else:  # triangle, apex up, all corners on the circle of this radius
        corners = [(0.0, -1.0), (0.87, 0.5), (-0.87, 0.5)]
    points = np.array([[round((x + dx * radius) * scale), round((y + dy * radius) * scale)] for dx, dy in corners])
    cv2.fillPoly(image, [points.astype(np.int32)], colour, cv2.LINE_AA, shift)


def render(plan):
    """The video's frames as a (frames, h, w, 3) uint8 RGB array."""
    frames = np.empty((len(plan.brightness), *plan.background.shape), np.uint8)
    for t in range(len(frames)):
        image = plan.background.copy()
        if plan.present[t]:
            for centre in plan.centres[t]:
                _draw_object(image, plan.shape, centre, plan.radius[t], plan.colour)
        noise = np.random.default_rng(plan.noise_seeds[t]).standard_normal(image.shape, np.float32)
        frames[t] = np.clip(image * np.float32(plan.brightness[t]) + NOISE_SIGMA * noise, 0, 255).round()
    return frames


def write_mp4(path, frames, fps):
    """Encode RGB frames as an mp4 (MPEG-4 part 2, which every OpenCV build can write)."""
    height, width = frames.shape[1:3]
    with atomic_path(path) as tmp:  # the temporary name keeps .mp4, which picks the container
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write mp4 files here: {path}")
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
        writer.release()


def make_library(save_dir, num_videos=240, seed=0, size=(112, 84), fps=10, seconds=3.0):
    """Write videos/<split>/*.mp4, labels.txt and {train,val,test}.list under save_dir.

    Returns the paths written and the label names. Video i depends only on (seed, i), and the
    lists are written last, so a list that exists always names finished videos.
    """
    width, height = size
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise InputError(f"frame size must be even and at least 32x32, got {width}x{height}")
    num_frames = int(round(fps * seconds))
    if num_videos < 1 or num_frames < 4:
        raise InputError(f"need at least 1 video of at least 4 frames, got {num_videos} of {num_frames}")

    order = np.random.default_rng(seed).permutation(num_videos)
    bounds = np.round(np.cumsum(list(SPLITS.values())) * num_videos).astype(int)
    split_of = {int(i): split for split, part in zip(SPLITS, np.split(order, bounds[:-1])) for i in part}

    lines = {split: [] for split in SPLITS}
    videos = {split: [] for split in SPLITS}
    for index in tqdm(range(num_videos), desc="synthetic videos", disable=num_videos < 50):
        plan = plan_video(np.random.default_rng([seed, index]), size, num_frames)
        split = split_of[index]
        relative = f"videos/{split}/video_{index:05d}.mp4"
        write_mp4(os.path.join(save_dir, relative), render(plan), fps)
        videos[split].append(os.path.join(save_dir, relative))
        lines[split].append((relative, [LABELS.index(name) for name in plan.labels]))

    labels_file = os.path.join(save_dir, "labels.txt")
    with atomic_open(labels_file) as f:
        f.write("\n".join(LABELS) + "\n")
    lists = {}
    for split, entries in lines.items():
        lists[split] = os.path.join(save_dir, f"{split}.list")
        write_list(lists[split], entries)
    return {"save_dir": save_dir, "label_names": list(LABELS), "labels_file": labels_file, "lists": lists,
            "videos": videos, "num_frames": num_frames, "size": (width, height), "fps": fps}


@exit_on_input_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--save_dir", default="data/demo")
    parser.add_argument("--num_videos", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=112)
    parser.add_argument("--height", type=int, default=84)
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    library = make_library(args.save_dir, args.num_videos, args.seed, (args.width, args.height), args.fps, args.seconds)
    counts = ", ".join(f"{len(paths)} {split}" for split, paths in library["videos"].items())
    print(f"wrote {counts} videos of {library['num_frames']} frames and {len(LABELS)} labels to {args.save_dir}")


if __name__ == "__main__":
    main()

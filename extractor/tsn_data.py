"""Labelled video lists for fine-tuning a stage-one backbone (TSN, PP-TSN, PP-TSM, PP-TSMv2): `path.mp4 label`
per line, decoded into batches of frames.

Training takes a random frame from each of `seg_num` equal segments (or, TRAIN.sampling dense,
PaddleVideo's dense clip: seg_num frames 64 // seg_num apart from a random start), resizes (VideoTag's
4:3 size, PaddleVideo's, or the short side: sampling.RESIZE_MODES), optionally takes PaddleVideo's
multi-scale crop (TRAIN.multiscale_crop), then one random crop and (half the time) a horizontal flip
shared by the video's frames; validation and test take the segment middles (the extractor's rule) and
a centre crop.
Every random choice comes from (seed, epoch, video index): a resumed run and N processes see
exactly what one uninterrupted process sees.

Mixup (TRAIN.mixup_alpha, PaddleVideo's form): each training batch is blended with a permutation of
itself, images = lam * images + (1 - lam) * images[perm], lam ~ Beta(alpha, alpha) once per batch;
the loss is lam * loss(labels) + (1 - lam) * loss(labels[perm]). Each process mixes within its own
share of the global batch (as PaddleVideo mixes within each GPU's batch), with the lam of that
global batch: with mixup on, N processes do not see exactly the batches of one.
"""
import functools
import os
from dataclasses import dataclass

import cv2
import decord
import numpy as np
from PIL import Image

from core.errors import InputError
from core.lists import batch_count, list_entries, list_shares, read_ahead, resolve

from .sampling import check_resize_mode, crop_frames, normalize, resize, segment_middles
from .video import first_line, read_frames


@dataclass
class LabelledVideo:
    name: str  # the path as listed
    path: str  # resolved file path
    label: int
    line: int  # line number in the list, for errors


@dataclass
class Batch:
    indices: np.ndarray  # positions in the list: evaluation gathers and reorders by them
    names: list
    images: np.ndarray  # float32 [B, seg_num, 3, S, S], normalised
    labels: np.ndarray  # int64 [B]
    mixed_labels: np.ndarray = None  # int64 [B]: the partners' labels under mixup, else None
    lam: float = 1.0  # mixup's weight of `labels` (1: no mixup)


def read_video_list(list_path, num_classes):
    """Parse `path label` lines (tab-separated when a line has a tab: paths with spaces); relative
    paths resolve against the list's folder. Errors name the list file and line."""
    videos = []
    for line_no, fields, folder in list_entries(list_path, "video list"):
        if len(fields) != 2 or not fields[1].isdigit():
            raise InputError("malformed line: expected 'path/to/video.mp4 label' with one non-negative "
                             "integer label", list_path, line_no)
        name, label = fields[0], int(fields[1])
        if label >= num_classes:
            raise InputError(f"label {label} is out of range: MODEL.num_classes is {num_classes}",
                             list_path, line_no)
        path = resolve(name, folder)
        if not os.path.isfile(path):
            raise InputError(f"video file not found: {name} (neither beside the list nor in the working "
                             "directory)", list_path, line_no)
        videos.append(LabelledVideo(name, path, label, line_no))
    if not videos:
        raise InputError("the list is empty: no videos to read", list_path)
    return videos


def random_segment_frames(num_frames, seg_num, rng):
    """One random frame from each of seg_num equal segments (TSN training); frames repeat
    (i mod n) when the video is shorter than seg_num."""
    step = num_frames // seg_num
    if step == 0:
        return [i % num_frames for i in range(seg_num)]
    return [i * step + int(rng.integers(step)) for i in range(seg_num)]


MULTISCALE_SCALES = (1, .875, .75, .66)  # of the short side: PaddleVideo's MultiScaleCrop


def multiscale_box(width, height, size, rng):
    """PaddleVideo's MultiScaleCrop (max_distort 1, fixed crops, more_fix_crop): a crop of side
    lengths from MULTISCALE_SCALES (a side within 2 px of `size` snaps to it; width and height at most
    one scale step apart) at one of 13 fixed positions. Returns (left, top, right, bottom)."""
    sides = [int(min(width, height) * scale) for scale in MULTISCALE_SCALES]
    sides = [size if abs(side - size) < 3 else side for side in sides]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]
    crop_w, crop_h = pairs[rng.integers(len(pairs))]
    w_step, h_step = (width - crop_w) / 4, (height - crop_h) / 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    x, y = grid[rng.integers(len(grid))]
    left, top = x * w_step, y * h_step
    # PIL's crop rounds its float box (half to even), as PaddleVideo's crop did
    return round(left), round(top), round(left + crop_w), round(top + crop_h)


def multiscale_crop(frames, size, rng, mode):
    """One multi-scale crop of all of a video's frames, each resized to size x size (PIL bilinear
    after PIL's resize modes, cv2 after keep_aspect, as PaddleVideo's pipelines pair them)."""
    left, top, right, bottom = multiscale_box(frames[0].shape[1], frames[0].shape[0], size, rng)
    crops = [frame[top:bottom, left:right] for frame in frames]
    if mode == "keep_aspect":
        return [cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR) for crop in crops]
    return [np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR)) for crop in crops]


DENSE_WINDOW = 64  # frames a dense clip spans (PaddleVideo's dense Sampler)
TRAIN_SAMPLING = ("uniform", "dense")


def dense_clip_frames(num_frames, seg_num, rng):
    """PaddleVideo's dense sampling (PP-TSM's dense configs): seg_num frames DENSE_WINDOW // seg_num apart
    from a random start among the first num_frames - DENSE_WINDOW, wrapping round a shorter video."""
    stride = DENSE_WINDOW // seg_num
    last_start = num_frames - DENSE_WINDOW  # PaddleVideo draws randint(0, 1 + n - 64 - 1): 0 .. n - 65
    start = int(rng.integers(last_start)) if last_start > 0 else 0
    return [(i * stride + start) % num_frames for i in range(seg_num)]


def random_crop_flip(frames, short_size, target_size, rng, mode="videotag", multiscale=0):
    """One random target_size crop position and flip for all of a video's frames (TSN's group crop),
    after the resize of `mode` (see sampling.RESIZE_MODES) and, when `multiscale`, PaddleVideo's
    multi-scale crop to that size, as VideoTag's and PaddleVideo's training readers."""
    resized = [resize(frame, short_size, mode) for frame in frames]
    if multiscale:
        resized = multiscale_crop(resized, multiscale, rng, mode)
    height, width = resized[0].shape[:2]
    top, left = int(rng.integers(height - target_size + 1)), int(rng.integers(width - target_size + 1))
    crops = np.stack([frame[top:top + target_size, left:left + target_size] for frame in resized])
    return crops[:, :, ::-1] if rng.random() < 0.5 else crops


class VideoListSource:
    """Batches of one labelled video list, split among processes (see core.lists.rank_shares)."""

    def __init__(self, list_path, section, num_classes, training, num_workers=4, mixup_alpha=0.0):
        self.videos = read_video_list(list_path, num_classes)
        self.list_path = list_path
        self.seg_num, self.short_size = section["seg_num"], section["short_size"]
        self.target_size, self.batch_size = section["target_size"], section["batch_size"]
        self.training = training
        self.num_workers = max(1, num_workers)
        self.resize = section.get("resize", "videotag")
        check_resize_mode(self.resize, list_path)
        self.multiscale = section.get("multiscale_crop", 0) if training else 0
        self.sampling = section.get("sampling", "uniform") if training else "uniform"
        if self.sampling not in TRAIN_SAMPLING:
            raise InputError(f"TRAIN.sampling '{self.sampling}' is not one of {', '.join(TRAIN_SAMPLING)}")
        self.mixup_alpha = mixup_alpha if training else 0.0
        crop_from = f"multiscale_crop {self.multiscale}" if self.multiscale else f"short_size {self.short_size}"
        if self.target_size > (self.multiscale or self.short_size):
            raise InputError(f"target_size {self.target_size} is larger than {crop_from}")

    def __len__(self):
        return len(self.videos)

    def num_batches(self, drop_last):
        return batch_count(len(self.videos), self.batch_size, drop_last)

    def check(self, index):
        """Raise InputError (naming the list and line) when the video cannot be opened or has no frames."""
        video = self.videos[index]
        try:
            if len(decord.VideoReader(video.path, ctx=decord.cpu(0), num_threads=1)) == 0:
                raise ValueError("video has no frames")
        except Exception as err:  # decord raises its own errors on unreadable files
            raise InputError(f"cannot decode {video.path}: {first_line(err)}", self.list_path, video.line) from None

    def load(self, index, epoch=0, seed=0):
        """uint8 RGB crops [seg_num, S, S, 3] of video `index` (kept uint8 while waiting in the queue)."""
        video = self.videos[index]
        rng = np.random.default_rng([seed, epoch, index])
        try:
            reader = decord.VideoReader(video.path, ctx=decord.cpu(0), num_threads=1)
            num_frames = len(reader)
            if num_frames == 0:
                raise ValueError("video has no frames")
            if not self.training:
                indices = segment_middles(num_frames, self.seg_num)
            elif self.sampling == "dense":
                indices = dense_clip_frames(num_frames, self.seg_num, rng)
            else:
                indices = random_segment_frames(num_frames, self.seg_num, rng)
            distinct = sorted(set(indices))  # decode each frame once, seeking only forward
            frames = dict(zip(distinct, read_frames(reader, distinct, video.path)))
        except Exception as err:  # decord raises its own errors on unreadable files
            raise InputError(f"cannot decode {video.path}: {first_line(err)}", self.list_path, video.line) from None
        frames = np.stack([frames[i] for i in indices])
        if self.training:
            return random_crop_flip(frames, self.short_size, self.target_size, rng, self.resize, self.multiscale)
        return crop_frames(frames, self.short_size, self.target_size, self.resize)

    def batches(self, rank=0, world=1, shuffle=False, drop_last=False, epoch=0, seed=0):
        """Yield this process's Batch of each global batch; videos are decoded ahead in threads."""
        shares = list_shares(len(self.videos), self.batch_size, rank, world, shuffle, drop_last, epoch, seed,
                             self.list_path)
        load = functools.partial(self.load, epoch=epoch, seed=seed)
        for number, (share, crops) in enumerate(read_ahead(shares, load, self.num_workers)):
            images = np.stack([normalize(c) for c in crops])
            labels = np.array([self.videos[i].label for i in share], np.int64)
            batch = Batch(np.array(share), [self.videos[i].name for i in share], images, labels)
            if self.mixup_alpha:
                mix(batch, self.mixup_alpha, np.random.default_rng([seed, epoch, number, MIXUP_STREAM]))
            yield batch


MIXUP_STREAM = 7  # keeps mixup's draws apart from the crops' (seed, epoch, video index) streams


def mix(batch, alpha, rng):
    """Mixup in place (PaddleVideo's Mixup): the batch blended with a permutation of itself."""
    lam = float(rng.beta(alpha, alpha))
    partner = rng.permutation(len(batch.labels))
    batch.images = lam * batch.images + (1 - lam) * batch.images[partner]
    batch.mixed_labels, batch.lam = batch.labels[partner], lam

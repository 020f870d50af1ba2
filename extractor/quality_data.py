"""Quality lists for the end-to-end quality model: scored videos decoded into batches of frames, as
PaddleVideo's video quality model reads them (applications/VideoQualityAssessment).

A list line is `path.mp4 score`, or PaddleVideo's `video.mp4 frames_dir frame_count score` read as it
is (the video when it exists, else its frames frames_dir/00000001.jpg ..., 1-based; core.lists).
Sampling is TSN's: `seg_num` (8) equal segments, a random frame of each in training, the middle one
otherwise. Frames are never rescaled to a short side first (the reference crops the decoded frame):
  input: crop   a target_size square: at a random place in training, the centre otherwise (the
                reference's published 224 figure); a frame smaller than the crop is scaled up to it.
  input: whole  the whole frame (the reference's best figure), at frame_size [width, height] when
                set (672x448: 3x2 crops' worth of 224, for 16:9 and 4:3 videos), else as decoded.
Training flips all of a video's frames horizontally half the time. Every random choice comes from
(seed, epoch, video index), so a resumed run or N processes see what one uninterrupted process sees.
"""
import functools
import math
import os
from dataclasses import dataclass

import decord
import numpy as np
from PIL import Image

from core.errors import InputError
from core.lists import ScoredEntry, batch_count, list_shares, read_ahead, scored_entries

from .sampling import center_crop, normalize, resize_short_side, segment_middles
from .tsn_data import random_segment_frames
from .video import first_line, read_frames

INPUTS = ("crop", "whole")
FRAME_NAME = "{:08}.jpg"  # PaddleVideo's frame files in a four-column list's frames_dir (its `suffix`)


@dataclass
class Batch:
    indices: np.ndarray  # positions in the list: evaluation gathers and reorders by them
    names: list
    images: np.ndarray  # float32 [B, seg_num, 3, H, W], normalised
    scores: np.ndarray  # float32 [B, 1]


def read_quality_list(list_path, need_scores=True):
    """The list's entries, each with a video file or (four columns) a frames folder that exists."""
    entries = scored_entries(list_path, "quality list", need_scores)
    for entry in entries:
        if os.path.isfile(entry.path):
            entry.frames_dir = ""  # the video itself is read
        elif not (entry.frames_dir and os.path.isdir(entry.frames_dir)):
            also = f" nor its frames folder {entry.frames_dir}" if entry.frames_dir else ""
            raise InputError(f"video file not found: {entry.name}{also} (neither beside the list nor in the working "
                             "directory)", list_path, entry.line)
    return entries


def unscored(paths):
    """ScoredEntry items of video files to score (no list behind them)."""
    return [ScoredEntry(path, path, math.nan, 0) for path in paths]


def video_frames(path, section):
    """The network's uint8 frames of one video file, sampled and cut as `section` (VALID, TEST, INFER) says."""
    return QualityListSource(path, section, training=False, num_workers=1, videos=unscored([path])).load(0)


def check_input(section, where, name=""):
    """InputError unless the section's input settings are usable (`name`: the section's, for the message)."""
    prefix = f"{name}." if name else ""
    mode = section.get("input", "crop")
    if mode not in INPUTS:
        raise InputError(f"{prefix}input '{mode}' is not one of {', '.join(INPUTS)}", where)
    size = section.get("frame_size") or []
    if size and (len(size) != 2 or min(size) < 32):
        raise InputError(f"{prefix}frame_size {size} must be [width, height], each at least 32 pixels", where)


def frame_size(section):
    return tuple(int(x) for x in section.get("frame_size") or ()) or None


def transform(frames, section, training, rng):
    """uint8 RGB [T, H, W, 3] -> the network's uint8 frames under the section's input settings."""
    size = frame_size(section)
    if size:
        frames = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
    if section.get("input", "crop") == "crop":
        target = int(section["target_size"])
        if min(frames.shape[1:3]) < target:
            frames = np.stack([resize_short_side(f, target) for f in frames])
        height, width = frames.shape[1:3]
        if training:
            top, left = int(rng.integers(height - target + 1)), int(rng.integers(width - target + 1))
            frames = frames[:, top:top + target, left:left + target]
        else:
            frames = np.stack([center_crop(f, target) for f in frames])
    if training and rng.random() < 0.5:
        frames = frames[:, :, ::-1]
    return np.ascontiguousarray(frames)


class QualityListSource:
    """Batches of one quality list, split among processes (see core.lists.rank_shares)."""

    def __init__(self, list_path, section, training, num_workers=4, need_scores=True, videos=None):
        """need_scores: False for videos to score (a line may be a path alone); `videos`: ScoredEntry
        items to read instead of the list's (a folder to score)."""
        check_input(section, list_path)
        self.videos = videos if videos is not None else read_quality_list(list_path, need_scores)
        self.list_path, self.section, self.training = list_path, section, training
        self.seg_num, self.batch_size = int(section["seg_num"]), int(section["batch_size"])
        self.num_workers = max(1, num_workers)

    def __len__(self):
        return len(self.videos)

    def num_batches(self, drop_last):
        return batch_count(len(self.videos), self.batch_size, drop_last)

    def _fail(self, video, err):
        where = video.frames_dir or video.path
        return InputError(f"cannot decode {where}: {first_line(err)}", self.list_path, video.line)

    def check(self, index):
        """Raise InputError (naming the list and line) when the video cannot be read."""
        video = self.videos[index]
        try:
            if video.frames_dir:
                for number in (1, video.frame_count):  # the first and the last listed frame
                    path = os.path.join(video.frames_dir, FRAME_NAME.format(number))
                    if not os.path.isfile(path):
                        raise ValueError(f"frame {FRAME_NAME.format(number)} missing")
            elif len(decord.VideoReader(video.path, ctx=decord.cpu(0), num_threads=1)) == 0:
                raise ValueError("video has no frames")
        except Exception as err:  # decord raises its own errors on unreadable files
            raise self._fail(video, err) from None

    def decode(self, video, rng):
        """uint8 RGB [seg_num, H, W, 3]: the sampled frames of the video (or of its frames folder)."""
        reader = None if video.frames_dir else decord.VideoReader(video.path, ctx=decord.cpu(0), num_threads=1)
        num_frames = video.frame_count if video.frames_dir else len(reader)
        if num_frames == 0:
            raise ValueError("video has no frames")
        indices = (random_segment_frames(num_frames, self.seg_num, rng) if self.training
                   else segment_middles(num_frames, self.seg_num))
        distinct = sorted(set(indices))  # each frame decoded once, seeking only forward
        if video.frames_dir:
            decoded = [np.asarray(Image.open(os.path.join(video.frames_dir, FRAME_NAME.format(i + 1))).convert("RGB"))
                       for i in distinct]
        else:
            decoded = read_frames(reader, distinct, video.path)
        frames = dict(zip(distinct, decoded))
        return np.stack([frames[i] for i in indices])

    def load(self, index, epoch=0, seed=0):
        """The network's uint8 frames of video `index` (kept uint8 while waiting in the queue)."""
        video = self.videos[index]
        rng = np.random.default_rng([seed, epoch, index])
        try:
            frames = self.decode(video, rng)
        except Exception as err:  # decord and PIL raise their own errors on unreadable files
            raise self._fail(video, err) from None
        return transform(frames, self.section, self.training, rng)

    def batches(self, rank=0, world=1, shuffle=False, drop_last=False, epoch=0, seed=0):
        """Yield this process's Batch of each global batch; videos are decoded ahead in threads."""
        shares = list_shares(len(self.videos), self.batch_size, rank, world, shuffle, drop_last, epoch, seed,
                             self.list_path)
        load = functools.partial(self.load, epoch=epoch, seed=seed)
        for share, frames in read_ahead(shares, load, self.num_workers):
            self._check_one_size(share, frames)
            images = np.stack([normalize(f) for f in frames])
            scores = np.array([[self.videos[i].score] for i in share], np.float32)
            yield Batch(np.array(share), [self.videos[i].name for i in share], images, scores)

    def _check_one_size(self, share, frames):
        """Whole frames as decoded stack only when a batch's videos share one size."""
        sizes = [f.shape[1:3] for f in frames]
        for i, size in zip(share, sizes):
            if size != sizes[0]:
                first, other = self.videos[share[0]], self.videos[i]
                raise InputError(f"whole-frame input: {other.name} is {size[1]}x{size[0]} but {first.name} (line "
                                 f"{first.line}) is {sizes[0][1]}x{sizes[0][0]}; set frame_size: [672, 448] to scale "
                                 "every frame to one size, or batch_size: 1", self.list_path, other.line)

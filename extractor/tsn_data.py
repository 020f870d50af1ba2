"""Labelled video lists for TSN fine-tuning: `path.mp4 label` per line, decoded into batches of frames.

Training takes a random frame from each of `seg_num` equal segments, resizes (VideoTag's 4:3 size or
the short side, see sampling.RESIZE_MODES),
then one random crop and (half the time) a horizontal flip shared by the video's frames;
validation and test take the segment middles (the extractor's rule) and a centre crop.
Every random choice comes from (seed, epoch, video index): a resumed run and N processes see
exactly what one uninterrupted process sees.
"""
import functools
import os
from dataclasses import dataclass

import decord
import numpy as np

from core.errors import InputError
from core.lists import batch_count, list_entries, list_shares, read_ahead, resolve

from .sampling import check_resize_mode, crop_frames, normalize, resize, segment_middles
from .video import first_line


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


def random_crop_flip(frames, short_size, target_size, rng, mode="videotag"):
    """One random target_size crop position and flip for all of a video's frames (TSN's group crop),
    after the resize of `mode` (see sampling.RESIZE_MODES), as VideoTag's training reader."""
    resized = [resize(frame, short_size, mode) for frame in frames]
    height, width = resized[0].shape[:2]
    top, left = int(rng.integers(height - target_size + 1)), int(rng.integers(width - target_size + 1))
    crops = np.stack([frame[top:top + target_size, left:left + target_size] for frame in resized])
    return crops[:, :, ::-1] if rng.random() < 0.5 else crops


class VideoListSource:
    """Batches of one labelled video list, split among processes (see core.lists.rank_shares)."""

    def __init__(self, list_path, section, num_classes, training, num_workers=4):
        self.videos = read_video_list(list_path, num_classes)
        self.list_path = list_path
        self.seg_num, self.short_size = section["seg_num"], section["short_size"]
        self.target_size, self.batch_size = section["target_size"], section["batch_size"]
        self.training = training
        self.num_workers = max(1, num_workers)
        self.resize = section.get("resize", "videotag")
        check_resize_mode(self.resize, list_path)
        if self.target_size > self.short_size:
            raise InputError(f"target_size {self.target_size} is larger than short_size {self.short_size}")

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
            indices = (random_segment_frames(num_frames, self.seg_num, rng) if self.training
                       else segment_middles(num_frames, self.seg_num))
            distinct = sorted(set(indices))  # decode each frame once, seeking only forward
            frames = dict(zip(distinct, reader.get_batch(distinct).asnumpy()))
        except Exception as err:  # decord raises its own errors on unreadable files
            raise InputError(f"cannot decode {video.path}: {first_line(err)}", self.list_path, video.line) from None
        frames = np.stack([frames[i] for i in indices])
        if self.training:
            return random_crop_flip(frames, self.short_size, self.target_size, rng, self.resize)
        return crop_frames(frames, self.short_size, self.target_size, self.resize)

    def batches(self, rank=0, world=1, shuffle=False, drop_last=False, epoch=0, seed=0):
        """Yield this process's Batch of each global batch; videos are decoded ahead in threads."""
        shares = list_shares(len(self.videos), self.batch_size, rank, world, shuffle, drop_last, epoch, seed,
                             self.list_path)
        load = functools.partial(self.load, epoch=epoch, seed=seed)
        for share, crops in read_ahead(shares, load, self.num_workers):
            images = np.stack([normalize(c) for c in crops])
            labels = np.array([self.videos[i].label for i in share], np.int64)
            yield Batch(np.array(share), [self.videos[i].name for i in share], images, labels)

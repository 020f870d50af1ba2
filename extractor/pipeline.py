"""From a list of videos to features: decode ahead in threads, batch frames across videos.

`iter_video_features` streams VideoFeatures in input order without writing anything; the
command line (cli.py) writes them. Decoding threads (decord and OpenCV release the GIL) stay
up to `num_workers + 1` videos ahead of the network, each holding only its uint8 crops.
"""
import collections
import concurrent.futures
import dataclasses
import os

import numpy as np

from .predictor import create_backbone
from .resnet import FEATURE_DIM
from .sampling import normalize
from .video import VideoError, read_sampled_crops
from .videos import Video

@dataclasses.dataclass
class VideoFeatures:
    """One video's result: features float32 [seg_num, 2048] and info, or the error that stopped it."""
    video: Video
    features: np.ndarray = None
    info: dict = None
    error: str = None  # the reason, in a user's words
    detail: str = ""  # the decoder's words behind it (for failures.txt)

    @property
    def ok(self):
        return self.error is None


@dataclasses.dataclass
class InferSettings:
    seg_num: int = 300
    short_size: int = 256
    target_size: int = 224
    batch_size: int = 32
    num_workers: int = 2
    accept_partial: bool = False  # use what a cut file holds instead of failing it
    resize: str = "videotag"  # see sampling.RESIZE_MODES
    precision: str = "fp32"  # see predictor.PRECISIONS
    sampling: str = "uniform"  # see sampling.SAMPLING_MODES

    @classmethod
    def from_config(cls, cfg):
        values = {field.name: field.type(cfg.INFER.get(field.name, field.default))
                  for field in dataclasses.fields(cls)}
        return cls(**values)


def as_video(item):
    if isinstance(item, Video):
        return item
    path = os.fspath(item)
    return Video(path, os.path.splitext(path)[0])


class _Pending:
    """A decoded video whose frames are (partly) waiting for the network."""

    def __init__(self, video, crops=None, info=None, error=None, detail=""):
        self.video, self.crops, self.info, self.error, self.detail = video, crops, info, error, detail
        self.features = None if crops is None else np.empty((len(crops), FEATURE_DIM), "float32")
        self.sent = self.received = 0

    @property
    def finished(self):
        return self.error is not None or self.received == len(self.features)

    def result(self):
        return VideoFeatures(self.video, self.features, self.info, self.error, self.detail)


def _decode(video, settings):
    try:
        crops, info = read_sampled_crops(video.path, settings.seg_num, settings.short_size,
                                         settings.target_size, settings.resize, settings.accept_partial,
                                         settings.sampling)
        return _Pending(video, crops, info)
    except VideoError as err:
        return _Pending(video, error=err.reason, detail=err.detail)
    except Exception as err:  # a decoder crash on one file must not stop the others
        return _Pending(video, error="cannot decode this file", detail=f"{type(err).__name__}: {err}")


def _decode_ahead(videos, settings):
    """Decoded videos in input order, with up to num_workers + 1 decoding ahead."""
    workers = max(1, settings.num_workers)
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        ahead = collections.deque()
        for video in videos:
            ahead.append(pool.submit(_decode, video, settings))
            if len(ahead) > workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def backbone_from_config(cfg, weights=None, backend="inference", cache_dir=None):
    """The backbone callable for a loaded tsn.yaml config (see predictor.create_backbone)."""
    return create_backbone(int(cfg.MODEL.num_layers), weights, int(cfg.INFER.target_size), backend,
                           cache_dir, int(cfg.INFER.batch_size), bool(cfg.INFER.get("use_tensorrt", False)),
                           precision=str(cfg.INFER.get("precision", "fp32")))


def iter_video_features(videos, settings, backbone=None, weights=None):
    """Yield a VideoFeatures for every item of `videos` (paths or Video), in input order.

    `settings`: a loaded config (its INFER section is used) or an InferSettings. `backbone`:
    a callable from predictor.create_backbone; built from the config and `weights` when omitted.
    Frames of consecutive videos share network batches of settings.batch_size."""
    if not isinstance(settings, InferSettings):
        if backbone is None:
            backbone = backbone_from_config(settings, weights)
        settings = InferSettings.from_config(settings)
    waiting = collections.deque()  # every video not yet yielded, in input order
    unsent = collections.deque()  # videos with frames not yet sent to the network
    queued = 0

    def run_batch(size):
        nonlocal queued
        parts, need = [], size
        while need:
            pending = unsent[0]
            take = min(need, len(pending.crops) - pending.sent)
            parts.append((pending, pending.sent, take))
            pending.sent += take
            need -= take
            if pending.sent == len(pending.crops):
                unsent.popleft()
        features = backbone(normalize(np.concatenate([p.crops[s:s + n] for p, s, n in parts])))
        offset = 0
        for pending, start, count in parts:
            pending.features[start:start + count] = features[offset:offset + count]
            pending.received += count
            offset += count
            if pending.finished:
                pending.crops = None  # free the frames as soon as the video is done
        queued -= size

    def finished_in_order():
        while waiting and waiting[0].finished:
            yield waiting.popleft().result()

    for pending in _decode_ahead([as_video(v) for v in videos], settings):
        waiting.append(pending)
        if pending.error is None:
            unsent.append(pending)
            queued += len(pending.crops)
        while queued >= settings.batch_size:
            run_batch(settings.batch_size)
        yield from finished_in_order()
    if queued:
        run_batch(queued)
    yield from finished_in_order()

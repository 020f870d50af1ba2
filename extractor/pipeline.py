"""From a list of videos to features: decode ahead in processes, batch frames across videos.

`iter_video_features` streams VideoFeatures in input order without writing anything; the
command line (cli.py) writes them. `num_workers` decoding processes stay up to `num_workers + 1`
videos ahead of the network, each video holding only its uint8 crops. Processes, not threads:
paddle.inference holds the GIL for the whole of a network call, so a decoding thread stops at its
first line of Python until the call returns (measured: a Python thread ran at 0.6% of its speed
during one); a process decodes on whatever cores the network leaves free, or all of them beside a GPU.

A temporal-shift backbone (its `clip_frames` > 0) sees a video's frames in clips of that many:
strided windows, each spanning the whole video (clip_order); network batches are whole clips.
"""
import collections
import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
import signal
import threading

import numpy as np

from core.log import log, setup as setup_log

from .predictor import create_backbone
from .sampling import normalize
from .video import VideoError, read_sampled_crops
from .videos import Video

@dataclasses.dataclass
class VideoFeatures:
    """One video's result: features float32 [seg_num, feature_dim] and info, or the error that stopped it."""
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


def clip_order(count, clip):
    """How a shift backbone sees a video's `count` sampled frames in clips of `clip`: (the sampled
    frame at each network position, the feature row it fills or -1). W = ceil(count / clip)
    windows; window j is frames j, j+W, j+2W, ...: every clip spans the whole video with the
    spacing of training (num_seg segments over the video). When count is not a multiple of clip,
    the last window(s) repeat the last frame at their end and that output is dropped."""
    windows = -(-count // clip)
    position = np.arange(windows * clip)
    frame = position // clip + (position % clip) * windows
    return np.minimum(frame, count - 1), np.where(frame < count, frame, -1)


@functools.lru_cache(maxsize=None)  # one log line per batch size and clip
def clip_batch_size(batch_size, clip):
    """Frames per network call: whole clips of a shift backbone (the nearest multiple of clip)."""
    if not clip:
        return batch_size
    rounded = max(clip, round(batch_size / clip) * clip)
    if rounded != batch_size:
        log.info("INFER.batch_size %d is not a whole number of %d-frame clips: running %d frames per batch",
                 batch_size, clip, rounded)
    return rounded


class _Pending:
    """A decoded video whose frames are (partly) waiting for the network: `crops` in network
    order, `rows` the feature row of each (-1: clip padding, dropped)."""

    def __init__(self, video, crops=None, info=None, error=None, detail="", clip=0):
        self.video, self.info, self.error, self.detail = video, info, error, detail
        self.crops, self.rows, self.features = crops, None, None
        if crops is not None and clip:
            order, self.rows = clip_order(len(crops), clip)
            self.crops = crops[order]
        self.count = 0 if crops is None else len(crops)  # sampled frames: feature rows
        self.positions = 0 if crops is None else len(self.crops)  # network inputs (with clip padding)
        self.sent = self.received = 0

    @property
    def finished(self):
        return self.error is not None or self.received == self.positions

    def receive(self, start, features):
        """Outputs of network positions start.. into their feature rows (allocated on the first:
        the backbone's output tells the feature size)."""
        if self.features is None:
            self.features = np.empty((self.count, features.shape[1]), "float32")
        if self.rows is None:
            self.features[start:start + len(features)] = features
        else:
            rows = self.rows[start:start + len(features)]
            self.features[rows[rows >= 0]] = features[rows >= 0]
        self.received += len(features)

    def result(self):
        return VideoFeatures(self.video, self.features, self.info, self.error, self.detail)


def _decode(video, settings, clip):
    try:
        crops, info = read_sampled_crops(video.path, settings.seg_num, settings.short_size,
                                         settings.target_size, settings.resize, settings.accept_partial,
                                         settings.sampling)
        return _Pending(video, crops, info, clip=clip)
    except VideoError as err:
        return _Pending(video, error=err.reason, detail=err.detail)
    except Exception as err:  # a decoder crash on one file must not stop the others
        return _Pending(video, error="cannot decode this file", detail=f"{type(err).__name__}: {err}")


_pools = {}  # num_workers -> (the decoding processes, their lifeline's held end), kept for the program
_processes_start = None  # True once a decoding process has returned a video; False: they cannot start here


def decoding_pool(workers):
    """`workers` decoding processes. forkserver (spawn where there is none): a fork of a process
    running oneDNN's and decord's threads is unsafe; the server imports this module once and each
    worker is forked from it, so a worker starts without importing paddle again."""
    if workers not in _pools:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload([__name__])
        lifeline, held = context.Pipe(duplex=False)  # held here only: it closes when this process ends
        pool = concurrent.futures.ProcessPoolExecutor(workers, context, initializer=_start_worker,
                                                      initargs=(lifeline,))
        _pools[workers] = pool, held
    return _pools[workers][0]


def _start_worker(lifeline):
    """A decoding process logs as we do, leaves Ctrl-C to the main process (which stops the run and
    with it the workers) instead of printing a KeyboardInterrupt traceback, and ends with the main
    process however that ends: killed, it sends no shutdown, and a worker would wait forever, holding
    the main process's stdout open (a `| tail` would never finish)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_log()
    threading.Thread(target=_end_with_main, args=(lifeline,), daemon=True).start()


def _end_with_main(lifeline):
    try:
        lifeline.recv()  # nothing is ever sent: returns (EOFError) when the main process has ended
    except EOFError:
        pass
    os._exit(0)


def _submit(video, settings, clip):
    """The video's decoding, started in the pool (a new one if the last has broken); a pool that
    breaks again gives a future that holds the error, for _decoded."""
    try:
        return decoding_pool(settings.num_workers).submit(_decode, video, settings, clip)
    except concurrent.futures.process.BrokenProcessPool:
        _pools.pop(settings.num_workers, None)
    try:
        return decoding_pool(settings.num_workers).submit(_decode, video, settings, clip)
    except concurrent.futures.process.BrokenProcessPool as err:
        _pools.pop(settings.num_workers, None)
        broken = concurrent.futures.Future()
        broken.set_exception(err)
        return broken


def _decoded(future, video, in_process, settings, clip):
    """The future's _Pending. When a decoding process died (a decoder crash, the OOM killer), every
    video then in the pool fails with it: each is decoded again alone in new processes, and the one
    that brings those down too is the file at fault. When no decoding process ever returned a
    video, they cannot start here (a script that runs the extractor when imported, without
    `if __name__ == "__main__":`, as each process imports it again): decode in this process instead."""
    global _processes_start
    try:
        pending = future.result()
        if not in_process:
            _processes_start = True
        return pending
    except concurrent.futures.process.BrokenProcessPool:
        _pools.pop(settings.num_workers, None)
    if not _processes_start:
        if _processes_start is None:
            log.warning("the decoding processes could not start (a script without `if __name__ == \"__main__\":` "
                        "cannot start them): decoding in this process, one video at a time")
        _processes_start = False
        return _decode(video, settings, clip)
    try:
        return _submit(video, settings, clip).result()
    except concurrent.futures.process.BrokenProcessPool:
        _pools.pop(settings.num_workers, None)
        return _Pending(video, error="the decoder crashed on this file: damaged?")


def _decode_ahead(videos, settings, clip):
    """Decoded videos in input order, with up to num_workers + 1 decoding ahead (num_workers 0:
    one decoding thread in this process, for small runs: no processes to start)."""
    workers = settings.num_workers
    thread = concurrent.futures.ThreadPoolExecutor(1, "decode")  # starts a thread only when used
    ahead = collections.deque()
    try:
        for video in videos:
            in_process = workers == 0 or _processes_start is False
            future = thread.submit(_decode, video, settings, clip) if in_process else _submit(video, settings, clip)
            ahead.append((future, video, in_process))
            if len(ahead) > max(1, workers):
                yield _decoded(*ahead.popleft(), settings, clip)
        while ahead:
            yield _decoded(*ahead.popleft(), settings, clip)
    finally:
        for future, _, _ in ahead:  # a consumer that stops early: decode nothing more for it
            future.cancel()
        thread.shutdown(wait=False)


def backbone_from_config(cfg, weights=None, backend="inference", cache_dir=None):
    """The backbone callable for a loaded tsn.yaml config (see predictor.create_backbone)."""
    return create_backbone(cfg.MODEL, weights, int(cfg.INFER.target_size), backend,
                           cache_dir, int(cfg.INFER.batch_size), bool(cfg.INFER.get("use_tensorrt", False)),
                           precision=str(cfg.INFER.get("precision", "fp32")),
                           cpu_threads=int(cfg.INFER.get("cpu_threads", 0)))


def iter_video_features(videos, settings, backbone=None, weights=None):
    """Yield a VideoFeatures for every item of `videos` (paths or Video), in input order.

    `settings`: a loaded config (its INFER section is used) or an InferSettings. `backbone`:
    a callable from predictor.create_backbone; built from the config and `weights` when omitted.
    Frames of consecutive videos share network batches of settings.batch_size (whole clips of a
    shift backbone: its `clip_frames`; a callable without one runs frames independently)."""
    if not isinstance(settings, InferSettings):
        if backbone is None:
            backbone = backbone_from_config(settings, weights)
        settings = InferSettings.from_config(settings)
    clip = getattr(backbone, "clip_frames", 0)
    batch_size = clip_batch_size(settings.batch_size, clip)
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
            pending.receive(start, features[offset:offset + count])
            offset += count
            if pending.finished:
                pending.crops = None  # free the frames as soon as the video is done
        queued -= size

    def finished_in_order():
        while waiting and waiting[0].finished:
            yield waiting.popleft().result()

    for pending in _decode_ahead([as_video(v) for v in videos], settings, clip):
        waiting.append(pending)
        if pending.error is None:
            unsent.append(pending)
            queued += len(pending.crops)  # whole clips: the network's batches stay whole clips
        while queued >= batch_size:
            run_batch(batch_size)
        yield from finished_in_order()
    if queued:
        run_batch(queued)
    yield from finished_in_order()

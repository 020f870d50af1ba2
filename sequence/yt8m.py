"""YouTube-8M frame-level data, read straight from TFRecord shards (no TensorFlow; the format is
sequence/tfrecord.py) or from the Paddle reference's pickles.

Each record is a ``tf.train.SequenceExample``: context ``id`` and ``labels``, feature lists ``rgb``
(1024 bytes per frame) and ``audio`` (128 bytes per frame). Frames are dequantised
``x * 4/255 + 4/512 - 2`` in float32 (as the YouTube-8M starter code does), giving float32
``[T, D]`` arrays with ``T <= max_frames`` (the first frames are kept).

Errors.  A bad CRC, a truncated shard, a malformed message or a missing ``id`` / requested feature
list raises :class:`core.errors.InputError` naming the shard and ``record N`` (0-based index in
that shard).  With ``skip_corrupt=True`` the record is skipped instead (for a truncated shard or a
corrupt length field, the rest of the shard, since the next record cannot be found), a warning is
logged and ``stats`` (a ``collections.Counter`` you pass in) is updated:

* ``stats["records"]``: videos yielded; ``stats["shards"]``: shards opened;
* ``stats["skipped"]``: corrupt records (or shard tails) skipped;
* ``stats["truncated"]``: shards that ended in the middle of a record.

A record without ``labels`` yields ``[]`` (the test partition may carry none); that is not an error.

Several processes.  ``shards_for_rank(shards, rank, world)`` returns a :class:`ShardPlan`
``(shards, stride, offset)``; pass it as ``paths`` to :func:`iter_tfrecord_videos` (or pass its
fields as ``record_stride`` / ``record_offset``).  With at least as many shards as processes each
process gets its own shards ``shards[rank::world]`` (stride 1: it reads all their records); with
fewer shards every process reads all shards in the same order and keeps the records whose running
index ``i`` (over all records of all shards, corrupt ones included) has ``i % world == rank``.
The records of other processes are stepped over (their length field is checked, their data is
neither read nor decoded).  Either way the shares are disjoint and together complete; they need not
be equal in size, so a trainer must not assume every rank has the same number of batches.

Training.  :class:`RecordSource` is what the trainer, eval.py and predict.py read when a config's
``filelist`` names shards (:func:`names_records`; the rule is in sequence/data.py's docstring).
It does not use the split above: every process walks the same record sequence and decodes its
slice of each global batch, so all processes yield the same number of batches.
:func:`record_spans` indexes a shard from its record headers alone, once per process.

Shard selection.  ``expand_shards(spec, base_dir)`` takes a glob, a path, a list of those, or a
text file listing shards (a path ending in ``.list``, ``.txt`` or ``.lst``; one path or glob per
line, ``#`` comments; relative lines are taken relative to the list file's folder).  Relative specs
are taken relative to ``base_dir`` (the current directory when None).

Pickles (:func:`iter_pickle_videos`) hold a list of dicts ``{video, feature, audio, label, nframes}``
with uint8 ``feature [n, 1024]`` (rgb) and ``audio [n, 128]``, read by core/safeload.py: a pickle that
asks for more than arrays and containers is refused.
"""
import collections
import functools
import glob
import itertools
import os

import numpy as np

from core import safeload
from core.errors import InputError
from core.lists import list_entries, rank_shares, read_ahead

from .data import Batch, HeadSource, feature_problem, pad_batch, segments
from .tfrecord import (CorruptRecord, decode_sequence_example, iter_tfrecord_records, read_record, record_spans,
                       report_corrupt)


MAX_FRAMES = 300
FEATURE_DIMS = {"rgb": 1024, "audio": 128}
PICKLE_KEYS = {"rgb": "feature", "audio": "audio"}
LIST_SUFFIXES = (".list", ".txt", ".lst")
PICKLE_SUFFIX = ".pkl"
RECORD_SUFFIXES = (".tfrecord", PICKLE_SUFFIX)
SHUFFLE_BUFFER = 4096  # records, when the config has no TRAIN.shuffle_buffer

DEQUANT_SCALE = np.float32(4.0 / 255.0)
DEQUANT_BIAS = np.float32(4.0 / 512.0 - 2.0)


def dequantize(q):
    """float32 array of the uint8 array `q` dequantised: q * 4/255 + 4/512 - 2.

    Computed in float32 (a multiply, then an add, each rounded), as the YouTube-8M starter code
    does: within 3e-7 (absolute) of the float64 value, and 4x faster than a
    256-entry lookup table."""
    out = np.asarray(q, dtype=np.uint8).astype(np.float32)
    out *= DEQUANT_SCALE
    out += DEQUANT_BIAS
    return out


def parse_sequence_example(data, feature_names=("rgb", "audio"), max_frames=MAX_FRAMES):
    """Decode one serialized SequenceExample: (video_id, {name: float32 [T, D]}, labels).
    Raises ValueError on malformed or incomplete input."""
    try:
        return _parse(data, feature_names, max_frames)
    except CorruptRecord as err:
        raise ValueError(str(err)) from None


# --------------------------------------------------------------------------- TFRecord shards

ShardPlan = collections.namedtuple("ShardPlan", "shards stride offset")
ShardPlan.__doc__ = """Shards a process reads, and which of their records it keeps: those whose
running index i (over all records of all `shards`) has i % stride == offset."""


def _parse(data, feature_names, max_frames):
    video_id, frames, labels = decode_sequence_example(data, feature_names, max_frames, FEATURE_DIMS)
    return video_id, {name: dequantize(q) for name, q in frames.items()}, labels


def iter_tfrecord_videos(paths, feature_names=("rgb", "audio"), max_frames=MAX_FRAMES,
                         skip_corrupt=False, stats=None, record_stride=1, record_offset=0):
    """Yield (video_id, {name: float32 [T, D]}, labels) from frame-level TFRecord shards.

    `paths` is a list of shard paths, or a ShardPlan from shards_for_rank (then its stride and
    offset replace record_stride / record_offset).  See the module docstring for errors and stats.
    """
    paths, record_stride, record_offset = _plan(paths, record_stride, record_offset)
    if max_frames is None or max_frames < 1:
        raise ValueError(f"max_frames must be a positive int, not {max_frames!r}")
    feature_names = tuple(feature_names)
    records = iter_tfrecord_records(paths, record_stride, record_offset, skip_corrupt, stats)
    yield from _decoded(records, lambda data: _parse(data, feature_names, max_frames), skip_corrupt, stats)


def _plan(paths, record_stride, record_offset):
    """(shard paths, stride, offset) from a path, a list of paths or a ShardPlan (which wins)."""
    if isinstance(paths, ShardPlan):
        return tuple(paths)
    if isinstance(paths, (str, os.PathLike)):
        return [paths], record_stride, record_offset
    return paths, record_stride, record_offset


def _decoded(records, decode, skip_corrupt, stats):
    """decode(raw) of each (path, index, raw) record; a corrupt one raises, or is skipped and counted."""
    for path, index, raw in records:
        try:
            video = decode(raw)
        except CorruptRecord as err:
            report_corrupt(path, f"record {index}: {err}", skip_corrupt, stats)
            continue
        if stats is not None:
            stats["records"] += 1
        yield video


# --------------------------------------------------------------------------- pickles

def iter_pickle_videos(paths, feature_names=("rgb", "audio"), max_frames=MAX_FRAMES,
                       skip_corrupt=False, stats=None, record_stride=1, record_offset=0):
    """Yield (video_id, {name: float32 [T, D]}, labels) from the Paddle reference's pickles
    (a list of dicts {video, feature, audio, label, nframes}; rgb is stored as 'feature')."""
    paths, record_stride, record_offset = _plan(paths, record_stride, record_offset)
    records = _pickle_records(paths, record_stride, record_offset, stats)
    yield from _decoded(records, lambda item: _pickle_video(item, feature_names, max_frames), skip_corrupt, stats)


def _pickle_records(paths, record_stride, record_offset, stats):
    """(path, index, dict) of this process's videos: every record_stride-th over all pickles."""
    counter = 0
    for path in paths:
        if stats is not None:
            stats["shards"] += 1
        for index, item in enumerate(_load_pickle(path)):
            if counter % record_stride == record_offset:
                yield path, index, item
            counter += 1


def _load_pickle(path):
    """The list of video dicts of one reference pickle."""
    try:
        items = safeload.load_pickle(path)  # runs nothing the file asks for
    except OSError as err:
        raise InputError(f"cannot open pickle: {err.strerror or err}", path) from None
    except safeload.WeightsFileError as err:
        raise InputError(str(err)) from None
    if not isinstance(items, (list, tuple)):
        raise InputError(f"expected a list of dicts, found {type(items).__name__}", path)
    return items


def _pickle_video(item, feature_names, max_frames):
    if not isinstance(item, dict):
        raise CorruptRecord(f"expected a dict, found {type(item).__name__}")
    for key in ("video", "label"):
        if key not in item:
            raise CorruptRecord(f"missing key '{key}'")
    video_id = item["video"]
    if isinstance(video_id, bytes):
        video_id = video_id.decode("utf-8", "replace")
    features = {}
    for name in feature_names:
        key = PICKLE_KEYS.get(name, name)
        if key not in item:
            raise CorruptRecord(f"missing key '{key}' (feature '{name}')")
        q = np.asarray(item[key])
        if q.ndim != 2 or not np.issubdtype(q.dtype, np.integer):
            raise CorruptRecord(f"'{key}' is not a 2-d uint8 array ({q.dtype}, shape {q.shape})")
        if q.dtype != np.uint8 and q.size and (q.min() < 0 or q.max() > 255):
            raise CorruptRecord(f"'{key}' has values outside 0..255")
        features[name] = dequantize(q[:max_frames])
    labels = item["label"]
    labels = [int(x) for x in (labels if np.ndim(labels) else [labels])]
    return str(video_id), features, labels


# --------------------------------------------------------------------------- shard selection

def _has_magic(s):
    return any(c in s for c in "*?[")


def expand_shards(spec, base_dir=None):
    """Sorted, de-duplicated list of shard paths from a glob, a path, a list of those, or a list
    file (.list / .txt / .lst).  Relative specs are joined to base_dir.  A pattern matching
    nothing, or a missing path, is an InputError naming it."""
    base_dir = os.getcwd() if base_dir is None else os.fspath(base_dir)
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not specs:
        raise InputError("no shards given (empty list)")
    out = set()
    for item in specs:
        out.update(_expand_one(os.fspath(item), base_dir))
    return sorted(out)


def _expand_one(item, base_dir, where=None, line=None):
    """Paths named by one spec; errors name `where` (a list file) and its `line`."""
    pattern = os.path.normpath(os.path.join(base_dir, os.path.expanduser(item.strip())))
    if _has_magic(pattern):
        found = [p for p in glob.glob(pattern) if os.path.isfile(p)]
        if not found:
            raise InputError(f"no shard matches '{pattern}'", where, line)
        return found
    if os.path.isdir(pattern):
        raise InputError(f"'{pattern}' is a folder; give a glob such as "
                         f"'{os.path.join(pattern, '*.tfrecord')}'", where, line)
    if not os.path.isfile(pattern):
        raise InputError(f"shard not found: '{pattern}'", where, line)
    if where is None and pattern.endswith(LIST_SUFFIXES):
        return _read_list(pattern)
    return [pattern]


def _read_list(list_path):
    out = []
    for number, fields, folder in list_entries(list_path, "shard list"):
        out.extend(_expand_one(fields[0], folder, list_path, number))
    if not out:
        raise InputError("lists no shards", list_path)
    return out


def shards_for_rank(shards, rank, world):
    """ShardPlan of process `rank` of `world` (see the module docstring)."""
    shards = list(shards)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    if len(shards) >= world:
        return ShardPlan(shards[rank::world], 1, 0)
    return ShardPlan(shards, world, rank)


# --------------------------------------------------------------------------- shuffling

def shuffle_buffer(iterable, size, rng):
    """Yield the items of `iterable` in a random order, holding at most `size` of them at once.
    `rng` is a numpy Generator or a random.Random.  size <= 1 passes the items through."""
    pick = rng.integers if hasattr(rng, "integers") else rng.randrange
    if size <= 1:
        yield from iterable
        return
    buf = []
    for item in iterable:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(pick(size))
        out, buf[j] = buf[j], item
        yield out
    while buf:  # drain in random order
        j = int(pick(len(buf)))
        buf[j], buf[-1] = buf[-1], buf[j]
        yield buf.pop()


# --------------------------------------------------------------------------- training source

def names_records(filelist):
    """Whether a config's `filelist` names YouTube-8M records rather than a VideoTag feature list:
    a list of shards, a path or glob ending in .tfrecord / .pkl, or a list file (.list, .txt,
    .lst) whose first entry ends in one of those."""
    if isinstance(filelist, (list, tuple)):
        return True
    spec = os.fspath(filelist).strip()
    if spec.endswith(RECORD_SUFFIXES):
        return True
    if not (spec.endswith(LIST_SUFFIXES) and os.path.isfile(spec)):
        return False
    with open(spec) as f:
        entries = (line.strip() for line in f)
        first = next((e for e in entries if e and not e.startswith("#")), "")
    return first.endswith(RECORD_SUFFIXES)


@functools.lru_cache(maxsize=None)
def _cached_pickle_count(path, size, mtime_ns):
    return len(_load_pickle(path))


def record_count(path):
    """Records in a TFRecord shard (headers only) or a pickle (loaded once); cached."""
    if path.endswith(PICKLE_SUFFIX):
        stat = os.stat(path)
        return _cached_pickle_count(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    return len(record_spans(path))


class RecordSource(HeadSource):
    """Batches of YouTube-8M records (TFRecord shards or reference pickles), split among processes,
    for the trainer (see core/trainer.py).

    Every process walks all records in the same order: shards sorted, or for training in an
    order drawn from (seed, epoch) and then through a shuffle buffer of `shuffle_buffer` records
    with the same generator.  Every process cuts the same global batches and decodes only its
    contiguous slice of each (core.lists.rank_shares), so all processes yield num_batches(drop_last)
    batches and N processes train as one process with the same global batch.

    A TFRecord record goes through the buffer as its (shard, record) position, from a counting
    pass over the record headers (once per shard and process, cached): a process reads the bytes
    of its own records only.  A pickle is loaded whole when the walk reaches it, and its dicts go
    through the buffer, which then holds up to `shuffle_buffer` videos.

    Batch.indices are global record positions (over the sorted shards), names the video ids.
    A corrupt record, a label >= num_classes or a feature whose width is not in
    MODEL.feature_dims is an InputError naming the shard and record.
    """

    def __init__(self, filelist, model_cfg, batch_size, num_workers=4, shuffle_buffer=SHUFFLE_BUFFER):
        super().__init__(model_cfg, batch_size, num_workers)
        self.shards = expand_shards(filelist)
        self.filelist = filelist
        self.shuffle_buffer = shuffle_buffer
        self._counts = None

    @property
    def counts(self):
        """Records per shard (the counting pass, on first use)."""
        if self._counts is None:
            self._counts = [record_count(path) for path in self.shards]
        return self._counts

    def __len__(self):
        return sum(self.counts)

    def batches(self, rank=0, world=1, shuffle=False, drop_last=False, epoch=0, seed=0):
        """Yield this process's Batch of each global batch; records are decoded ahead in threads."""
        if not len(self):
            raise InputError("the shards hold no records", self.filelist)
        if drop_last and len(self) < self.batch_size:
            raise InputError(f"batch_size {self.batch_size} is larger than the {len(self)} records "
                             f"of the {len(self.shards)} shard(s)", self.filelist)
        rng = np.random.default_rng([seed, epoch])
        shard_order = rng.permutation(len(self.shards)) if shuffle else range(len(self.shards))
        records = itertools.chain.from_iterable(self._records(s) for s in shard_order)
        if shuffle:
            records = shuffle_buffer(records, self.shuffle_buffer, rng)
        first = np.cumsum([0] + self.counts[:-1])
        shares = rank_shares(records, self.batch_size, rank, world, drop_last)
        for share, samples in read_ahead(shares, self._load, self.num_workers):
            features, mask, labels = pad_batch([(arrays, labels) for _, arrays, labels in samples],
                                               self.num_classes)
            indices = np.array([first[shard] + index for shard, index, _ in share], np.int64)
            yield Batch(indices, [video_id for video_id, _, _ in samples], features, mask, labels)

    def _records(self, shard):
        """(shard, record index, the pickle's dict or None) of each record of a shard."""
        path = self.shards[shard]
        if path.endswith(PICKLE_SUFFIX):
            return ((shard, index, item) for index, item in enumerate(_load_pickle(path)))
        return ((shard, index, None) for index in range(self.counts[shard]))

    def _load(self, record):
        """(video_id, [T, D_i] arrays in feature_names order, labels) of one record, checked."""
        shard, index, item = record
        path = self.shards[shard]
        try:
            if item is None:
                offset, length = record_spans(path)[index]
                data = read_record(path, int(offset), int(length))
                video_id, features, labels = _parse(data, self.feature_names, MAX_FRAMES)
            else:
                video_id, features, labels = _pickle_video(item, self.feature_names, MAX_FRAMES)
        except CorruptRecord as err:
            raise InputError(f"record {index}: {err}", path) from None
        arrays = [features[name] for name in self.feature_names]
        problem = feature_problem(arrays, self.feature_names, self.feature_dims)
        out_of_range = [x for x in labels if not 0 <= x < self.num_classes]
        if out_of_range:
            problem = f"label {out_of_range[0]} is out of range: MODEL.num_classes is {self.num_classes}"
        if problem:
            raise InputError(f"record {index} ('{video_id}'): {problem}", path)
        return video_id, segments(arrays, self.seg_num), labels

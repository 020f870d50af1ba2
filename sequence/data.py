"""Frame-feature data for the heads: VideoTag feature lists, padded batches, this process's share.

A config section's `filelist` is read by its form (sequence.task.SequenceTask.source):
  YouTube-8M records (sequence.yt8m.RecordSource) when it is a YAML list of shards, a path or glob
  ending in `.tfrecord` or `.pkl`, or a text file whose first entry ends in one of those (a list
  of shards, one path or glob per line); a VideoTag feature list otherwise.

A feature list has one video per line: `path l1 l2 ...` (no labels: a negative), split on
whitespace, or on tabs when the line has one (for paths with spaces). Relative paths resolve
against the list file's folder. The path names one of:
  x.npy            [T, D] for the single feature of the config (`feature_names: [rgb]`);
  x.npz            one [T, D_i] array per feature name (e.g. `rgb` and `audio`);
  store.h5#key     dataset `key` of an HDF5 store (as the extractor writes it), or a group `key`
                   holding one dataset per feature name.
"""
import os
import threading
from dataclasses import dataclass, field

import h5py
import numpy as np

from core.errors import InputError
from core.lists import batch_count, epoch_order, list_entries, list_shares, order_shares, read_ahead, resolve
from core.log import log

# np.load parses each array's header with ast.literal_eval, which CPython 3.11.0-3.11.7 and 3.12.0
# cannot run in two threads at once ("SystemError: AST constructor recursion depth mismatch",
# fixed in 3.11.8 / 3.12.1); feature files are read in threads (read_ahead), so .npy/.npz reads
# take turns here. Reading one video's features is a millisecond: the threads still overlap compute.
NUMPY_READ = threading.Lock()

HDF5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class Video:
    name: str  # the path as listed
    path: str  # resolved file path
    key: str  # dataset key inside an HDF5 store, else ""
    labels: list = field(default_factory=list)
    list_path: str = ""
    line: int = 0


@dataclass
class Batch:
    indices: np.ndarray  # positions of the videos in the list: eval gathers and reorders by them
    names: list
    features: list  # one float32 [B, T, D_i] array per feature name
    mask: np.ndarray  # float32 [B, T]: 1 for real frames, 0 for padding
    labels: np.ndarray  # float32 [B, num_classes] multi-hot


def read_feature_list(list_path, num_classes, need_labels=True):
    """Parse a feature list, checking every line; errors name the list file and line.

    A line without labels in a list that needs them (TRAIN, VALID, TEST) is a negative, an
    all-zero target, as VideoTag's reader makes it; their number is logged."""
    videos = []
    for line_no, fields, folder in list_entries(list_path):
        name, label_fields = fields[0], fields[1:]
        labels = []
        for text in label_fields:
            if not text.isdigit():
                raise InputError(f"malformed line: label '{text}' is not a non-negative integer "
                                 f"(expected 'path label label ...')", list_path, line_no)
            labels.append(int(text))
        bad = [x for x in labels if x >= num_classes]
        if bad:
            raise InputError(f"label {bad[0]} is out of range: MODEL.num_classes is {num_classes}",
                             list_path, line_no)
        file_part, _, key = name.partition("#")
        path = resolve(file_part, folder)
        if not os.path.isfile(path):
            raise InputError(f"feature file not found: {file_part} (neither beside the list nor in the "
                             "working directory)", list_path, line_no)
        videos.append(Video(name, path, key, sorted(set(labels)), list_path, line_no))
    if not videos:
        raise InputError("the list is empty: no videos to read", list_path)
    unlabelled = sum(not video.labels for video in videos)
    if need_labels and unlabelled:
        log.info("%s: %s of %s videos have no labels (negatives: all-zero targets)", list_path,
                 f"{unlabelled:,}", f"{len(videos):,}")
    return videos


def read_arrays(video, feature_names):
    """The video's [T, D_i] arrays in feature_names order, as stored (unchecked)."""

    def fail(message):
        return InputError(f"{video.path}: {message}", video.list_path, video.line)

    try:
        if video.path.endswith(HDF5_SUFFIXES):
            return _load_hdf5(video, feature_names)
        if video.path.endswith(".npz"):
            with NUMPY_READ, np.load(video.path) as store:
                missing = [n for n in feature_names if n not in store]
                if missing:
                    raise fail(f"has no array named {missing[0]} (it has {', '.join(store.files)})")
                return [store[n] for n in feature_names]
        if len(feature_names) > 1:
            raise fail(f"a .npy holds one feature but the config asks for {', '.join(feature_names)}; "
                       "use an .npz with one array per feature")
        with NUMPY_READ:
            return [np.load(video.path, allow_pickle=False)]
    except InputError:
        raise
    except Exception as err:  # unreadable or corrupt file
        raise fail(f"cannot read features ({type(err).__name__}: {err})") from None


def load_features(video, feature_names, feature_dims):
    """The video's [T, D_i] float32 arrays in feature_names order, checked against the config."""
    arrays = read_arrays(video, feature_names)
    problem = feature_problem(arrays, feature_names, feature_dims)
    if problem:
        raise InputError(f"{video.path}: {problem}", video.list_path, video.line)
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def observed_dims(video, feature_names):
    """The feature sizes [D_i] of a video's files: what MODEL.feature_dims becomes when a config leaves
    it out (every other file is then checked against them)."""
    arrays = read_arrays(video, feature_names)
    bad = [a for a in arrays if np.ndim(a) != 2]
    if bad:
        raise InputError(f"{video.path}: features of shape {list(np.shape(bad[0]))}, expected [frames, dim]",
                         video.list_path, video.line)
    return [int(a.shape[1]) for a in arrays]


def feature_problem(arrays, feature_names, feature_dims):
    """What is wrong with a video's [T, D_i] arrays for the config, or None."""
    for name, dim, array in zip(feature_names, feature_dims, arrays):
        if array.ndim != 2 or array.shape[1] != dim:
            return (f"feature '{name}' has shape {list(array.shape)}, expected [frames, {dim}] "
                    "(MODEL.feature_dims)")
        if array.shape[0] == 0:
            return f"feature '{name}' has no frames"
        if not np.isfinite(array).all():
            return f"feature '{name}' contains NaN or infinite values"
    if len({a.shape[0] for a in arrays}) > 1:
        return "features have different frame counts: " + ", ".join(str(len(a)) for a in arrays)
    return None


def _load_hdf5(video, feature_names):
    with h5py.File(video.path, "r") as store:
        if video.key not in store:
            raise InputError(f"{video.path}: no dataset '{video.key}' in the store", video.list_path, video.line)
        node = store[video.key]
        if isinstance(node, h5py.Dataset):
            if len(feature_names) > 1:
                raise InputError(f"{video.path}#{video.key} holds one feature but the config asks for "
                                 f"{', '.join(feature_names)}", video.list_path, video.line)
            return [node[()]]
        return [node[name][()] for name in feature_names]


def frame_count(video):
    """A video's frame count from its file's header (the arrays are not read, except in an .npz)."""
    if video.path.endswith(HDF5_SUFFIXES):
        with h5py.File(video.path, "r") as store:
            node = store[video.key]
            return (node if isinstance(node, h5py.Dataset) else node[next(iter(node))]).shape[0]
    with NUMPY_READ:
        if video.path.endswith(".npz"):
            with np.load(video.path) as store:
                return store[store.files[0]].shape[0]
        return np.load(video.path, mmap_mode="r").shape[0]


def bucketed(order, lengths, batch_size, pool_batches, rng):
    """`order` regrouped so that each batch holds videos of similar lengths (padding then costs
    little): pools of pool_batches batches, taken in `order`, are sorted by length and cut into
    batches; the full batches of all pools are shuffled, a short last batch stays last."""
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    short = [b for b in batches if len(b) < batch_size]
    full = [batches[i] for i in rng.permutation(len(batches) - len(short))]
    return np.concatenate(full + short) if batches else order


def evenly_spaced(num_frames, seg_num):
    """Indices of seg_num frames spread evenly over num_frames (segment middles), or all if fewer."""
    if num_frames <= seg_num:
        return np.arange(num_frames)
    return ((np.arange(seg_num) + 0.5) * num_frames / seg_num).astype(np.int64)


def segments(arrays, seg_num):
    """The arrays at seg_num evenly spaced frames (all frames when seg_num is falsy)."""
    if not seg_num:
        return arrays
    keep = evenly_spaced(len(arrays[0]), seg_num)
    return [a[keep] for a in arrays]


def pad_batch(samples, num_classes):
    """Stack (features, labels) samples into padded arrays plus a mask."""
    longest = max(s[0][0].shape[0] for s in samples)
    features = []
    for i in range(len(samples[0][0])):
        dim = samples[0][0][i].shape[1]
        stacked = np.zeros((len(samples), longest, dim), np.float32)
        for row, (arrays, _) in enumerate(samples):
            stacked[row, :len(arrays[i])] = arrays[i]
        features.append(stacked)
    mask = np.zeros((len(samples), longest), np.float32)
    labels = np.zeros((len(samples), num_classes), np.float32)
    for row, (arrays, video_labels) in enumerate(samples):
        mask[row, :len(arrays[0])] = 1
        labels[row, video_labels] = 1
    return features, mask, labels


class HeadSource:
    """What every data source of the heads takes from the config, and its batch count."""

    def __init__(self, model_cfg, batch_size, num_workers):
        self.feature_names = list(model_cfg["feature_names"])
        self.feature_dims = list(model_cfg["feature_dims"])
        self.num_classes = model_cfg["num_classes"]
        self.seg_num = model_cfg.get("seg_num")  # Attention Cluster looks at seg_num frames
        self.batch_size = batch_size
        self.num_workers = num_workers  # threads reading ahead (read_ahead uses at least one)

    def num_batches(self, drop_last):
        return batch_count(len(self), self.batch_size, drop_last)


class FeatureListSource(HeadSource):
    """Batches of one feature list, split among processes.

    Every process sees the same sequence of global batches (same seed, same epoch permutation)
    and takes its own contiguous slice of each, so N processes with global batch B see exactly
    the videos one process with batch B sees.

    With bucket_batches > 0, shuffled batches (training) hold videos of similar lengths: the
    shuffled order is regrouped by `bucketed`, from (seed, epoch) alone, so every process still cuts
    the same global batches and the LSTM computes few padded frames.
    """

    def __init__(self, list_path, model_cfg, batch_size, need_labels=True, num_workers=4, bucket_batches=0):
        super().__init__(model_cfg, batch_size, num_workers)
        self.videos = read_feature_list(list_path, model_cfg["num_classes"], need_labels)
        self.list_path = list_path
        self.bucket_batches = bucket_batches
        self.frame_counts = np.zeros(len(self.videos), np.int64)  # 0: not read yet

    def __len__(self):
        return len(self.videos)

    def check(self, index):
        """Raise InputError (naming the list and line) when the video's features are unusable."""
        arrays = load_features(self.videos[index], self.feature_names, self.feature_dims)
        self.frame_counts[index] = len(segments(arrays, self.seg_num)[0])  # for bucketing, without a re-read

    def lengths(self):
        """Frames per video as the model sees them (after seg_num sampling)."""
        unknown = np.flatnonzero(self.frame_counts == 0)
        for chunk, counts in read_ahead([list(unknown)], lambda i: frame_count(self.videos[i]), self.num_workers):
            self.frame_counts[chunk] = counts
        return np.minimum(self.frame_counts, self.seg_num) if self.seg_num else self.frame_counts

    def load(self, index):
        video = self.videos[index]
        arrays = load_features(video, self.feature_names, self.feature_dims)
        return segments(arrays, self.seg_num), video.labels

    def batches(self, rank=0, world=1, shuffle=False, drop_last=False, epoch=0, seed=0):
        """Yield this process's Batch of each global batch; files are read ahead in threads."""
        if shuffle and self.bucket_batches:
            order = bucketed(epoch_order(len(self.videos), True, epoch, seed), self.lengths(), self.batch_size,
                             self.bucket_batches, np.random.default_rng([seed, epoch, 1]))
            shares = order_shares(order, self.batch_size, rank, world, drop_last, self.list_path)
        else:
            shares = list_shares(len(self.videos), self.batch_size, rank, world, shuffle, drop_last, epoch, seed,
                                 self.list_path)
        for share, samples in read_ahead(shares, self.load, self.num_workers):
            features, mask, labels = pad_batch(samples, self.num_classes)
            yield Batch(np.array(share), [self.videos[i].name for i in share], features, mask, labels)

"""YouTube-8M frame-level data, read straight from TFRecord shards (no TensorFlow) or from the
Paddle reference's pickles.

TFRecord framing, per record::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``.  Each record's data is a
``tf.train.SequenceExample`` decoded here by a small protobuf wire-format parser:

* context features: ``id`` (bytes_list, one value) and ``labels`` (int64_list, packed or not);
* feature_lists: ``rgb`` (one 1024-byte bytes_list value per frame) and ``audio`` (128 bytes per frame).

Frames are dequantised ``x * 4/255 + 4/512 - 2`` in float32 (as the YouTube-8M starter code does),
giving float32 ``[T, D]`` arrays with ``T <= max_frames`` (the first frames are kept).  The frames of a feature list normally all have the same byte layout, so they are
taken as one strided numpy view of the record; irregular encodings fall back to a generic parser.

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
with uint8 ``feature [n, 1024]`` (rgb) and ``audio [n, 128]``.  Unpickling runs code: read only
pickles you trust.
"""
import collections
import functools
import glob
import itertools
import logging
import os
import pickle
import struct

import numpy as np

from core.errors import InputError
from core.lists import rank_shares, read_ahead

from .data import Batch, HeadSource, feature_problem, pad_batch, segments

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- CRC32C

try:  # C implementation (SSE4.2 / ARM CRC instructions): ~20 GB/s.
    import google_crc32c as _gcrc

    if _gcrc.implementation != "c":  # its own pure-Python fallback is no faster than ours
        raise ImportError
    crc32c = _gcrc.value
    CRC_IMPLEMENTATION = "google-crc32c"
except ImportError:  # pragma: no cover - exercised in tests through _crc32c_numpy directly
    _gcrc = None
    CRC_IMPLEMENTATION = "numpy"


def _crc32c_table():
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = np.zeros(256, dtype=np.uint32)
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[b] = c
    return table


_TABLE = _crc32c_table()
_LANES = 4096


def _raw_update(state, data):
    """CRC register update (no init / final xor) of each row of uint8 `data` [L, m] starting from
    the uint32 states [L]: one numpy step per column, all rows at once."""
    state = state.copy()
    for j in range(data.shape[1]):
        state = _TABLE[(state ^ data[:, j]) & 0xFF] ^ (state >> 8)
    return state


def _apply(tables, x):
    """Apply the GF(2)-linear map given as 4 byte tables to the uint32 array x."""
    return (tables[0][x & 0xFF] ^ tables[1][(x >> 8) & 0xFF]
            ^ tables[2][(x >> 16) & 0xFF] ^ tables[3][x >> 24])


def _tables_from_images(images):
    """Byte tables of the linear map whose images of the 32 unit vectors are `images` [32]."""
    bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1  # [256, 8]
    tables = []
    for k in range(4):
        img = images[8 * k:8 * k + 8]
        sel = np.where(bits.astype(bool), img[None, :], np.uint32(0))
        tables.append(np.bitwise_xor.reduce(sel, axis=1).astype(np.uint32))
    return tables


def _crc32c_numpy(data):
    """CRC32C of `data` without a C library: the bytes are cut into up to _LANES equal lanes
    (zero-padded in front, which leaves a zero-state CRC unchanged), each lane's CRC is computed
    column by column in numpy, and the lanes are merged pairwise with the linear 'append n zero
    bytes' map.  Slower than google-crc32c by ~100x but not a per-byte Python loop."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    n = buf.size
    lanes = 1
    while lanes < _LANES and lanes * 64 < n:
        lanes *= 2
    m = -(-n // lanes) if n else 0
    padded = np.zeros(lanes * m, dtype=np.uint8)
    padded[lanes * m - n:] = buf
    crcs = _raw_update(np.zeros(lanes, dtype=np.uint32), padded.reshape(lanes, m))
    # shift map for m zero bytes, from the images of the unit vectors
    shift = _tables_from_images(_raw_update(np.uint32(1) << np.arange(32, dtype=np.uint32),
                                            np.zeros((32, m), dtype=np.uint8)))
    while crcs.size > 1:  # merge (a, b) -> shift_len(b)(a) ^ b, lane length doubling each level
        crcs = _apply(shift, crcs[0::2]) ^ crcs[1::2]
        images = np.uint32(1) << np.arange(32, dtype=np.uint32)
        shift = _tables_from_images(_apply(shift, _apply(shift, images)))
    raw0 = int(crcs[0]) if n else 0
    # crc(data) = ~raw(0xffffffff, data) = ~(raw(0xffffffff, n zero bytes) ^ raw(0, data))
    return _shift_state(0xFFFFFFFF, n) ^ raw0 ^ 0xFFFFFFFF


_ZERO_POWERS = []  # byte tables of 'append 2**k zero bytes', k = 0, 1, ...


def _shift_state(state, n):
    """raw(state, n zero bytes) by square-and-multiply over the zero-byte map."""
    images = np.uint32(1) << np.arange(32, dtype=np.uint32)
    if not _ZERO_POWERS:
        _ZERO_POWERS.append(_tables_from_images(
            _raw_update(images, np.zeros((32, 1), dtype=np.uint8))))
    x = np.array([state], dtype=np.uint32)
    k = 0
    while n:
        while len(_ZERO_POWERS) <= k:
            last = _ZERO_POWERS[-1]
            _ZERO_POWERS.append(_tables_from_images(_apply(last, _apply(last, images))))
        if n & 1:
            x = _apply(_ZERO_POWERS[k], x)
        n >>= 1
        k += 1
    return int(x[0])


def _crc32c_python(data):
    """Byte-at-a-time CRC32C, for short inputs (the 8-byte length fields)."""
    table = _TABLE_LIST
    crc = 0xFFFFFFFF
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_TABLE_LIST = [int(x) for x in _TABLE]


def crc32c_fallback(data):
    """CRC32C without a C library: a Python loop for short inputs, numpy lanes for long ones."""
    return _crc32c_python(data) if len(data) < 1024 else _crc32c_numpy(data)


if _gcrc is None:  # pragma: no cover
    crc32c = crc32c_fallback
    log.warning("google-crc32c is not installed: CRC32C checks use a slow numpy fallback "
                "(pip install google-crc32c)")


def masked_crc(data):
    """The TFRecord masked CRC32C of `data`."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- protobuf wire format

class _Corrupt(Exception):
    """A record that cannot be decoded; turned into an InputError naming shard and record."""


def _varint(buf, pos, end):
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Corrupt("protobuf varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("protobuf varint longer than 10 bytes")


def _fields(buf, pos, end):
    """Yield (field_number, wire_type, value, value_end) for the message in buf[pos:end].
    For length-delimited fields value is the start offset of the payload; otherwise the int."""
    while pos < end:
        b = buf[pos]
        if b < 0x80:
            key = b
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Corrupt("protobuf field number 0")
        if wire == 2:
            if pos < end and buf[pos] < 0x80:
                length = buf[pos]
                pos += 1
            else:
                length, pos = _varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise _Corrupt(f"protobuf field {field} runs past the end of its message")
            yield field, wire, pos, stop
            pos = stop
        elif wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Corrupt(f"protobuf field {field} runs past the end of its message")
            value = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
            yield field, wire, value, pos
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire} (field {field})")


def _map_entries(buf, start, end):
    """{key: (value_start, value_end)} of a map<string, message> held as field 1 of buf[start:end]
    (tf.train.Features and tf.train.FeatureLists)."""
    out = {}
    for field, wire, pos, stop in _fields(buf, start, end):
        if field != 1 or wire != 2:
            continue
        key = None
        value = (stop, stop)  # absent value = empty message
        for f, w, p, s in _fields(buf, pos, stop):
            if w != 2:
                continue
            if f == 1:
                key = bytes(buf[p:s]).decode("utf-8", "replace")
            elif f == 2:
                value = (p, s)
        if key is not None:
            out[key] = value
    return out


def _feature_kind(buf, start, end):
    """(kind, start, end) of a tf.train.Feature: kind 1 bytes_list, 2 float_list, 3 int64_list."""
    kind = None
    span = (start, start)
    for field, wire, pos, stop in _fields(buf, start, end):
        if wire == 2 and field in (1, 2, 3):
            kind, span = field, (pos, stop)
    return kind, span[0], span[1]


def _bytes_values(buf, start, end):
    return [(p, s) for f, w, p, s in _fields(buf, start, end) if f == 1 and w == 2]


def _int64_values(buf, start, end):
    values = []
    for field, wire, pos, stop in _fields(buf, start, end):
        if field != 1:
            continue
        if wire == 0:
            values.append(pos)
        elif wire == 2:  # packed
            p = pos
            while p < stop:
                v, p = _varint(buf, p, stop)
                values.append(v)
        else:
            raise _Corrupt(f"int64_list value with wire type {wire}")
    return [v - (1 << 64) if v >= (1 << 63) else v for v in values]


def _varint_size(n):
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _frames(buf, arr, start, end, name, max_frames):
    """uint8 [T, D] of a tf.train.FeatureList of one-bytes-value frames, T capped at max_frames."""
    if start == end:
        return np.zeros((0, FEATURE_DIMS.get(name, 0)), dtype=np.uint8)
    # Fast path: every frame is encoded as the same header followed by D bytes, so the feature
    # list is a [T, header + D] matrix of bytes whose header columns are all equal.
    try:
        if buf[start] == 0x0A:
            l1, p1 = _varint(buf, start + 1, end)          # Feature
            if buf[p1] == 0x0A:
                l2, p2 = _varint(buf, p1 + 1, end)         # BytesList
                if buf[p2] == 0x0A:
                    dim, p3 = _varint(buf, p2 + 1, end)    # the one bytes value
                    header = p3 - start
                    stride = header + dim
                    if (l2 == 1 + _varint_size(dim) + dim and l1 == 1 + _varint_size(l2) + l2
                            and dim > 0 and (end - start) % stride == 0):
                        rows = arr[start:end].reshape(-1, stride)
                        if (rows[:, :header] == rows[0, :header]).all():
                            return rows[:max_frames, header:]
    except (_Corrupt, IndexError):
        pass  # let the generic parser report it
    frames = []
    dim = None
    for field, wire, pos, stop in _fields(buf, start, end):
        if field != 1 or wire != 2:
            continue
        if len(frames) >= max_frames:
            break
        kind, s, e = _feature_kind(buf, pos, stop)
        if kind != 1:
            raise _Corrupt(f"frame {len(frames)} of '{name}' is not a bytes_list")
        values = _bytes_values(buf, s, e)
        if len(values) != 1:
            raise _Corrupt(f"frame {len(frames)} of '{name}' has {len(values)} values, expected 1")
        p, q = values[0]
        if dim is None:
            dim = q - p
        elif q - p != dim:
            raise _Corrupt(f"frame {len(frames)} of '{name}' has {q - p} bytes, frame 0 has {dim}")
        frames.append(arr[p:q])
    if not frames:
        return np.zeros((0, FEATURE_DIMS.get(name, 0)), dtype=np.uint8)
    return np.stack(frames)


def parse_sequence_example(data, feature_names=("rgb", "audio"), max_frames=MAX_FRAMES):
    """Decode one serialized SequenceExample: (video_id, {name: float32 [T, D]}, labels).
    Raises ValueError on malformed or incomplete input."""
    try:
        return _parse(data, feature_names, max_frames)
    except _Corrupt as err:
        raise ValueError(str(err)) from None


def _parse(data, feature_names, max_frames):
    buf = data
    end = len(buf)
    context = feature_lists = (0, 0)
    for field, wire, pos, stop in _fields(buf, 0, end):
        if wire == 2 and field == 1:
            context = (pos, stop)
        elif wire == 2 and field == 2:
            feature_lists = (pos, stop)
    ctx = _map_entries(buf, *context)
    if "id" not in ctx:
        raise _Corrupt("missing context feature 'id'")
    kind, s, e = _feature_kind(buf, *ctx["id"])
    ids = _bytes_values(buf, s, e) if kind == 1 else []
    if len(ids) != 1:
        raise _Corrupt("context feature 'id' is not one bytes value")
    video_id = bytes(buf[ids[0][0]:ids[0][1]]).decode("utf-8", "replace")
    labels = []
    if "labels" in ctx:
        kind, s, e = _feature_kind(buf, *ctx["labels"])
        if kind not in (3, None):
            raise _Corrupt("context feature 'labels' is not an int64_list")
        labels = _int64_values(buf, s, e) if kind == 3 else []
    lists = _map_entries(buf, *feature_lists)
    arr = np.frombuffer(buf, dtype=np.uint8)
    features = {}
    for name in feature_names:
        if name not in lists:
            raise _Corrupt(f"missing feature list '{name}'")
        features[name] = dequantize(_frames(buf, arr, *lists[name], name, max_frames))
    return video_id, features, labels


# --------------------------------------------------------------------------- TFRecord shards

ShardPlan = collections.namedtuple("ShardPlan", "shards stride offset")
ShardPlan.__doc__ = """Shards a process reads, and which of their records it keeps: those whose
running index i (over all records of all `shards`) has i % stride == offset."""

_LEN = struct.Struct("<QI")


class _Truncated(_Corrupt):
    """The shard ends inside a record: the rest of the shard cannot be read."""


def _open_shard(path):
    try:
        return open(path, "rb")
    except OSError as err:
        raise InputError(f"cannot open shard: {err.strerror or err}", path) from None


def _record_spans(f, path, skip_corrupt=False, stats=None):
    """Yield (record_index, data_offset, data_length) of the open shard `f` from its record
    headers alone: each length field's CRC is checked, and that the record fits in the file;
    the data is neither read nor checked."""
    size = os.fstat(f.fileno()).st_size
    pos = index = 0
    while pos < size:
        f.seek(pos)
        head = f.read(12)
        problem, truncated = None, True
        if len(head) < 12:
            problem = f"truncated shard: record {index} header has {len(head)} of 12 bytes"
        else:
            length, length_crc = _LEN.unpack(head)
            if masked_crc(head[:8]) != length_crc:
                problem, truncated = f"record {index}: length field CRC mismatch", False
            elif pos + 12 + length + 4 > size:
                problem = (f"truncated shard: record {index} needs {length + 4} bytes, "
                           f"{max(size - pos - 12, 0)} left")
        if problem is not None:
            if truncated and stats is not None:
                stats["truncated"] += 1
            _corrupt(path, problem, skip_corrupt, stats, "the rest of the shard")
            return
        yield index, pos + 12, length
        pos += 12 + length + 4
        index += 1


def _record_data(f, offset, length):
    """The `length` bytes of record data at `offset` of the open shard `f`, checked against
    their CRC."""
    f.seek(offset)
    data = f.read(length)
    footer = f.read(4)
    if len(data) < length or len(footer) < 4:  # the file shrank while we read it
        raise _Truncated("truncated shard: the record is cut short")
    if masked_crc(data) != int.from_bytes(footer, "little"):
        raise _Corrupt("data CRC mismatch")
    return data


@functools.lru_cache(maxsize=None)
def _cached_spans(path, size, mtime_ns):
    with _open_shard(path) as f:
        return np.array([span for _, *span in _record_spans(f, path)], np.int64).reshape(-1, 2)


def record_spans(path):
    """int64 [n, 2] (data offset, data length) of the n records of a TFRecord shard, from one
    pass over its record headers (the data is not read); cached while the file keeps its size
    and modification time."""
    stat = os.stat(path)
    return _cached_spans(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def _read_records(path, stride=1, offset=0, counter=None, skip_corrupt=False, stats=None):
    """Yield (record_index, data) of one shard; `counter` is a one-item list holding the running
    record index over all shards (for the stride / offset split), updated in place."""
    if counter is None:
        counter = [0]
    with _open_shard(path) as f:
        for index, start, length in _record_spans(f, path, skip_corrupt, stats):
            mine = counter[0] % stride == offset
            counter[0] += 1
            if not mine:
                continue
            try:
                data = _record_data(f, start, length)
            except _Truncated as err:
                if stats is not None:
                    stats["truncated"] += 1
                _corrupt(path, f"record {index}: {err}", skip_corrupt, stats, "the rest of the shard")
                return
            except _Corrupt as err:
                _corrupt(path, f"record {index}: {err}", skip_corrupt, stats)
                continue
            yield index, data


def _corrupt(path, message, skip_corrupt, stats, what="the record"):
    if not skip_corrupt:
        raise InputError(message, path)
    if stats is not None:
        stats["skipped"] += 1
    log.warning("%s: %s; skipping %s", path, message, what)


def iter_tfrecord_records(paths, stride=1, offset=0, skip_corrupt=False, stats=None):
    """Yield (path, record_index, data) of the CRC-checked records of the shards `paths`."""
    counter = [0]
    for path in paths:
        if stats is not None:
            stats["shards"] += 1
        for index, data in _read_records(path, stride, offset, counter, skip_corrupt, stats):
            yield path, index, data


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
        except _Corrupt as err:
            _corrupt(path, f"record {index}: {err}", skip_corrupt, stats)
            continue
        if stats is not None:
            stats["records"] += 1
        yield video


# --------------------------------------------------------------------------- writer

def _key(field, wire):
    return _enc_varint((field << 3) | wire)


def _enc_varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(field, payload):
    return _key(field, 2) + _enc_varint(len(payload)) + payload


def _bytes_feature(values):
    return _len_field(1, b"".join(_len_field(1, v) for v in values))


def _int64_feature(values, packed=True):
    if packed:
        body = _len_field(1, b"".join(_enc_varint(v) for v in values)) if values else b""
    else:
        body = b"".join(_key(1, 0) + _enc_varint(v) for v in values)
    return _len_field(3, body)


def _map_entry(key, value):
    return _len_field(1, _len_field(1, key.encode("utf-8")) + _len_field(2, value))


def encode_sequence_example(video_id, features, labels, packed_labels=True):
    """Serialized SequenceExample: context id / labels, one bytes value per frame for each
    uint8 [T, D] array in `features` (name -> array, written in the given order)."""
    vid = video_id.encode("utf-8") if isinstance(video_id, str) else bytes(video_id)
    context = (_map_entry("id", _bytes_feature([vid]))
               + _map_entry("labels", _int64_feature([int(x) for x in labels], packed_labels)))
    lists = b""
    for name, frames in features.items():
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.ndim != 2:
            raise ValueError(f"feature '{name}' must be a [T, D] uint8 array")
        body = b"".join(_len_field(1, _bytes_feature([row.tobytes()])) for row in frames)
        lists += _map_entry(name, body)
    return _len_field(1, context) + _len_field(2, lists)


def frame_record(data):
    """One TFRecord record (length, masked CRCs) around `data`."""
    head = struct.pack("<Q", len(data))
    return (head + struct.pack("<I", masked_crc(head)) + data
            + struct.pack("<I", masked_crc(data)))


def write_tfrecord(path, videos, packed_labels=True):
    """Write `videos`, an iterable of (video_id, {name: uint8 [T, D]}, labels), as one shard.
    The features are the quantised bytes as stored by YouTube-8M. Returns the record count."""
    count = 0
    with open(path, "wb") as f:
        for video_id, features, labels in videos:
            f.write(frame_record(encode_sequence_example(video_id, features, labels,
                                                         packed_labels)))
            count += 1
    return count


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
        with open(path, "rb") as f:
            items = pickle.load(f, encoding="latin1")  # latin1: Python 2 pickles of numpy
    except OSError as err:
        raise InputError(f"cannot open pickle: {err.strerror or err}", path) from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure is bad input
        raise InputError(f"not a readable pickle ({type(err).__name__}: {err})", path) from None
    if not isinstance(items, (list, tuple)):
        raise InputError(f"expected a list of dicts, found {type(items).__name__}", path)
    return items


def _pickle_video(item, feature_names, max_frames):
    if not isinstance(item, dict):
        raise _Corrupt(f"expected a dict, found {type(item).__name__}")
    for key in ("video", "label"):
        if key not in item:
            raise _Corrupt(f"missing key '{key}'")
    video_id = item["video"]
    if isinstance(video_id, bytes):
        video_id = video_id.decode("utf-8", "replace")
    features = {}
    for name in feature_names:
        key = PICKLE_KEYS.get(name, name)
        if key not in item:
            raise _Corrupt(f"missing key '{key}' (feature '{name}')")
        q = np.asarray(item[key])
        if q.ndim != 2 or not np.issubdtype(q.dtype, np.integer):
            raise _Corrupt(f"'{key}' is not a 2-d uint8 array ({q.dtype}, shape {q.shape})")
        if q.dtype != np.uint8 and q.size and (q.min() < 0 or q.max() > 255):
            raise _Corrupt(f"'{key}' has values outside 0..255")
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
    folder = os.path.dirname(list_path)
    out = []
    with open(list_path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                out.extend(_expand_one(line, folder, list_path, number))
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
                with _open_shard(path) as f:
                    data = _record_data(f, int(offset), int(length))
                video_id, features, labels = _parse(data, self.feature_names, MAX_FRAMES)
            else:
                video_id, features, labels = _pickle_video(item, self.feature_names, MAX_FRAMES)
        except _Corrupt as err:
            raise InputError(f"record {index}: {err}", path) from None
        arrays = [features[name] for name in self.feature_names]
        problem = feature_problem(arrays, self.feature_names, self.feature_dims)
        out_of_range = [x for x in labels if not 0 <= x < self.num_classes]
        if out_of_range:
            problem = f"label {out_of_range[0]} is out of range: MODEL.num_classes is {self.num_classes}"
        if problem:
            raise InputError(f"record {index} ('{video_id}'): {problem}", path)
        return video_id, segments(arrays, self.seg_num), labels

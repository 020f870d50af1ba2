"""TFRecord files of tf.train.SequenceExample records, read and written without TensorFlow.

Framing, per record::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``. A record's data is
decoded by a small protobuf wire-format parser into its context features ``id`` (one bytes value)
and ``labels`` (int64_list, packed or not) and its feature lists of one bytes value per frame,
returned as uint8 ``[T, D]`` arrays (the first ``max_frames`` frames). The frames of a feature
list normally all have the same byte layout, so they are taken as one strided numpy view of the
record; irregular encodings fall back to a generic parser.

A bad CRC, a truncated shard or a malformed message raises InputError naming the shard and
``record N`` (0-based in that shard), or with ``skip_corrupt`` is logged, counted in ``stats``
and skipped (sequence/yt8m.py describes the counts).
"""
import functools
import os
import struct

import numpy as np

from core.errors import InputError
from core.log import log



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

class CorruptRecord(Exception):
    """A record that cannot be decoded; reported as an InputError naming shard and record."""


def _varint(buf, pos, end):
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise CorruptRecord("protobuf varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CorruptRecord("protobuf varint longer than 10 bytes")


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
            raise CorruptRecord("protobuf field number 0")
        if wire == 2:
            if pos < end and buf[pos] < 0x80:
                length = buf[pos]
                pos += 1
            else:
                length, pos = _varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise CorruptRecord(f"protobuf field {field} runs past the end of its message")
            yield field, wire, pos, stop
            pos = stop
        elif wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise CorruptRecord(f"protobuf field {field} runs past the end of its message")
            value = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
            yield field, wire, value, pos
        else:
            raise CorruptRecord(f"unsupported protobuf wire type {wire} (field {field})")


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
            raise CorruptRecord(f"int64_list value with wire type {wire}")
    return [v - (1 << 64) if v >= (1 << 63) else v for v in values]


def _varint_size(n):
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _frames(buf, arr, start, end, name, max_frames, empty_dims):
    """uint8 [T, D] of a tf.train.FeatureList of one-bytes-value frames, T capped at max_frames."""
    if start == end:
        return np.zeros((0, empty_dims.get(name, 0)), dtype=np.uint8)
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
    except (CorruptRecord, IndexError):
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
            raise CorruptRecord(f"frame {len(frames)} of '{name}' is not a bytes_list")
        values = _bytes_values(buf, s, e)
        if len(values) != 1:
            raise CorruptRecord(f"frame {len(frames)} of '{name}' has {len(values)} values, expected 1")
        p, q = values[0]
        if dim is None:
            dim = q - p
        elif q - p != dim:
            raise CorruptRecord(f"frame {len(frames)} of '{name}' has {q - p} bytes, frame 0 has {dim}")
        frames.append(arr[p:q])
    if not frames:
        return np.zeros((0, empty_dims.get(name, 0)), dtype=np.uint8)
    return np.stack(frames)


def decode_sequence_example(data, feature_names, max_frames, empty_dims=None):
    """(video_id, {name: uint8 [T, D]}, labels) of one serialized SequenceExample; raises
    CorruptRecord. `empty_dims` gives D of a feature list without frames ({name: D})."""
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
        raise CorruptRecord("missing context feature 'id'")
    kind, s, e = _feature_kind(buf, *ctx["id"])
    ids = _bytes_values(buf, s, e) if kind == 1 else []
    if len(ids) != 1:
        raise CorruptRecord("context feature 'id' is not one bytes value")
    video_id = bytes(buf[ids[0][0]:ids[0][1]]).decode("utf-8", "replace")
    labels = []
    if "labels" in ctx:
        kind, s, e = _feature_kind(buf, *ctx["labels"])
        if kind not in (3, None):
            raise CorruptRecord("context feature 'labels' is not an int64_list")
        labels = _int64_values(buf, s, e) if kind == 3 else []
    lists = _map_entries(buf, *feature_lists)
    arr = np.frombuffer(buf, dtype=np.uint8)
    features = {}
    for name in feature_names:
        if name not in lists:
            raise CorruptRecord(f"missing feature list '{name}'")
        features[name] = _frames(buf, arr, *lists[name], name, max_frames, empty_dims or {})
    return video_id, features, labels


# --------------------------------------------------------------------------- shards

_LEN = struct.Struct("<QI")


class _Truncated(CorruptRecord):
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
            report_corrupt(path, problem, skip_corrupt, stats, "the rest of the shard")
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
        raise CorruptRecord("data CRC mismatch")
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


def read_record(path, offset, length):
    """The CRC-checked data of the record at `offset` (from record_spans) of a shard."""
    with _open_shard(path) as f:
        return _record_data(f, offset, length)


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
                report_corrupt(path, f"record {index}: {err}", skip_corrupt, stats, "the rest of the shard")
                return
            except CorruptRecord as err:
                report_corrupt(path, f"record {index}: {err}", skip_corrupt, stats)
                continue
            yield index, data


def report_corrupt(path, message, skip_corrupt, stats, what="the record"):
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

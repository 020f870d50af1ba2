"""YouTube-8M frame-level reading: TFRecord framing, SequenceExample decoding, pickles, shards."""
import collections
import logging
import os
import pickle
import random

import numpy as np
import pytest

from sequence import tfrecord, yt8m
from core.errors import InputError


def make_videos(n, frames=5, seed=0, prefix="vid"):
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n):
        t = frames if isinstance(frames, int) else frames[i]
        features = {"rgb": rng.integers(0, 256, (t, 1024), dtype=np.uint8),
                    "audio": rng.integers(0, 256, (t, 128), dtype=np.uint8)}
        labels = sorted(rng.choice(3862, size=1 + i % 4, replace=False).tolist())
        videos.append((f"{prefix}{i}", features, labels))
    return videos


def expected(q):
    """The formula in float32, as the YouTube-8M starter code computes it."""
    return q.astype(np.float32) * np.float32(4 / 255) + np.float32(4 / 512 - 2)


def record_offsets(path):
    """Start offsets of the records of a valid shard, and the file size."""
    with open(path, "rb") as f:
        data = f.read()
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += 12 + int.from_bytes(data[pos:pos + 8], "little") + 4
    return offsets, len(data)


def assert_same(videos, got):
    assert len(got) == len(videos)
    for (vid, feats, labels), (gid, gfeats, glabels) in zip(videos, got):
        assert gid == vid and glabels == labels
        assert set(gfeats) == set(feats)
        for name, q in feats.items():
            assert gfeats[name].dtype == np.float32
            np.testing.assert_array_equal(gfeats[name], expected(q))


def test_crc32c_known_values_and_fallback():
    known = {b"": 0, b"123456789": 0xE3069283, b"\x00" * 32: 0x8A9136AA,  # RFC 3720 B.4
             b"\xff" * 32: 0x62A8AB43, bytes(range(32)): 0x46DD794E}
    for data, crc in known.items():
        assert tfrecord.crc32c(data) == crc and tfrecord.crc32c_fallback(data) == crc
        assert tfrecord._crc32c_numpy(data) == crc
    # TFRecord mask: rotate right by 15, add 0xa282ead8
    crc = tfrecord.crc32c(b"123456789")
    assert tfrecord.masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32
    rng = np.random.default_rng(1)
    for n in (0, 1, 8, 63, 64, 1023, 1024, 5000, 70001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tfrecord.crc32c_fallback(data) == tfrecord.crc32c(data), n
    assert tfrecord._crc32c_numpy(b"123456789") == 0xE3069283


@pytest.mark.parametrize("packed", [True, False])
def test_round_trip(tmp_path, packed):
    videos = make_videos(4, frames=[5, 1, 12, 3])
    videos[1] = (videos[1][0], videos[1][1], [])          # no labels at all
    videos[2] = (videos[2][0], videos[2][1], [0, 127, 128, 3861])  # 1- and 2-byte varints
    path = str(tmp_path / "train0000.tfrecord")
    assert tfrecord.write_tfrecord(path, videos, packed_labels=packed) == 4
    stats = collections.Counter()
    got = list(yt8m.iter_tfrecord_videos([path], stats=stats))
    assert_same(videos, got)
    assert stats["records"] == 4 and stats["skipped"] == 0 and stats["shards"] == 1


def test_dequantisation_matches_formula():
    q = np.arange(256, dtype=np.uint8).reshape(1, 256)
    out = yt8m.dequantize(q)
    np.testing.assert_array_equal(out, expected(q))
    exact = q.astype(np.float64) * 4 / 255 + 4 / 512 - 2
    assert np.abs(out - exact).max() <= 3.1e-7  # float32 rounding of terms near 2
    assert out[0, 0] == pytest.approx(-2 + 4 / 512) and out[0, 255] == pytest.approx(2 + 4 / 512)


def test_empty_shard_and_missing_file(tmp_path):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert list(yt8m.iter_tfrecord_videos([str(empty)])) == []
    missing = str(tmp_path / "nope.tfrecord")
    with pytest.raises(InputError, match="nope.tfrecord"):
        list(yt8m.iter_tfrecord_videos([missing]))


@pytest.mark.parametrize("cut", ["data", "header", "footer"])
def test_truncated_shard(tmp_path, caplog, cut):
    videos = make_videos(3)
    path = str(tmp_path / "train0001.tfrecord")
    tfrecord.write_tfrecord(path, videos)
    offsets, size = record_offsets(path)
    end = {"data": offsets[1] + 100, "header": offsets[1] + 5, "footer": offsets[2] - 2}[cut]
    with open(path, "r+b") as f:
        f.truncate(end)
    with pytest.raises(InputError) as err:
        list(yt8m.iter_tfrecord_videos([path]))
    assert path in str(err.value) and "record 1" in str(err.value)
    assert "truncated" in str(err.value)
    stats = collections.Counter()
    with caplog.at_level(logging.WARNING, logger=yt8m.__name__):
        got = list(yt8m.iter_tfrecord_videos([path], skip_corrupt=True, stats=stats))
    assert_same(videos[:1], got)
    assert stats["skipped"] == 1 and stats["truncated"] == 1 and stats["records"] == 1
    assert any("record 1" in r.getMessage() for r in caplog.records)


def test_bad_data_crc(tmp_path, caplog):
    videos = make_videos(3)
    path = str(tmp_path / "train0002.tfrecord")
    tfrecord.write_tfrecord(path, videos)
    offsets, _ = record_offsets(path)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offsets[1] + 12 + 500] ^= 0x01  # one bit of record 1's payload
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(InputError) as err:
        list(yt8m.iter_tfrecord_videos([path]))
    assert path in str(err.value) and "record 1" in str(err.value) and "CRC" in str(err.value)
    stats = collections.Counter()
    with caplog.at_level(logging.WARNING, logger=yt8m.__name__):
        got = list(yt8m.iter_tfrecord_videos([path, path], skip_corrupt=True, stats=stats))
    assert_same([videos[0], videos[2]] * 2, got)
    assert stats["skipped"] == 2 and stats["records"] == 4 and stats["truncated"] == 0
    assert any("CRC" in r.getMessage() for r in caplog.records)


def test_bad_length_crc_skips_rest_of_shard(tmp_path):
    videos = make_videos(3)
    path = str(tmp_path / "train0003.tfrecord")
    tfrecord.write_tfrecord(path, videos)
    offsets, _ = record_offsets(path)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offsets[2] + 8] ^= 0xFF  # record 2's length CRC
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(InputError, match="record 2: length field CRC"):
        list(yt8m.iter_tfrecord_videos([path]))
    stats = collections.Counter()
    got = list(yt8m.iter_tfrecord_videos([path], skip_corrupt=True, stats=stats))
    assert_same(videos[:2], got)
    assert stats["skipped"] == 1


def test_missing_rgb_field(tmp_path):
    rng = np.random.default_rng(3)
    audio_only = ("a0", {"audio": rng.integers(0, 256, (4, 128), dtype=np.uint8)}, [7])
    good = make_videos(1)[0]
    path = str(tmp_path / "train0004.tfrecord")
    tfrecord.write_tfrecord(path, [good, audio_only])
    with pytest.raises(InputError) as err:
        list(yt8m.iter_tfrecord_videos([path]))
    assert path in str(err.value) and "record 1" in str(err.value) and "'rgb'" in str(err.value)
    stats = collections.Counter()
    got = list(yt8m.iter_tfrecord_videos([path], skip_corrupt=True, stats=stats))
    assert [v[0] for v in got] == ["vid0"] and stats["skipped"] == 1
    # reading only the audio works for both
    got = list(yt8m.iter_tfrecord_videos([path], feature_names=["audio"]))
    assert [v[0] for v in got] == ["vid0", "a0"] and list(got[1][1]) == ["audio"]


def test_missing_id_and_garbage_payload(tmp_path):
    path = str(tmp_path / "bad.tfrecord")
    with open(path, "wb") as f:
        f.write(tfrecord.frame_record(b"\xff\xff\xff"))  # valid framing, not a message
    with pytest.raises(InputError, match="record 0"):
        list(yt8m.iter_tfrecord_videos([path]))
    with open(path, "wb") as f:
        f.write(tfrecord.frame_record(b""))  # empty message: no id
    with pytest.raises(InputError, match="record 0: missing context feature 'id'"):
        list(yt8m.iter_tfrecord_videos([path]))


def test_max_frames_cap(tmp_path):
    videos = make_videos(2, frames=[20, 4])
    path = str(tmp_path / "train0005.tfrecord")
    tfrecord.write_tfrecord(path, videos)
    got = list(yt8m.iter_tfrecord_videos([path], max_frames=7))
    assert got[0][1]["rgb"].shape == (7, 1024) and got[0][1]["audio"].shape == (7, 128)
    np.testing.assert_array_equal(got[0][1]["rgb"], expected(videos[0][1]["rgb"][:7]))
    assert got[1][1]["rgb"].shape == (4, 1024)
    default = list(yt8m.iter_tfrecord_videos([path]))
    assert default[0][1]["rgb"].shape == (20, 1024)


def test_irregular_encoding_uses_generic_parser():
    """A frame with an extra (unknown) field defeats the strided fast path; same result."""
    videos = make_videos(1, frames=6)
    vid, feats, labels = videos[0]
    fast = tfrecord.encode_sequence_example(vid, feats, labels)
    L = tfrecord._len_field
    frames = [L(1, tfrecord._bytes_feature([row.tobytes()])) for row in feats["rgb"]]
    frames[3] = L(1, tfrecord._bytes_feature([feats["rgb"][3].tobytes()]) + L(9, b"extra"))
    lists = (tfrecord._map_entry("rgb", b"".join(frames))
             + tfrecord._map_entry("audio", b"".join(
                 L(1, tfrecord._bytes_feature([r.tobytes()])) for r in feats["audio"])))
    context = (tfrecord._map_entry("id", tfrecord._bytes_feature([vid.encode()]))
               + tfrecord._map_entry("labels", tfrecord._int64_feature(labels, packed=False)))
    slow = L(2, lists) + L(1, context)  # feature_lists first, too
    a = yt8m.parse_sequence_example(fast)
    b = yt8m.parse_sequence_example(slow)
    assert a[0] == b[0] == vid and a[2] == b[2] == labels
    for name in feats:
        np.testing.assert_array_equal(a[1][name], b[1][name])
    capped = yt8m.parse_sequence_example(slow, max_frames=4)
    np.testing.assert_array_equal(capped[1]["rgb"], expected(feats["rgb"][:4]))


def test_pickle_format(tmp_path):
    videos = make_videos(3, frames=[8, 2, 5])
    items = [{"video": vid.encode() if i == 0 else vid, "feature": f["rgb"], "audio": f["audio"],
              "label": labels, "nframes": len(f["rgb"])}
             for i, (vid, f, labels) in enumerate(videos)]
    path = str(tmp_path / "train0.pkl")
    with open(path, "wb") as fh:
        pickle.dump(items, fh, protocol=2)
    assert_same(videos, list(yt8m.iter_pickle_videos([path])))
    got = list(yt8m.iter_pickle_videos([path], max_frames=3))
    assert got[0][1]["rgb"].shape == (3, 1024)
    del items[1]["audio"]
    with open(path, "wb") as fh:
        pickle.dump(items, fh, protocol=2)
    with pytest.raises(InputError) as err:
        list(yt8m.iter_pickle_videos([path]))
    assert path in str(err.value) and "record 1" in str(err.value)
    stats = collections.Counter()
    got = list(yt8m.iter_pickle_videos([path], skip_corrupt=True, stats=stats))
    assert [v[0] for v in got] == ["vid0", "vid2"] and stats["skipped"] == 1


def test_expand_shards(tmp_path):
    for name in ("train0002.tfrecord", "train0000.tfrecord", "train0001.tfrecord",
                 "validate0000.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    base = str(tmp_path)
    train = [os.path.join(base, f"train000{i}.tfrecord") for i in range(3)]
    assert yt8m.expand_shards("train*.tfrecord", base) == train
    assert yt8m.expand_shards(os.path.join(base, "train*.tfrecord")) == train
    assert yt8m.expand_shards(["train0002.tfrecord", "train000[01].tfrecord",
                               "train0001.tfrecord"], base) == train
    sub = tmp_path / "lists"
    sub.mkdir()
    (sub / "train.list").write_text("# shards\n../train0001.tfrecord\n\n../train000[02].tfrecord\n")
    assert yt8m.expand_shards("lists/train.list", base) == train
    with pytest.raises(InputError, match=r"test\*\.tfrecord"):
        yt8m.expand_shards("test*.tfrecord", base)
    with pytest.raises(InputError, match="shard not found"):
        yt8m.expand_shards(["train0000.tfrecord", "train9.tfrecord"], base)
    (sub / "bad.list").write_text("../train0000.tfrecord\n../nothing*.tfrecord\n")
    with pytest.raises(InputError, match=r"bad\.list:2: no shard matches"):
        yt8m.expand_shards("lists/bad.list", base)


@pytest.mark.parametrize("num_shards,world", [(5, 2), (4, 4), (2, 3), (1, 2)])
def test_rank_split_disjoint_and_complete(tmp_path, num_shards, world):
    shards = []
    all_ids = []
    for s in range(num_shards):
        videos = make_videos(3 + s, frames=2, seed=s, prefix=f"s{s}v")
        path = str(tmp_path / f"train{s:04d}.tfrecord")
        tfrecord.write_tfrecord(path, videos)
        shards.append(path)
        all_ids += [v[0] for v in videos]
    plans = [yt8m.shards_for_rank(shards, r, world) for r in range(world)]
    if num_shards >= world:
        assert all(p.stride == 1 for p in plans)
        assert sorted(s for p in plans for s in p.shards) == shards
    else:
        assert [p.offset for p in plans] == list(range(world))
    seen = [[v[0] for v in yt8m.iter_tfrecord_videos(p, feature_names=["audio"])] for p in plans]
    flat = [i for ids in seen for i in ids]
    assert len(flat) == len(set(flat)) and sorted(flat) == sorted(all_ids)
    assert all(seen), "every process gets some videos here"


def test_rank_split_bad_arguments():
    with pytest.raises(ValueError):
        yt8m.shards_for_rank(["a"], 2, 2)


@pytest.mark.parametrize("size,n", [(1, 10), (8, 200), (50, 20)])
def test_shuffle_buffer_bounded_permutation(size, n):
    held = {"in": 0, "out": 0, "max": 0}

    def source():
        for i in range(n):
            held["in"] += 1
            held["max"] = max(held["max"], held["in"] - held["out"])
            yield i

    out = []
    for item in yt8m.shuffle_buffer(source(), size, np.random.default_rng(0)):
        held["out"] += 1
        out.append(item)
    assert sorted(out) == list(range(n))
    assert held["max"] <= max(size, 1) + 1  # the buffer plus the item being swapped in
    if size > 1:
        assert out != list(range(n))
    again = list(yt8m.shuffle_buffer(range(n), size, random.Random(5)))
    assert sorted(again) == list(range(n))


@pytest.mark.parametrize("name", ["attention_lstm", "attention_cluster", "nextvlad"])
def test_yt8m_configs_keep_the_base_keys(name):
    import yaml

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "configs", f"{name}.yaml")) as f:
        base = yaml.safe_load(f)
    with open(os.path.join(root, "configs", f"{name}_yt8m.yaml")) as f:
        cfg = yaml.safe_load(f)
    for section, values in base.items():
        assert set(cfg[section]) == set(values), section
    model = cfg["MODEL"]
    assert model["num_classes"] == 3862
    assert model["feature_names"] == ["rgb", "audio"] and model["feature_dims"] == [1024, 128]
    if name == "attention_lstm":
        assert model["embedding_size"] == 512 and model["lstm_size"] == 1024
    assert cfg["TRAIN"]["filelist"].endswith(".tfrecord")


def _tf_example_classes():
    """tf.train SequenceExample & co built at run time with the protobuf runtime (a paddle
    dependency), to check our hand-written wire format against an independent implementation."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="yt8m_test_example.proto", package="tft",
                                            syntax="proto3")

    def message(name, fields, nested=()):
        msg = fd.message_type.add(name=name)
        for entry_name, value_type in nested:
            entry = msg.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
            entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                            type_name=value_type)
        for fname, number, ftype, label, type_name in fields:
            kwargs = {"type_name": type_name} if type_name else {}
            if fname in ("bytes_list", "float_list", "int64_list"):
                kwargs["oneof_index"] = 0
            msg.field.add(name=fname, number=number, type=ftype, label=label, **kwargs)
        return msg

    R, O = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BytesList", [("value", 1, F.TYPE_BYTES, R, None)])
    message("FloatList", [("value", 1, F.TYPE_FLOAT, R, None)])
    message("Int64List", [("value", 1, F.TYPE_INT64, R, None)])
    feature = message("Feature", [("bytes_list", 1, F.TYPE_MESSAGE, O, ".tft.BytesList"),
                                  ("float_list", 2, F.TYPE_MESSAGE, O, ".tft.FloatList"),
                                  ("int64_list", 3, F.TYPE_MESSAGE, O, ".tft.Int64List")])
    feature.oneof_decl.add(name="kind")
    message("Features", [("feature", 1, F.TYPE_MESSAGE, R, ".tft.Features.FeatureEntry")],
            [("FeatureEntry", ".tft.Feature")])
    message("FeatureList", [("feature", 1, F.TYPE_MESSAGE, R, ".tft.Feature")])
    message("FeatureLists", [("feature_list", 1, F.TYPE_MESSAGE, R,
                              ".tft.FeatureLists.FeatureListEntry")],
            [("FeatureListEntry", ".tft.FeatureList")])
    message("SequenceExample", [("context", 1, F.TYPE_MESSAGE, O, ".tft.Features"),
                                ("feature_lists", 2, F.TYPE_MESSAGE, O, ".tft.FeatureLists")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tft.SequenceExample"))


def test_wire_format_matches_protobuf_runtime():
    SequenceExample = _tf_example_classes()
    vid, feats, labels = make_videos(1, frames=4)[0]
    labels = [3, 300, 3861]
    # ours -> protobuf runtime
    ex = SequenceExample.FromString(tfrecord.encode_sequence_example(vid, feats, labels))
    assert ex.context.feature["id"].bytes_list.value == [vid.encode()]
    assert list(ex.context.feature["labels"].int64_list.value) == labels
    rows = [f.bytes_list.value[0] for f in ex.feature_lists.feature_list["rgb"].feature]
    assert rows == [r.tobytes() for r in feats["rgb"]]
    # protobuf runtime (packed labels, its own field order) -> ours
    ex = SequenceExample()
    ex.context.feature["labels"].int64_list.value.extend(labels)
    ex.context.feature["id"].bytes_list.value.append(vid.encode())
    for name in ("audio", "rgb"):
        for row in feats[name]:
            ex.feature_lists.feature_list[name].feature.add().bytes_list.value.append(row.tobytes())
    got_id, got, got_labels = yt8m.parse_sequence_example(ex.SerializeToString())
    assert got_id == vid and got_labels == labels
    for name in feats:
        np.testing.assert_array_equal(got[name], expected(feats[name]))


def test_reader_with_numpy_crc_fallback(tmp_path, monkeypatch):
    videos = make_videos(2, frames=3)
    path = str(tmp_path / "train0006.tfrecord")
    tfrecord.write_tfrecord(path, videos)
    monkeypatch.setattr(tfrecord, "crc32c", tfrecord.crc32c_fallback)
    assert_same(videos, list(yt8m.iter_tfrecord_videos([path])))

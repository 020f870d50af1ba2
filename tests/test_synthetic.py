"""The synthetic library: real decodable mp4s, VideoTag lists, reproducible, labels visible in pixels."""
import itertools
import os

import cv2
import decord
import numpy as np
import pytest

from videotag import synthetic
from core.errors import InputError

SIZE = (112, 84)  # the default, so thresholds below are measured where it matters
FPS, SECONDS = 10, 2.0  # 20 frames
TEMPORAL = [name for pair in synthetic.TEMPORAL_PAIRS for name in pair]
SINGLE_FRAME_GROUPS = [list(synthetic.COLOURS), synthetic.SHAPES, synthetic.COUNTS, synthetic.BACKGROUNDS]


def make(folder, num_videos=16, seed=3):
    return synthetic.make_library(str(folder), num_videos=num_videos, seed=seed, size=SIZE, fps=FPS, seconds=SECONDS)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make(tmp_path_factory.mktemp("library"))


def read_lists(save_dir):
    """{split: [(relative path, [label names])]} parsed from the .list files."""
    names = open(os.path.join(save_dir, "labels.txt")).read().splitlines()
    out = {}
    for split in synthetic.SPLITS:
        rows = [line.split() for line in open(os.path.join(save_dir, f"{split}.list")).read().splitlines()]
        assert all(int(i) < len(names) for row in rows for i in row[1:])
        out[split] = [(row[0], [names[int(i)] for i in row[1:]]) for row in rows]
    return out


def decode(path):
    reader = decord.VideoReader(path)
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def object_mask(frames):
    """Objects are saturated colours; the background and its checkerboard are grey."""
    r, g, b = np.moveaxis(frames.astype(np.int16), -1, 0)  # faster than reducing a length-3 axis
    return np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b) > 20


def measure_temporal(frames):
    """Temporal labels read back from pixels alone, without the plan."""
    mask = object_mask(frames)
    background = ~mask
    grey = (frames @ np.full(3, 1 / 3) * background).sum(axis=(1, 2)) / background.sum(axis=(1, 2))
    area = mask.sum(axis=(1, 2))
    quarter = len(frames) // 4
    labels = []
    fade = grey[-quarter:].mean() / grey[:quarter].mean()
    if max(fade, 1 / fade) > 1.4:  # seen: steady 1.0, fades > 1.9
        labels.append("fade_in" if fade > 1 else "fade_out")
    present = area > 0.1 * area.max()  # not 0: codec ghosts of up to ~50 pixels linger a frame
    if not present.all():
        assert present.any() and (np.diff(present.astype(int)) != 0).sum() == 1  # one switch only
        labels.append("appears" if present[-1] else "disappears")
    shown = area[present]
    growth = shown[-2:].mean() / shown[:2].mean()
    if max(growth, 1 / growth) > 1.6:  # seen: steady size < 1.3 (fading shifts the mask), changes > 2
        labels.append("grows" if growth > 1 else "shrinks")
    return sorted(labels, key=synthetic.LABELS.index)


def temporal(labels):
    return [name for name in labels if name in TEMPORAL]


def plans(count=80, seed=11):
    return [synthetic.plan_video(np.random.default_rng([seed, i]), SIZE, 20) for i in range(count)]


def test_files_lists_and_decoding(library):
    save_dir = library["save_dir"]
    assert open(library["labels_file"]).read().splitlines() == synthetic.LABELS
    lists = read_lists(save_dir)
    assert [len(rows) for rows in lists.values()] == [10, 3, 3]  # 60/20/20 of 16
    for split, rows in lists.items():
        assert [os.path.join(save_dir, path) for path, _ in rows] == library["videos"][split]
        for path, labels in rows:
            assert path.startswith(f"videos/{split}/") and path.endswith(".mp4")
            for group in SINGLE_FRAME_GROUPS:
                assert len(set(labels) & set(group)) == 1
            assert 1 <= len(temporal(labels)) <= 2
            assert all(len(set(labels) & set(pair)) <= 1 for pair in synthetic.TEMPORAL_PAIRS)
            frames = decode(os.path.join(save_dir, path))
            assert frames.shape == (library["num_frames"], SIZE[1], SIZE[0], 3) == (20, 84, 112, 3)


def test_same_seed_same_library_other_seed_differs(library, tmp_path):
    again, other = make(tmp_path / "again"), make(tmp_path / "other", seed=4)
    for name in ["labels.txt", *(f"{split}.list" for split in synthetic.SPLITS)]:
        assert open(os.path.join(again["save_dir"], name)).read() == open(os.path.join(library["save_dir"], name)).read()
    assert read_lists(other["save_dir"]) != read_lists(library["save_dir"])
    first, same, different = (decode(lib["videos"]["train"][0]) for lib in (library, again, other))
    assert np.array_equal(first, same)
    assert not np.array_equal(first, different)


def test_decoded_pixels_show_every_label(library):
    for split, rows in read_lists(library["save_dir"]).items():
        for path, labels in rows:
            frames = decode(os.path.join(library["save_dir"], path))
            assert measure_temporal(frames) == temporal(labels), path
            mask = object_mask(frames)
            t = int(mask.sum(axis=(1, 2)).argmax())  # a frame showing the objects
            areas = cv2.connectedComponentsWithStats(mask[t].astype(np.uint8))[2][1:, cv2.CC_STAT_AREA]
            objects = (areas > 0.3 * areas.max()).sum()  # objects share a size; codec specks are tiny
            assert synthetic.COUNTS[objects - 1] in labels, path
            mean = frames[t][mask[t]].mean(axis=0)
            cosine = {name: mean @ rgb / np.linalg.norm(rgb) for name, rgb in synthetic.COLOURS.items()}
            assert max(cosine, key=cosine.get) in labels, path
            t = int(frames.mean(axis=(1, 2, 3)).argmax())  # the brightest frame shows texture best
            edges = np.abs(np.diff(frames[t].astype(float).mean(-1), axis=1))[~mask[t][:, 1:]].mean()
            assert ("textured_background" in labels) == (edges > 3), path  # seen: plain < 1, textured > 5


def test_rendered_pixels_show_temporal_labels_for_many_plans():
    seen = set()
    for plan in plans():
        assert measure_temporal(synthetic.render(plan)) == temporal(plan.labels)
        seen.update(plan.labels)
    assert seen == set(synthetic.LABELS)


def test_reversal_flips_temporal_labels_only():
    for name in synthetic.LABELS:
        assert synthetic.reversed_labels(synthetic.reversed_labels([name])) == [name]
    assert synthetic.reversed_labels(["red", "circle", "fade_in", "grows"]) == ["red", "circle", "fade_out", "shrinks"]
    for plan in plans(30):
        backwards = synthetic.reverse_plan(plan)
        frames = synthetic.render(plan)
        assert np.array_equal(synthetic.render(backwards), frames[::-1])
        assert backwards.labels == synthetic.reversed_labels(plan.labels)
        assert [n for n in backwards.labels if n not in TEMPORAL] == [n for n in plan.labels if n not in TEMPORAL]
        assert set(temporal(backwards.labels)).isdisjoint(temporal(plan.labels))
        assert measure_temporal(frames[::-1]) == temporal(backwards.labels)


def test_objects_stay_apart_and_inside_the_centre_crop():
    width, height = SIZE
    left = (width - height) / 2  # short-side resize + centre crop keeps the central square
    for plan in plans(200):
        x, y, r = plan.centres[..., 0], plan.centres[..., 1], plan.radius[:, None]
        assert (x - r >= left).all() and (x + r <= left + height).all() and (y - r >= 0).all() and (y + r <= height).all()
        for a, b in itertools.combinations(range(plan.centres.shape[1]), 2):
            gap = np.linalg.norm(plan.centres[:, a] - plan.centres[:, b], axis=1)
            assert (gap > 2 * plan.radius).all()


def test_cli_and_bad_sizes(tmp_path, capsys):
    synthetic.main(["--save_dir", str(tmp_path), "--num_videos", "5", "--width", "64", "--height", "48"])
    assert "wrote 3 train, 1 val, 1 test videos of 30 frames" in capsys.readouterr().out
    first_video = read_lists(tmp_path)["test"][0][0]
    assert decode(str(tmp_path / first_video)).shape == (30, 48, 64, 3)
    with pytest.raises(InputError):
        synthetic.make_library(str(tmp_path), size=(65, 48))

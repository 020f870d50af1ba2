"""Stage one extractor, in process: sampling, decoding, weights schemes, features, outputs.

Tiny settings (4 segments, short side 40, crop 32) keep ResNet-101 fast on CPU; one model and
one exported predictor are shared by the whole module."""
import concurrent.futures
import dataclasses
import inspect
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import extractor  # noqa: F401  (before paddle)
import decord
import numpy as np
import paddle
import pytest

from extractor import cli, pipeline, video as video_module, videos as video_listing
from extractor.pipeline import InferSettings, Video, iter_video_features
from extractor.predictor import DygraphBackbone, build_model, create_backbone
from extractor.resnet import ResNet
from extractor.sampling import preprocess, segment_middles
from extractor.video import read_sampled_crops
from extractor.weights import conv_bn_units, load_weights
from core.config import load_config
from extractor.cli import DEFAULT_CONFIG
from core.errors import InputError
from videos import frame_pattern, write_video

SETTINGS = InferSettings(seg_num=4, short_size=40, target_size=32, batch_size=3, num_workers=2)
TINY = ["-o", "INFER.seg_num=4", "-o", "INFER.short_size=40", "-o", "INFER.target_size=32",
        "-o", "INFER.batch_size=3"]


@pytest.fixture(scope="module")
def model():
    return build_model(101)


@pytest.fixture(scope="module")
def backbone(model, tmp_path_factory):
    built = create_backbone(model=model, image_size=32, cache_dir=str(tmp_path_factory.mktemp("cache")))
    assert built.backend == "inference"
    return built


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_video(str(folder / "long.mp4"), 41, seed=1),
            write_video(str(folder / "short.mp4"), 3, seed=2),
            write_video(str(folder / "tall.mp4"), 9, height=72, width=56, seed=3)]


def reference_features(model, path):
    """The plain way: decode the sampled frames with decord, preprocess, dygraph forward."""
    reader = decord.VideoReader(path)
    frames = reader.get_batch(segment_middles(len(reader), SETTINGS.seg_num)).asnumpy()
    return DygraphBackbone(model)(preprocess(frames, SETTINGS.short_size, SETTINGS.target_size))


def test_segment_middles_follow_the_reference_rule():
    for frames, segs in [(41, 4), (300, 300), (301, 300), (9000, 300), (1000, 7)]:
        step = frames // segs
        assert segment_middles(frames, segs) == [(step - 1) // 2 + i * step for i in range(segs)]
    assert segment_middles(41, 4) == [4, 14, 24, 34]
    assert segment_middles(3, 4) == [0, 1, 2, 0]
    assert segment_middles(1, 3) == [0, 0, 0]


def test_decodes_the_sampled_frames_a_chunk_at_a_time(clips, monkeypatch):
    requested, cropped = [], []
    original, original_crop = decord.VideoReader.get_batch, video_module.crop_frames
    monkeypatch.setattr(video_module, "DECODE_CHUNK", 2)
    monkeypatch.setattr(decord.VideoReader, "get_batch",
                        lambda self, indices: requested.append(list(indices)) or original(self, indices))
    monkeypatch.setattr(video_module, "crop_frames",
                        lambda frames, *args: cropped.append(len(frames)) or original_crop(frames, *args))
    crops, info = read_sampled_crops(clips[0], 4, 48, 48)
    assert info["indices"] == [4, 14, 24, 34] and info["frame_count"] == 41 and info["fps"] == 10.0
    assert requested == [[4], [14], [24], [34]] and cropped == [2, 2]  # each seek checked; 2 frames held
    for crop, index in zip(crops, info["indices"]):  # brightness tells the frame index
        errors = [np.abs(crop.astype(int) - frame_pattern(i, 48, 64, seed=1)[:, 8:56]).mean()
                  for i in range(41)]
        assert int(np.argmin(errors)) == index
    requested.clear()
    cropped.clear()
    crops, info = read_sampled_crops(clips[1], 4, 40, 32)
    assert info["indices"] == [0, 1, 2, 0] and requested == [[0], [1], [2]] and cropped == [2, 1]
    assert crops.shape == (4, 32, 32, 3) and np.array_equal(crops[0], crops[3])


def test_features_equal_a_plain_dygraph_forward(model, backbone, clips):
    assert inspect.ismethod(model.forward)  # exporting left the reference model plain dygraph
    results = list(iter_video_features(clips, SETTINGS, backbone))
    assert [r.video.path for r in results] == clips
    for result in results:
        assert result.ok and result.features.dtype == np.float32 and result.features.shape == (4, 2048)
        expected = reference_features(model, result.video.path)
        assert np.abs(result.features - expected).max() <= 1e-3 * np.abs(expected).max()
    cfg = load_config(DEFAULT_CONFIG, [item for item in TINY if item != "-o"])
    [from_config] = iter_video_features(clips[:1], cfg, backbone)
    np.testing.assert_allclose(from_config.features, results[0].features, rtol=1e-6)


def scheme_names(scheme, prefix=""):
    """Our parameter name -> its name in the "static" or "dygraph" scheme, as weights.py maps it
    (test_scheme_names_match_the_published_checkpoints pins the mapping to published names)."""
    bn_names = {"weight": "scale", "bias": "offset", "_mean": "mean", "_variance": "variance"}
    names = {}
    for ours, static_conv, static_bn, dygraph in conv_bn_units(101):
        names[f"{ours}.conv.weight"] = (f"{static_conv}_weights" if scheme == "static"
                                        else f"{dygraph}._conv.weight")
        for param, static_param in bn_names.items():
            names[f"{ours}.bn.{param}"] = (f"{static_bn}_{static_param}" if scheme == "static"
                                           else f"{dygraph}._batch_norm.{param}")
    return {ours: prefix + name for ours, name in names.items()}


def test_scheme_names_match_the_published_checkpoints():
    static, dygraph = scheme_names("static"), scheme_names("dygraph", "backbone.")
    assert static["stem.conv.weight"] == "conv1_weights"
    assert static["stem.bn.weight"] == "bn_conv1_scale"
    assert static["stages.0.0.shortcut.conv.weight"] == "res2a_branch1_weights"
    assert static["stages.0.0.shortcut.bn.bias"] == "bn2a_branch1_offset"
    assert static["stages.1.3.conv2.conv.weight"] == "res3d_branch2b_weights"
    assert static["stages.2.0.conv1.conv.weight"] == "res4a_branch2a_weights"
    assert static["stages.2.22.conv1.bn._mean"] == "bn4b22_branch2a_mean"
    assert static["stages.3.2.conv3.bn._variance"] == "bn5c_branch2c_variance"
    assert dygraph["stem.conv.weight"] == "backbone.conv._conv.weight"
    assert dygraph["stages.0.0.conv1.bn._mean"] == "backbone.res2a.conv0._batch_norm._mean"
    assert dygraph["stages.0.0.shortcut.conv.weight"] == "backbone.res2a.short._conv.weight"
    assert dygraph["stages.2.22.conv3.bn._variance"] == "backbone.res4b22.conv2._batch_norm._variance"


def test_every_naming_scheme_gives_the_same_features(model, tmp_path):
    state = {key: value.numpy() for key, value in model.state_dict().items()}
    assert set(state) == set(scheme_names("static"))
    checkpoints = {
        "static": {**{scheme_names("static")[k]: v for k, v in state.items()},
                   "fc_0.w_0": np.zeros((2048, 5), "float32"), "fc_0.b_0": np.zeros(5, "float32")},
        "dygraph": {**{scheme_names("dygraph", "backbone.")[k]: v for k, v in state.items()},
                    "head.fc.weight": np.zeros((2048, 5), "float32")},
        "dygraph-bare": {scheme_names("dygraph")[k]: v for k, v in state.items()},
        "ours-classifier": {**{"backbone." + k: v for k, v in state.items()},
                            "fc.weight": np.zeros((2048, 5), "float32")},
        "ours": state,
    }
    images = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype("float32")
    expected = DygraphBackbone(model)(images)
    paddle.seed(123)
    target = ResNet(101)
    target.eval()
    assert not np.allclose(DygraphBackbone(target)(images), expected)
    for name, checkpoint in checkpoints.items():
        path = str(tmp_path / f"{name}.pdparams")
        paddle.save({k: paddle.to_tensor(v) for k, v in checkpoint.items()}
                    if name.startswith("ours") else checkpoint, path)
        missing, unexpected = load_weights(target, path)
        assert (missing, unexpected) == ([], []), name
        np.testing.assert_allclose(DygraphBackbone(target)(images), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=name)

    partial = dict(state)
    del partial["stages.3.2.conv3.bn.bias"]
    partial["res9z_branch2a_weights"] = np.zeros(3, "float32")
    paddle.save(partial, str(tmp_path / "partial.pdparams"))
    missing, unexpected = load_weights(target, str(tmp_path / "partial.pdparams"))
    assert missing == ["stages.3.2.conv3.bn.bias"] and unexpected == ["res9z_branch2a_weights"]

    wrong = dict(state, **{"stages.1.0.conv2.conv.weight": np.zeros((128, 128, 1, 1), "float32")})
    paddle.save(wrong, str(tmp_path / "wrong.pdparams"))
    with pytest.raises(InputError, match="stages.1.0.conv2.conv.weight"):
        load_weights(target, str(tmp_path / "wrong.pdparams"))


def make_bad_videos(folder):
    """One of each kind of bad input, by the reason failures.txt should give."""
    bad = {"missing.mp4": "file not found", "folder.mp4": "not a file", "empty.mp4": "empty file",
           "text.mp4": "a text file, not a video", "zero.mp4": "no video stream",
           "truncated.mp4": "file is cut short (2.0 KB of "}
    os.makedirs(folder / "folder.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video\n" * 50)
    write_video(str(folder / "zero.mp4"), 0)
    full = write_video(str(folder / "full.mp4"), 30)
    with open(full, "rb") as f:
        (folder / "truncated.mp4").write_bytes(f.read()[:2000])
    os.remove(full)
    return {str(folder / name): reason for name, reason in bad.items()}


def test_list_run_bad_videos_resume_and_hdf5(model, backbone, clips, tmp_path):
    bad = make_bad_videos(tmp_path)
    twin_a = write_video(str(tmp_path / "a" / "same.mp4"), 8, seed=4)
    twin_b = write_video(str(tmp_path / "b" / "same.mp4"), 8, seed=5)
    good = clips + [twin_a, twin_b]
    good_list, listing = tmp_path / "good.list", tmp_path / "videos.list"
    good_list.write_text("".join(f"{path} {i} 7\n" for i, path in enumerate(good)))
    listing.write_text(good_list.read_text() + "".join(f"{path}\n" for path in bad)
                       + f"{clips[0]} 0 7\n")  # a repeated line is extracted once

    npy_dir, h5_dir = tmp_path / "npy", tmp_path / "h5"
    args = cli.parse_args(["--filelist", str(listing), "--save_dir", str(npy_dir)] + TINY)
    assert cli.extract(args, backbone=backbone) == 1
    failures = dict(line.split("\t")[:2] for line in (npy_dir / "failures.txt").read_text().splitlines())
    assert set(failures) == set(bad)
    for path, reason in bad.items():
        assert failures[path].startswith(reason), (path, failures[path])
    lines = (npy_dir / "features.list").read_text().splitlines()
    assert len(lines) == len(good)
    for i, (line, path) in enumerate(zip(lines, good)):
        relative, *labels = line.split()
        assert relative == video_listing.video_id(path) + ".npy" and labels == [str(i), "7"]
        features = np.load(npy_dir / relative)
        expected = reference_features(model, path)
        assert features.shape == (4, 2048)
        assert np.abs(features - expected).max() <= 1e-3 * np.abs(expected).max()
    assert not np.allclose(np.load(npy_dir / lines[3].split()[0]), np.load(npy_dir / lines[4].split()[0]))

    # A rerun skips every complete output: the network is never called.
    mtimes = {line: os.path.getmtime(npy_dir / line.split()[0]) for line in lines}
    args.filelist = str(good_list)
    assert cli.extract(args, backbone=lambda images: pytest.fail("a finished video was redone")) == 0
    assert {line: os.path.getmtime(npy_dir / line.split()[0]) for line in lines} == mtimes
    assert (npy_dir / "failures.txt").read_text() == ""

    args = cli.parse_args(["--filelist", str(good_list), "--save_dir", str(h5_dir),
                           "--format", "hdf5"] + TINY)
    assert cli.extract(args, backbone=backbone) == 0
    import h5py

    with h5py.File(h5_dir / "features.h5", "r") as store:
        for line in (h5_dir / "features.list").read_text().splitlines():
            key = line.split()[0].split("#", 1)[1]
            assert line.startswith("features.h5#")
            dataset = store[key]
            np.testing.assert_allclose(dataset[()], np.load(npy_dir / (key + ".npy")), rtol=1e-5, atol=1e-6)
            assert dataset.attrs["frame_count"] > 0 and len(dataset.attrs["indices"]) == 4
            assert os.path.exists(dataset.attrs["source"]) and dataset.attrs["fps"] == 10.0
    assert not os.path.exists(h5_dir / ".staging")


@pytest.mark.smoke
def test_videos_decode_in_worker_processes_as_in_this_one(backbone, clips, tmp_path):
    """Decoding runs in processes (paddle.inference holds the GIL through a network call, which
    stops a decoding thread); num_workers 0 decodes in this process. Same features, same errors."""
    bad = make_bad_videos(tmp_path)
    videos = clips + sorted(bad)
    before = {p.pid for p in multiprocessing.active_children()}
    here = list(iter_video_features(videos, dataclasses.replace(SETTINGS, num_workers=0), backbone))
    assert {p.pid for p in multiprocessing.active_children()} == before
    apart = list(iter_video_features(videos, dataclasses.replace(SETTINGS, num_workers=3), backbone))
    workers = {p.pid for p in multiprocessing.active_children()} - before
    assert len(workers) == 3 and os.getpid() not in workers
    assert [r.video.path for r in apart] == [r.video.path for r in here] == videos
    for mine, theirs in zip(here, apart):
        assert (mine.error, theirs.error) == (None, None) or theirs.error.startswith(bad[theirs.video.path])
        assert mine.error == theirs.error and mine.detail == theirs.detail
        if mine.ok:
            assert np.array_equal(mine.features, theirs.features) and mine.info == theirs.info
    again = list(iter_video_features(videos[:2], dataclasses.replace(SETTINGS, num_workers=3), backbone))
    assert {p.pid for p in multiprocessing.active_children()} - before == workers  # kept, not restarted
    assert all(np.array_equal(a.features, b.features) for a, b in zip(again, apart))


def test_a_killed_decoding_process_costs_no_video(backbone, clips):
    """A decoding process that dies (here: killed, as the OOM killer would) fails the videos then in
    its pool; each is decoded again in new processes, so every video still gets its features."""
    settings, videos = dataclasses.replace(SETTINGS, num_workers=2), clips * 4
    expected = [r.features for r in iter_video_features(videos, settings, backbone)]
    killed, results = pipeline.decoding_pool(2), []
    for result in iter_video_features(videos, settings, backbone):
        if not results:  # the next videos are being decoded now, 9 more to come
            for worker in killed._processes.values():
                os.kill(worker.pid, signal.SIGKILL)
        results.append(result)
    assert [r.error for r in results] == [None] * len(videos)
    assert all(np.array_equal(r.features, f) for r, f in zip(results, expected))
    assert pipeline.decoding_pool(2) is not killed and not pipeline.decoding_pool(2)._broken


def test_decoding_stays_in_this_process_when_its_processes_cannot_start(backbone, clips, monkeypatch, logs):
    """Workers that die on start (as in a script that runs the extractor when imported, without
    `if __name__ == "__main__":`): one warning, then every video decoded in this process."""
    expected = [r.features for r in iter_video_features(clips, dataclasses.replace(SETTINGS, num_workers=0), backbone)]
    dying = concurrent.futures.ProcessPoolExecutor(2, multiprocessing.get_context("spawn"), initializer=sys.exit)
    monkeypatch.setattr(pipeline, "decoding_pool", lambda workers: dying)
    monkeypatch.setattr(pipeline, "_processes_start", None)
    logs.warnings.clear()  # those of the run above
    results = list(iter_video_features(clips * 2, SETTINGS, backbone))
    assert [r.error for r in results] == [None] * 6
    assert all(np.array_equal(r.features, f) for r, f in zip(results, expected * 2))
    assert [w for w in logs.warnings if "decoding processes could not start" in w] == [logs.warnings[0]]
    assert pipeline._processes_start is False


KILLED_MID_RUN = """
import os, signal, sys
sys.path[:0] = [{root!r}]
from extractor import pipeline
from extractor.pipeline import InferSettings, iter_video_features
if __name__ == "__main__":
    settings = InferSettings(seg_num=2, short_size=32, target_size=32, batch_size=4, num_workers=2)
    for result in iter_video_features({videos!r}, settings, backbone=lambda x: x.reshape(len(x), -1)[:, :4]):
        print(" ".join(str(p.pid) for p in pipeline.decoding_pool(2)._processes.values()), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no shutdown reaches the workers
"""


def test_decoding_processes_end_when_the_main_process_is_killed(clips):
    """Killed, the main process tells its workers nothing; they must not live on (they would hold its
    stdout open, so this run would not return)."""
    script = KILLED_MID_RUN.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   videos=clips * 3)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL
    workers = [int(pid) for pid in run.stdout.split()]
    assert len(workers) == 2

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(")")[2].split()[0] != "Z"
        except OSError:
            return False
    deadline = time.monotonic() + 30  # a bound on waiting, not a speed
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def test_folder_input_names_videos_by_relative_path(tmp_path):
    write_video(str(tmp_path / "in" / "x" / "clip.mp4"), 2)
    write_video(str(tmp_path / "in" / "y" / "clip.mp4"), 2)
    (tmp_path / "in" / "notes.txt").write_text("not listed")
    found = video_listing.find_videos(str(tmp_path / "in"))
    assert [v.video_id for v in found] == ["x/clip", "y/clip"]
    assert video_listing.video_id("../up/./v.mp4") == "__/up/v" and video_listing.video_id("/abs/v.avi") == "abs/v"
    twins = video_listing.unique_videos([Video("a/v.mp4", "a/v"), Video("a/v.avi", "a/v"), Video("b.mp4", "b")],
                                        "list")
    assert [v.video_id for v in twins] == ["a/v.mp4", "a/v.avi", "b"]  # only twins keep their extension
    with pytest.raises(InputError, match="would both be saved"):
        video_listing.unique_videos([Video("x/a/v.mp4", "a/v"), Video("y/a/v.mp4", "a/v")], "list")


def test_input_errors_exit_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--filelist", str(tmp_path / "absent.list"), "--save_dir", str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith("video list not found")

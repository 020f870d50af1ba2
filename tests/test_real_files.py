"""Real-world files: cut downloads, damaged and fake videos, links, twin names, reruns with other
settings, unwritable outputs, variable frame rates. Each test makes its broken files itself."""
import errno
import json
import os
import re
import shutil
import subprocess
import sys

import extractor  # noqa: F401  (h5py before paddle)
import h5py
import numpy as np
import pytest

from core.errors import exit_on_input_error
from extractor import cli
from extractor.pipeline import InferSettings, iter_video_features
from extractor.predictor import DygraphBackbone, build_model, weights_digest
from extractor.video import VideoError, read_sampled_crops
from videos import write_video
from videotag import commands, journal, tagging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["-o", "INFER.seg_num=4", "-o", "INFER.short_size=32", "-o", "INFER.target_size=32",
        "-o", "INFER.batch_size=8", "-o", "MODEL.num_layers=50", "--extractor_backend", "dygraph"]
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def h264_clip(path, *flags, keyframes_every=10):
    """A 10 fps 64x48 H.264 mp4 of 13.2 s (132 frames)."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=13.2", "-c:v", "libx264",
           "-g", str(keyframes_every), "-pix_fmt", "yuv420p", *flags, str(path))
    return str(path)


def cut(source, dest, fraction):
    data = open(source, "rb").read()
    open(dest, "wb").write(data[:int(len(data) * fraction)])
    return str(dest)


def damage(source, dest):
    """The same file with its middle third overwritten by noise."""
    data = bytearray(open(source, "rb").read())
    third = len(data) // 3
    data[third:2 * third] = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
    open(dest, "wb").write(bytes(data))
    return str(dest)


@pytest.fixture(scope="module")
def backbone():
    return DygraphBackbone(build_model(50))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A folder of every kind of trouble, with the reason each bad file must fail with."""
    top = tmp_path_factory.mktemp("real")
    lib, outside, made = top / "lib", top / "outside", top / "made"
    for folder in (lib / "sub", outside, made):
        folder.mkdir(parents=True)
    write_video(str(lib / "a.mp4"), 6, seed=1)
    write_video(str(lib / "a.mov"), 6, seed=2)  # same stem, another video
    write_video(str(outside / "v.mp4"), 6, seed=3)
    os.symlink(outside, lib / "linked")  # a linked folder: followed
    os.symlink("..", lib / "sub" / "up")  # a loop: not followed twice
    os.symlink("loop.mp4", lib / "loop.mp4")
    os.symlink("nowhere.mp4", lib / "broken.mp4")
    faststart = h264_clip(made / "faststart.mp4", "-movflags", "+faststart")
    moov_at_end = h264_clip(made / "moov_at_end.mp4")
    # One keyframe only: damage anywhere spoils every frame after it; cut, decord cannot open it.
    one_keyframe = h264_clip(made / "one_keyframe.mp4", "-movflags", "+faststart", keyframes_every=1000)
    cut(faststart, lib / "cut.mp4", 0.3)
    cut(one_keyframe, lib / "cut_early.mp4", 0.3)
    cut(moov_at_end, lib / "moovcut.mp4", 0.3)
    # Matroska announces no frame count (OpenCV estimates duration x fps): whole, it passes.
    cut(h264_clip(lib / "b.mkv"), lib / "cut.mkv", 0.3)
    damage(one_keyframe, lib / "corrupt.mp4")
    (lib / "notes.mp4").write_text("meeting notes, saved with the wrong name\n" * 20)
    failing = {"broken.mp4": r"broken symbolic link \(points to nowhere\.mp4, which does not exist\)$",
               "loop.mp4": r"symbolic link loop \(the link points back to itself\)$",
               "cut.mp4": r"file ends at \d+\.\d s of 13\.2 s: truncated download\?\t\d+ of 132 frames present$",
               "cut.mkv": r"file ends at \d+\.\d s of 13\.2 s: truncated download\?\t\d+ of 132 frames present$",
               "cut_early.mp4": r"file is cut short \(\d+\.\d KB of \d+\.\d KB\): truncated download\?\t",
               "moovcut.mp4": r"file is cut short \(\d+\.\d KB of \d+\.\d KB\) and its index \(moov\) is missing: "
                              r"an interrupted download or copy\?$",
               "corrupt.mp4": r"damaged video data in frames \d+-\d+ of 132: a corrupt file\?\t.*avcodec",
               "notes.mp4": r"a text file, not a video$"}
    return {"lib": lib, "made": made, "failing": failing}


@needs_ffmpeg
def test_extract_a_folder_of_real_trouble(library, tmp_path):
    """The command as a user runs it: exit 1, each bad file in failures.txt with its reason, every
    good one (through the linked folder, both twins) extracted once, and a quiet terminal."""
    save_dir = tmp_path / "feats"
    run = subprocess.run([sys.executable, "-m", "extractor", "--video_path", str(library["lib"]),
                          "--save_dir", str(save_dir), *TINY], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert run.returncode == 1, run.stderr
    failures = {}
    for line in (save_dir / "failures.txt").read_text().splitlines():
        path, rest = line.split("\t", 1)
        failures[os.path.relpath(path, library["lib"])] = rest
    assert set(failures) == set(library["failing"])
    for name, pattern in library["failing"].items():
        assert re.match(pattern, failures[name]), (name, failures[name])
    listed = sorted(line.split()[0] for line in (save_dir / "features.list").read_text().splitlines())
    assert listed == ["a.mov.npy", "a.mp4.npy", "b.npy", "linked/v.npy"]
    assert not np.allclose(np.load(save_dir / "a.mov.npy"), np.load(save_dir / "a.mp4.npy"))
    terminal = run.stderr
    for noise in ("Check failed", "h264 @", "mov,mp4", "ccache", "WISELY", "Traceback", "ERROR opening"):
        assert noise not in terminal, noise
    assert "skipped " + str(library["lib"] / "corrupt.mp4") + ": damaged video data in frames" in terminal


@needs_ffmpeg
def test_accept_partial_uses_what_a_cut_file_holds(library):
    path = str(library["lib"] / "cut.mp4")
    with pytest.raises(VideoError, match="truncated download"):
        read_sampled_crops(path, 4, 32, 32)
    crops, info = read_sampled_crops(path, 4, 32, 32, accept_partial=True)
    assert crops.shape == (4, 32, 32, 3) and info["frame_count"] < 132 * 0.4


def extract_args(save_dir, videos, *extra):
    return cli.parse_args(["--video_path", str(videos), "--save_dir", str(save_dir), *TINY, *extra])


def test_rerun_with_other_settings_extracts_again(backbone, tmp_path, caplog):
    videos = tmp_path / "videos"
    for i in range(2):
        write_video(str(videos / f"v{i}.mp4"), 5, seed=i)
    weights_a, weights_b = tmp_path / "a.pdparams", tmp_path / "b.pdparams"
    weights_a.write_bytes(b"weights one")  # the backbone is given: the files are only digested
    weights_b.write_bytes(b"weights two")
    save_dir = tmp_path / "feats"
    assert cli.extract(extract_args(save_dir, videos, "--extractor_weights", str(weights_a)), backbone) == 0
    recorded = json.loads((save_dir / "extraction.json").read_text())
    assert recorded == {"weights": weights_digest(str(weights_a)), "depth": 50, "seg_num": 4, "short_size": 32,
                        "target_size": 32, "resize": "videotag", "engine": "dygraph", "precision": "float32"}

    def never(images):
        pytest.fail("a finished video was redone")

    assert cli.extract(extract_args(save_dir, videos, "--extractor_weights", str(weights_a)), never) == 0
    calls = []

    def counting(images):
        calls.append(len(images))
        return backbone(images)

    caplog.clear()
    assert cli.extract(extract_args(save_dir, videos, "--extractor_weights", str(weights_b)), counting) == 0
    assert "settings changed (weights): removing the features made with the old ones and re-extracting " \
           "2 videos" in caplog.text
    assert sum(calls) == 2 * 4
    assert json.loads((save_dir / "extraction.json").read_text())["weights"] == weights_digest(str(weights_b))

    # --keep_existing: one line and exit status 2, nothing touched.
    before = {p: os.path.getmtime(save_dir / p) for p in ("v0.npy", "v1.npy")}
    with pytest.raises(SystemExit) as stop:
        exit_on_input_error(cli.extract)(extract_args(save_dir, videos, "-o", "INFER.seg_num=5",
                                                      "--keep_existing"), never)
    assert stop.value.code == 2
    assert {p: os.path.getmtime(save_dir / p) for p in before} == before

    h5_dir = tmp_path / "h5"
    assert cli.extract(extract_args(h5_dir, videos, "--format", "hdf5"), backbone) == 0
    with h5py.File(h5_dir / "features.h5", "r") as store:
        assert store.attrs["weights"] == weights_digest(None) and store.attrs["seg_num"] == 4
    assert cli.extract(extract_args(h5_dir, videos, "--format", "hdf5", "-o", "INFER.short_size=40"),
                       counting) == 0
    with h5py.File(h5_dir / "features.h5", "r") as store:
        assert store.attrs["short_size"] == 40 and sorted(store) == ["v0", "v1"]


def test_keep_existing_refusal_message(backbone, tmp_path, capsys):
    videos = tmp_path / "videos"
    write_video(str(videos / "v.mp4"), 5)
    save_dir = tmp_path / "feats"
    assert cli.extract(extract_args(save_dir, videos), backbone) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        exit_on_input_error(cli.extract)(extract_args(save_dir, videos, "-o", "INFER.seg_num=5",
                                                      "--keep_existing"), backbone)
    assert capsys.readouterr().err == (f"error: {save_dir}: holds features made with other settings (seg_num); "
                                       "use another --save_dir, or drop --keep_existing to extract them again\n")


def test_tag_journal_of_other_settings_is_not_extended(tmp_path):
    save_dir = str(tmp_path)
    settings = {"weights": "aaa", "topk": 5}
    journal.check_run_settings(save_dir, settings, restart=False)
    outputs = journal.Outputs(save_dir, with_timeline=False)
    outputs.commit({"video": "v.mp4", "tags": []}, [])
    outputs.close()
    journal.check_run_settings(save_dir, settings, restart=False)  # the same settings resume
    with pytest.raises(Exception, match=re.escape(f"{save_dir}: holds tags made with other settings "
                                                  "(topk, weights); use a new --save_dir, or --restart "
                                                  "to tag every video again")):
        journal.check_run_settings(save_dir, {"weights": "bbb", "topk": 3}, restart=False)
    assert journal.tagged_videos(save_dir) == {"v.mp4"}
    journal.check_run_settings(save_dir, {"weights": "bbb", "topk": 3}, restart=True)
    assert journal.tagged_videos(save_dir) == set()
    assert json.loads((tmp_path / "tagging.json").read_text()) == {"weights": "bbb", "topk": 3}


def test_full_disk_is_one_line_and_exit_3(backbone, tmp_path, monkeypatch, capsys):
    videos = tmp_path / "videos"
    write_video(str(videos / "v.mp4"), 5)
    save_dir = tmp_path / "feats"
    real_save = np.save

    def full_disk(file, array, *args, **kwargs):
        if str(getattr(file, "name", "")).startswith(str(save_dir)):
            file.write(b"\x93NUMPY half")
            raise OSError(errno.ENOSPC, "No space left on device", file.name)
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(SystemExit) as stop:
        exit_on_input_error(cli.extract)(extract_args(save_dir, videos), backbone)
    assert stop.value.code == 3
    err = capsys.readouterr().err.splitlines()[-1]
    assert re.match(rf"error: cannot write {re.escape(str(save_dir))}/\.v\.\w+\.tmp\.npy: the disk is full; "
                    r"free space \(finished outputs are kept\) or choose another --save_dir$", err), err
    assert sorted(os.listdir(save_dir)) == ["extraction.json"]  # nothing half-written


def test_read_only_save_dir_is_one_line_and_exit_3(tmp_path, capsys):
    """extract (as a user runs it), train and tag stop before any work, with one line and exit 3."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "none", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    videos = tmp_path / "videos"
    write_video(str(videos / "v.mp4"), 5)
    head = tmp_path / "head.pdparams"
    head.write_bytes(b"never read")
    try:
        run = subprocess.run([sys.executable, "-m", "extractor", "--video_path", str(videos), "--save_dir",
                              str(mount / "feats"), *TINY], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=ROOT))
        stops = []
        for command, argv in ((commands.train, ["--model_name", "AttentionLSTM", "--save_dir", str(mount / "train")]),
                              (commands.predict, ["--model_name", "AttentionLSTM", "--video_path", str(videos),
                                                  "--weights", str(head), "--save_dir", str(mount / "tags")])):
            capsys.readouterr()
            with pytest.raises(SystemExit) as stop:
                command(argv)
            stops.append((stop.value.code, capsys.readouterr().err))
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert run.returncode == 3
    assert run.stderr == f"error: cannot write {mount}/feats: the file system is read-only; choose another --save_dir\n"
    assert stops == [(3, f"error: cannot write {mount}/{name}: the file system is read-only; choose another "
                         "--save_dir\n") for name in ("train", "tags")]


@needs_ffmpeg
def test_timeline_windows_by_frame_time_on_a_variable_frame_rate_clip(backbone, tmp_path):
    """30 frames in the first 1.5 s, then one every 0.5 s to 6.5 s: by index / average fps
    (6.2 fps) frame 29 (1.45 s) would land in the third 2-second window."""
    path = str(tmp_path / "vfr.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=20:duration=1.5", "-f", "lavfi", "-i",
           "testsrc=size=64x48:rate=2:duration=5", "-filter_complex", "[0][1]concat=n=2:v=1[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    settings = InferSettings(seg_num=4, short_size=32, target_size=32, batch_size=8)
    result = next(iter_video_features([path], settings, backbone))
    assert result.ok and result.info["frame_count"] == 40 and result.info["duration"] == pytest.approx(6.5)
    windows = tagging.timeline_windows(result, 2.0, 10, settings, backbone)
    assert [(start, end, len(features)) for start, end, features in windows] == [
        (0.0, 2.0, 31), (2.0, 4.0, 4), (4.0, 6.0, 4), (6.0, pytest.approx(6.5), 1)]


def fake_venv(folder):
    """A venv for run.sh that is /work/main's python, marked installed, and refuses pip (so a
    stamp mismatch fails instead of installing anything)."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 9\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    requirements = open(os.path.join(ROOT, "requirements.txt")).read()
    versions = f"{os.environ.get('PADDLE_VERSION', '3.3.1')} {os.environ.get('PADDLE_GPU_VERSION', '2.6.2')}"
    (folder / ".installed").write_text(requirements + f"gpus=no {versions}\n")
    return str(folder)


def test_run_sh_from_another_folder(tmp_path):
    caller = tmp_path / "caller"
    write_video(str(caller / "myvideos" / "v.mp4"), 5)
    env = dict(os.environ, VIDEOTAG_VENV=fake_venv(tmp_path / "venv"), CUDA_VISIBLE_DEVICES="")
    run_sh = os.path.join(ROOT, "run.sh")
    helped = subprocess.run(["bash", run_sh, "extract", "--help"], cwd=caller, env=env, capture_output=True,
                            text=True)
    assert helped.returncode == 0 and helped.stderr == "", helped.stderr
    run = subprocess.run(["bash", run_sh, "extract", "--video_path", "myvideos", "--save_dir", "feats", *TINY],
                         cwd=caller, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (caller / "feats" / "v.npy").exists() and not os.path.exists(os.path.join(ROOT, "feats"))
    assert "NO --extractor_weights GIVEN" in run.stderr and "Pass --extractor_weights" in run.stderr
    for noise in ("ccache", "WISELY", "Traceback"):
        assert noise not in run.stderr

"""The extractor as users run it: killed and rerun, and split over two processes."""
import glob
import os
import signal
import subprocess
import sys
import time

import extractor  # noqa: F401  (h5py before paddle)
import h5py
import numpy as np
import pytest

from extractor import cli
from launch import launch_two
from videos import write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Dygraph and tiny frames: no export, and slow enough per video to be killed half way.
TINY = ["-o", "INFER.seg_num=6", "-o", "INFER.short_size=40", "-o", "INFER.target_size=32",
        "-o", "INFER.batch_size=2", "-o", "INFER.num_workers=1", "--extractor_backend", "dygraph"]
NUM_VIDEOS = 8


def run_env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def video_list(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    paths = [write_video(str(folder / f"v{i}.mp4"), 5 + 3 * i, seed=i) for i in range(NUM_VIDEOS)]
    listing = folder / "videos.list"
    listing.write_text("".join(f"{path} {i % 3}\n" for i, path in enumerate(paths)))
    return listing, paths


def extractor_command(listing, save_dir, *extra):
    return [sys.executable, "-m", "extractor", "--filelist", str(listing), "--save_dir", str(save_dir),
            *TINY, *extra]


@pytest.fixture(scope="module")
def resumed_run(video_list, tmp_path_factory):
    """Kill -9 a run after its first output, rerun it; returns (save_dir, first outputs, rerun log)."""
    listing, _ = video_list
    save_dir = tmp_path_factory.mktemp("killed")
    process = subprocess.Popen(extractor_command(listing, save_dir), cwd=ROOT, env=run_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not glob.glob(str(save_dir / "**" / "v*.npy"), recursive=True):
        assert process.poll() is None, "the extractor stopped before writing anything"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = {path: os.path.getmtime(path)
             for path in glob.glob(str(save_dir / "**" / "v*.npy"), recursive=True)}
    assert 0 < len(first) < NUM_VIDEOS, "the run finished before it could be killed"
    rerun = subprocess.run(extractor_command(listing, save_dir), cwd=ROOT, env=run_env(),
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    return save_dir, first, rerun.stderr


def outputs(save_dir):
    return {os.path.relpath(path, save_dir): np.load(path)
            for path in glob.glob(str(save_dir / "**" / "*.npy"), recursive=True)}


def test_rerun_after_kill_extracts_only_what_is_missing(resumed_run):
    save_dir, first, log = resumed_run
    done = len(first)
    assert f"{NUM_VIDEOS} videos: {done} already done, {NUM_VIDEOS - done} to extract" in log
    assert {path: os.path.getmtime(path) for path in first} == first  # not rewritten
    features = outputs(save_dir)
    assert len(features) == NUM_VIDEOS
    assert all(f.shape == (6, 2048) and f.dtype == np.float32 and np.isfinite(f).all()
               for f in features.values())
    assert not glob.glob(str(save_dir / "**" / ".*"), recursive=True)  # no temporaries left
    listed = (save_dir / "features.list").read_text().splitlines()
    assert len(listed) == NUM_VIDEOS and all(line.split()[1] == str(i % 3) for i, line in enumerate(listed))


def test_two_processes_share_the_work_and_match_one(resumed_run, video_list, tmp_path):
    listing, _ = video_list
    single_dir = resumed_run[0]
    save_dir, log_dir = tmp_path / "feats", tmp_path / "logs"
    status, logs = launch_two(["-m", "extractor", "--filelist", str(listing), "--save_dir", str(save_dir),
                               "--format", "hdf5", *TINY], log_dir)
    assert status == 0, logs
    shares = [f"rank {rank}] {NUM_VIDEOS // 2} videos: 0 already done, "
              f"{NUM_VIDEOS // 2} to extract" for rank in (0, 1)]
    assert all(share in logs for share in shares), logs

    single = outputs(single_dir)
    listed = (save_dir / "features.list").read_text().splitlines()
    assert [line.split()[1:] for line in listed] == [[str(i % 3)] for i in range(NUM_VIDEOS)]
    with h5py.File(save_dir / "features.h5", "r") as store:
        keys = [line.split()[0].split("#", 1)[1] for line in listed]
        assert sorted(key + ".npy" for key in keys) == sorted(single)
        for key in keys:
            np.testing.assert_allclose(store[key][()], single[key + ".npy"], rtol=1e-5, atol=1e-5)


def test_old_flag_names_still_work_with_a_line_naming_the_new_ones(capsys):
    args = cli.parse_args(["--filelist", "x.list", "--save_dir", "out", "--weights", "tsn.pdparams",
                           "--backend", "dygraph"])
    assert (args.extractor_weights, args.extractor_backend) == ("tsn.pdparams", "dygraph")
    err = capsys.readouterr().err
    assert "--weights is now --extractor_weights" in err and "--backend is now --extractor_backend" in err

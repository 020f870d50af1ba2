"""Where features go, and how a rerun knows what is already done.

npy: <save_dir>/<video id>.npy, each written atomically: it exists only when complete.
hdf5: <save_dir>/features.h5, one dataset per video id with attributes. HDF5 files are not safe
to append to when a process is killed, so each video is first written atomically to
<save_dir>/.staging/<id>.npz and merged into a fresh copy of the store that replaces the old
one by rename (once per run, by one process).

Both kinds record the settings that made their features in <save_dir>/extraction.json (and the
HDF5 store in its attributes): weights digest, backbone (when not the default), depth, num_seg,
seg_num, sizes, engine. A rerun compares them with its own (`settings_changed`) instead of taking
old features for new ones.
"""
import glob
import json
import os
import shutil

import h5py
import numpy as np

from core.fsutil import atomic_open, atomic_path, save_npy

STORE_NAME = "features.h5"
STAGING = ".staging"
SETTINGS_FILE = "extraction.json"


def expected_shape(seg_num, feature_dim):
    return (seg_num, feature_dim)


class NpyStore:
    format = "npy"

    def __init__(self, save_dir):
        self.save_dir = save_dir

    def path(self, video_id):
        return os.path.join(self.save_dir, video_id + ".npy")

    def completed(self, video_ids, seg_num, feature_dim):
        """The videos whose features are there, whole: [seg_num, feature_dim] (the backbone's)."""
        done = set()
        for video_id in video_ids:
            try:
                if np.load(self.path(video_id), mmap_mode="r").shape == expected_shape(seg_num, feature_dim):
                    done.add(video_id)
            except (OSError, ValueError):
                pass
        return done

    def write(self, result):
        save_npy(self.path(result.video.video_id), result.features)

    def list_path(self, video_id):
        return video_id + ".npy"

    def feature_files(self):
        return glob.glob(os.path.join(glob.escape(self.save_dir), "**", "*.npy"), recursive=True)

    def remove_all(self):
        for path in self.feature_files():
            os.remove(path)

    def finalize(self):
        pass


class Hdf5Store:
    format = "hdf5"

    def __init__(self, save_dir):
        self.save_dir = save_dir
        self.store = os.path.join(save_dir, STORE_NAME)
        self.staging = os.path.join(save_dir, STAGING)

    def staged(self, video_id):
        return os.path.join(self.staging, video_id + ".npz")

    def completed(self, video_ids, seg_num, feature_dim):
        shape, done = expected_shape(seg_num, feature_dim), set()
        stored = h5py.File(self.store, "r") if os.path.exists(self.store) else None
        try:
            for video_id in video_ids:
                if stored is not None and video_id in stored and stored[video_id].shape == shape:
                    done.add(video_id)
                    continue
                try:
                    with np.load(self.staged(video_id)) as staged:
                        if staged["features"].shape == shape:
                            done.add(video_id)
                except (OSError, ValueError, KeyError):
                    pass
        finally:
            if stored is not None:
                stored.close()
        return done

    def write(self, result):
        info = result.info
        with atomic_path(self.staged(result.video.video_id)) as tmp:
            np.savez(tmp, features=result.features, source=info["source"], fps=info["fps"],
                     frame_count=info["frame_count"], indices=np.asarray(info["indices"], "int64"))

    def list_path(self, video_id):
        return f"{STORE_NAME}#{video_id}"

    def feature_files(self):
        staged = glob.glob(os.path.join(glob.escape(self.staging), "**", "*.npz"), recursive=True)
        return staged + ([self.store] if os.path.exists(self.store) else [])

    def remove_all(self):
        shutil.rmtree(self.staging, ignore_errors=True)
        if os.path.exists(self.store):
            os.remove(self.store)

    def finalize(self):
        """Merge staged videos into the store: copy, append, rename over."""
        staged = sorted(glob.glob(os.path.join(self.staging, "**", "*.npz"), recursive=True))
        if not staged:
            return
        with atomic_path(self.store) as tmp:
            if os.path.exists(self.store):
                shutil.copyfile(self.store, tmp)
            with h5py.File(tmp, "a") as store:
                for path in staged:
                    video_id = os.path.relpath(path, self.staging)[:-len(".npz")]
                    with np.load(path) as item:
                        if video_id in store:
                            del store[video_id]
                        dataset = store.create_dataset(video_id, data=item["features"])
                        dataset.attrs["source"] = str(item["source"])
                        dataset.attrs["fps"] = float(item["fps"])
                        dataset.attrs["frame_count"] = int(item["frame_count"])
                        dataset.attrs["indices"] = item["indices"]
                for name, value in (read_settings(self.save_dir) or {}).items():
                    store.attrs[name] = value
        shutil.rmtree(self.staging, ignore_errors=True)


def read_settings(save_dir):
    """The settings recorded with a store's features, or None (none recorded)."""
    path = os.path.join(save_dir, SETTINGS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_settings(save_dir, settings):
    with atomic_open(os.path.join(save_dir, SETTINGS_FILE), encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)
        f.write("\n")


def settings_changed(recorded, wanted):
    """Names of the settings that differ (a setting one side lacks counts as changed)."""
    return sorted(name for name in set(recorded) | set(wanted) if recorded.get(name) != wanted.get(name))


def make_store(fmt, save_dir):
    return {"npy": NpyStore, "hdf5": Hdf5Store}[fmt](save_dir)


def remove_stale_temporaries(save_dir):
    """Temporary files left by a killed run (atomic writes that never reached their rename)."""
    for path in glob.glob(os.path.join(save_dir, "**", ".*.tmp.*"), recursive=True):
        if os.path.isfile(path):
            os.remove(path)


def write_text(path, lines):
    with atomic_open(path) as f:
        f.writelines(line + "\n" for line in lines)

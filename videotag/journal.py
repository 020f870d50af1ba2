"""Tagging's outputs, written so that they survive kill -9.

predictions.jsonl is a journal: appended, flushed and fsynced per video; a video counts as tagged
once its line is there. timeline.jsonl (with --timeline) has one line per window, written before
the video's prediction. With several processes each rank appends to its own
parts/predictions.rank<r>.jsonl (and parts/timeline.rank<r>.jsonl); rank 0 folds them into the
files above at the end, and a rerun folds in the parts of a killed run. No two processes ever
append to one file. predictions.csv is rebuilt from the journal at the end of every run.

tagging.json records what made the tags (head and backbone weights digests, head config, top-k,
labels, timeline, feature settings): a run with other ones does not extend the journal; it
stops, or with --restart starts it over.
"""
import csv
import glob
import json
import os
import shutil

from core import dist
from core.errors import InputError
from core.fsutil import atomic_open

PREDICTIONS, TIMELINE, CSV, FAILURES, REPORT = (
    "predictions.jsonl", "timeline.jsonl", "predictions.csv", "failures.txt", "report.html")
PARTS = "parts"
SETTINGS = "tagging.json"
THUMBS = "thumbs"  # report.THUMBS
CSV_COLUMNS = ("video", "rank", "class_id", "class_name", "probability")
MANIFEST = "export.json"  # written by videotag.export next to the two models
def read_jsonl(path):
    """The records of a JSONL file (none when it is missing); a last line cut short is skipped."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def cut_torn_tail(path):
    """Truncate a last line without its newline: what a kill during a write leaves."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        end = pos = f.seek(0, os.SEEK_END)
        keep = 0
        while pos > 0:
            start = max(0, pos - 65536)
            f.seek(start)
            newline = f.read(pos - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            pos = start
        if keep < end:
            f.truncate(keep)


class Journal:
    def __init__(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        cut_torn_tail(path)
        self.file = open(path, "a", encoding="utf-8")

    def append(self, records):
        self.file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        self.file.close()


def check_run_settings(save_dir, wanted, restart):
    """Every process: make sure the journal in save_dir is one of `wanted` settings (rank 0
    records them), or stop with one line; `restart` first discards the journal and its outputs."""
    if restart and dist.is_main():
        discard_outputs(save_dir)
    dist.barrier()
    recorded = read_json(os.path.join(save_dir, SETTINGS))
    if tagged_videos(save_dir) and recorded != wanted:
        what = (", ".join(sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k)))
                if recorded is not None else "made by an older version, settings unknown")
        raise InputError(f"holds tags made with other settings ({what}); use a new --save_dir, or "
                         "--restart to tag every video again", save_dir)
    dist.barrier()  # every process has read the record before rank 0 rewrites it
    if dist.is_main():
        with atomic_open(os.path.join(save_dir, SETTINGS), encoding="utf-8") as f:
            json.dump(wanted, f, indent=1, sort_keys=True)
    dist.barrier()


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def discard_outputs(save_dir):
    """--restart: the journals and everything made from them."""
    for name in (PREDICTIONS, TIMELINE, CSV, FAILURES, REPORT, SETTINGS):
        if os.path.exists(os.path.join(save_dir, name)):
            os.remove(os.path.join(save_dir, name))
    for name in (PARTS, THUMBS):
        shutil.rmtree(os.path.join(save_dir, name), ignore_errors=True)


def journal_pairs(save_dir):
    """(predictions, timeline) paths: the main files first, then every rank's parts."""
    pairs = [(os.path.join(save_dir, PREDICTIONS), os.path.join(save_dir, TIMELINE))]
    for path in sorted(glob.glob(os.path.join(glob.escape(save_dir), PARTS, "predictions.rank*.jsonl"))):
        folder, name = os.path.split(path)
        pairs.append((path, os.path.join(folder, name.replace("predictions.", "timeline.", 1))))
    return pairs


def tagged_videos(save_dir):
    """Every video some run has committed, in any process's journal."""
    return {r["video"] for path, _ in journal_pairs(save_dir) for r in read_jsonl(path)}


class Outputs:
    """This process's journals: its own pair of files, so no two processes append to one."""

    def __init__(self, save_dir, with_timeline):
        rank, world = dist.rank(), dist.world_size()
        if world == 1:
            predictions, timeline = journal_pairs(save_dir)[0]
        else:
            predictions, timeline = (os.path.join(save_dir, PARTS, f"{stem}.rank{rank}.jsonl")
                                     for stem in ("predictions", "timeline"))
        cut_torn_tail(predictions)
        # Windows written just before a kill, without their video's prediction, would repeat.
        committed = {r["video"] for r in read_jsonl(predictions)}
        windows = read_jsonl(timeline)
        if any(w["video"] not in committed for w in windows):
            write_jsonl(timeline, [w for w in windows if w["video"] in committed])
        self.predictions = Journal(predictions)
        self.timeline = Journal(timeline) if with_timeline else None

    def commit(self, prediction, windows):
        if self.timeline is not None:
            self.timeline.append(windows)
        self.predictions.append([prediction])  # last: the video counts as tagged from here on

    def close(self):
        self.predictions.close()
        if self.timeline is not None:
            self.timeline.close()


def write_jsonl(path, records):
    with atomic_open(path, encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def merge_parts(save_dir, order):
    """Rank 0, once every process is done: fold parts/ into predictions.jsonl and timeline.jsonl,
    in list order (videos of earlier runs not in this list keep their place after them)."""
    pairs = journal_pairs(save_dir)
    if len(pairs) == 1:
        return
    predictions, windows = {}, {}
    for predictions_path, timeline_path in pairs:
        committed = set()
        for record in read_jsonl(predictions_path):
            predictions.setdefault(record["video"], record)
            committed.add(record["video"])
        mine = {}
        for window in read_jsonl(timeline_path):
            if window["video"] in committed:  # others were cut short by a kill
                mine.setdefault(window["video"], []).append(window)
        for video, video_windows in mine.items():
            windows.setdefault(video, video_windows)
    position = {name: i for i, name in enumerate(order)}
    videos = sorted(predictions, key=lambda v: position.get(v, len(order)))  # stable: others keep order
    if windows:
        write_jsonl(os.path.join(save_dir, TIMELINE), [w for v in videos for w in windows.get(v, [])])
    write_jsonl(os.path.join(save_dir, PREDICTIONS), [predictions[v] for v in videos])
    shutil.rmtree(os.path.join(save_dir, PARTS))  # last: until here the parts are the record


def write_csv(save_dir):
    """predictions.csv from predictions.jsonl: one row per (video, tag), rank 1 = most probable; a
    `quality` column (the video's score, on each of its rows) when the videos were scored."""
    records = read_jsonl(os.path.join(save_dir, PREDICTIONS))
    scored = any("quality" in record for record in records)
    with atomic_open(os.path.join(save_dir, CSV), newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS + (("quality",) if scored else ()))
        for record in records:
            quality = [record.get("quality", "")] if scored else []
            for rank, tag in enumerate(record["tags"], 1):
                writer.writerow([record["video"], rank, tag["class_id"], tag["class_name"], tag["probability"], *quality])

"""predict.py on videos (both stages in one resumable pass), exported models, the report."""
import glob
import html.parser
import json
import os
import signal
import subprocess
import sys
import time

import videotag  # noqa: F401  (before paddle: OMP threads, h5py on Paddle 2.6)
import numpy as np
import pandas as pd
import paddle
import pytest

import predict as predict_cli
from extractor import cli as extractor_cli
from extractor.predictor import model_file
from launch import launch_two
from videotag import export as export_cli
from videotag import journal, tagging
from core.config import load_config
from videotag.models import build_head, default_config_path
from videotag.synthetic import make_library

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD = ["MODEL.embedding_size=16", "MODEL.lstm_size=16", "MODEL.hidden_sizes=[32, 16]", "MODEL.num_classes=18"]
# ResNet-50 and 32-pixel crops: the stages are what is tested, and predictor creation and dygraph
# frames of ResNet-101 take several times longer on 2 cores.
EXTRACT = ["INFER.seg_num=4", "INFER.short_size=32", "INFER.target_size=32", "INFER.batch_size=16",
           "MODEL.num_layers=50"]
SECONDS = 2.0  # length of every library video
BROKEN = "broken.mp4"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """12 videos listed with labels, plus one file that is no video; a fresh tiny head."""
    folder = tmp_path_factory.mktemp("library")
    made = make_library(str(folder), num_videos=12, size=(64, 48), seconds=SECONDS)
    (folder / BROKEN).write_bytes(b"not a video at all")
    lines = [line for split in ("train", "val", "test") for line in (folder / f"{split}.list").read_text().splitlines()]
    lines.insert(5, BROKEN + " 1")
    (folder / "all.list").write_text("\n".join(lines) + "\n")
    paddle.seed(0)
    head = folder / "head.pdparams"
    paddle.save(build_head(load_config(default_config_path("AttentionLSTM"), HEAD).MODEL).state_dict(), str(head))
    return {"folder": folder, "list": folder / "all.list", "labels": made["labels_file"], "head": head,
            "cache": tmp_path_factory.mktemp("cache"), "good": [line.split()[0] for line in lines if BROKEN not in line]}


def head_args(library):
    args = ["--model", "AttentionLSTM", "--label_file", library["labels"], "--topk", "5"]
    for item in HEAD:
        args += ["-o", item]
    return args


def tag_args(library, save_dir, *extra, weights=True):
    args = head_args(library) + ["--filelist", str(library["list"]), "--save_dir", str(save_dir),
                                 "--cache_dir", str(library["cache"])]
    args += ["--weights", str(library["head"])] if weights else []
    for item in EXTRACT:
        args += ["--extractor_override", item]
    return args + list(extra)


@pytest.fixture(scope="module")
def tagged(library, tmp_path_factory):
    """The backbone through paddle.inference, with timelines."""
    save_dir = tmp_path_factory.mktemp("tags")
    status = predict_cli.main(tag_args(library, save_dir, "--timeline", "0.5", "--timeline_frames", "4"))
    return {"save_dir": save_dir, "status": status}


@pytest.fixture(scope="module")
def dygraph_tagged(library, tmp_path_factory):
    """The backbone in dygraph, keeping the features."""
    save_dir, features = tmp_path_factory.mktemp("dygraph"), tmp_path_factory.mktemp("kept")
    status = predict_cli.main(tag_args(library, save_dir, "--extractor_backend", "dygraph",
                                       "--keep_features", str(features)))
    return {"save_dir": save_dir, "status": status, "features": features}


def predictions(save_dir):
    return [json.loads(line) for line in (save_dir / "predictions.jsonl").read_text().splitlines()]


def assert_same_tags(a, b, atol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert [t["class_id"] for t in x["tags"]] == [t["class_id"] for t in y["tags"]]
        np.testing.assert_allclose([t["probability"] for t in x["tags"]], [t["probability"] for t in y["tags"]],
                                   atol=atol, rtol=0)


@pytest.mark.smoke
def test_one_command_equals_extract_then_predict(library, dygraph_tagged, tmp_path):
    argv = ["--filelist", str(library["list"]), "--save_dir", str(tmp_path / "features"), "--extractor_backend", "dygraph"]
    for item in EXTRACT:
        argv += ["-o", item]
    assert extractor_cli.extract(extractor_cli.parse_args(argv)) == 1  # the broken file
    feature_list = tmp_path / "features" / "features.list"
    predict_cli.main(head_args(library) + ["--weights", str(library["head"]), "--filelist", str(feature_list),
                                           "--save_dir", str(tmp_path / "pred")])
    one_command, two_steps = predictions(dygraph_tagged["save_dir"]), predictions(tmp_path / "pred")
    assert [r["video"] for r in one_command] == library["good"]  # as listed, in list order
    assert_same_tags(one_command, two_steps, atol=2e-6)
    # --keep_features wrote the same features and a list predict.py takes.
    kept_dir = dygraph_tagged["features"]
    kept = sorted(glob.glob(str(kept_dir / "**" / "*.npy"), recursive=True))
    assert len(kept) == len(library["good"])
    for path in kept:
        np.testing.assert_array_equal(np.load(path), np.load(tmp_path / "features" / os.path.relpath(path, kept_dir)))
    assert len((kept_dir / "features.list").read_text().splitlines()) == len(library["good"])


def test_bad_video_is_reported_and_the_others_tagged(library, tagged):
    assert tagged["status"] == 1
    failures = (tagged["save_dir"] / "failures.txt").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith(BROKEN + "\t")
    assert len(predictions(tagged["save_dir"])) == len(library["good"])


def test_csv_and_jsonl_agree(tagged):
    table = pd.read_csv(tagged["save_dir"] / "predictions.csv")
    assert list(table.columns) == ["video", "rank", "class_id", "class_name", "probability"]
    rows = [(r["video"], rank, t["class_id"], t["class_name"], t["probability"])
            for r in predictions(tagged["save_dir"]) for rank, t in enumerate(r["tags"], 1)]
    assert list(table.itertuples(index=False, name=None)) == rows
    assert all(len(r["tags"]) == 5 for r in predictions(tagged["save_dir"]))


def test_timeline_windows_cover_each_video(library, tagged):
    windows = {}
    for line in (tagged["save_dir"] / "timeline.jsonl").read_text().splitlines():
        record = json.loads(line)
        windows.setdefault(record["video"], []).append(record)
        assert len(record["tags"]) == 5
    assert list(windows) == library["good"]
    for video_windows in windows.values():
        starts, ends = [w["start"] for w in video_windows], [w["end"] for w in video_windows]
        assert starts[0] == 0 and ends[-1] == pytest.approx(SECONDS) and starts[1:] == ends[:-1]
        assert len(video_windows) == 4  # 2 s in windows of 0.5 s


class PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.scripts, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("script", "link"):
            self.scripts.append(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_report_renders(library, tagged):
    page = PageParser()
    page.feed((tagged["save_dir"] / "report.html").read_text(encoding="utf-8"))
    assert page.tags.count("svg") == 2  # tag frequency and per-class AP
    assert not page.scripts  # opens from disk: no JS, no stylesheet from anywhere
    assert len(page.images) == len(library["good"])
    for src in page.images:
        assert not src.startswith(("http:", "https:", "/")) and (tagged["save_dir"] / src).stat().st_size > 0
    text = " ".join(page.text)
    assert all(video in text for video in library["good"]) and "mAP" in text and BROKEN in text


def test_resume_after_kill(library, tmp_path):
    save_dir = tmp_path / "tags"
    args = tag_args(library, save_dir, "--extractor_backend", "dygraph")
    command = [sys.executable, "predict.py", *args]
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = save_dir / "predictions.jsonl"
    while not (journal.exists() and journal.read_text().count("\n") >= 1):
        assert process.poll() is None, "predict.py stopped before tagging anything"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = journal.read_text()
    assert 0 < first.count("\n") < len(library["good"]), "the run finished before it could be killed"
    with open(journal, "a") as f:  # what a kill in the middle of a write leaves
        f.write('{"video": "half a li')
    assert predict_cli.main(args) == 1
    names = [r["video"] for r in predictions(save_dir)]
    assert sorted(names) == sorted(library["good"]) and len(set(names)) == len(names)
    assert journal.read_text().startswith(first)  # finished lines are kept as they were
    assert predict_cli.main(args) == 1  # all tagged: appends nothing
    assert [r["video"] for r in predictions(save_dir)] == names


def test_exported_models_equal_dygraph(library, dygraph_tagged, tmp_path):
    export_dir = tmp_path / "inference"
    export_args = head_args(library)[:2] + ["--weights", str(library["head"]), "--save_dir", str(export_dir)]
    for item in HEAD:
        export_args += ["-o", item]
    for item in EXTRACT:
        export_args += ["--extractor_override", item]
    export_cli.main(export_args)
    assert os.path.isfile(model_file(str(export_dir / "head")))
    assert os.path.isfile(model_file(str(export_dir / "backbone")))
    exported = tmp_path / "exported"
    # The export fixes the sizes and extractor settings: --inference_dir needs no -o.
    predict_cli.main(["--model", "AttentionLSTM", "--inference_dir", str(export_dir), "--filelist",
                      str(library["list"]), "--save_dir", str(exported), "--label_file", library["labels"],
                      "--topk", "5"])
    assert_same_tags(predictions(dygraph_tagged["save_dir"]), predictions(exported), atol=1e-4)


def test_two_processes_equal_one(library, dygraph_tagged, tmp_path):
    save_dir = tmp_path / "two"
    status, logs = launch_two(["predict.py", *tag_args(library, save_dir, "--extractor_backend", "dygraph")],
                              tmp_path / "log")
    assert status != 0, "a video failed: the run must say so"
    assert (save_dir / "failures.txt").read_text().startswith(BROKEN + "\t"), logs[-5000:]
    assert not (save_dir / journal.PARTS).exists()  # merged by rank 0
    assert_same_tags(predictions(dygraph_tagged["save_dir"]), predictions(save_dir), atol=1e-5)
    assert [r["video"] for r in predictions(save_dir)] == library["good"]


def test_journals_merge_parts_without_duplicates(tmp_path):
    """Two ranks' parts of a killed run, one with windows of a video it never committed."""
    def tags(p):
        return [{"class_id": 0, "class_name": "a", "probability": p}]

    parts = tmp_path / journal.PARTS
    parts.mkdir()
    journal.write_jsonl(tmp_path / "predictions.jsonl", [{"video": "v0", "tags": tags(0.1)}])
    journal.write_jsonl(parts / "predictions.rank0.jsonl", [{"video": "v2", "tags": tags(0.3)}])
    journal.write_jsonl(parts / "predictions.rank1.jsonl", [{"video": "v1", "tags": tags(0.2)}])
    journal.write_jsonl(parts / "timeline.rank1.jsonl", [
        {"video": "v1", "start": 0, "end": 1, "tags": tags(0.2)},
        {"video": "v3", "start": 0, "end": 1, "tags": tags(0.4)}])  # v3 was never committed
    with open(parts / "predictions.rank1.jsonl", "a") as f:
        f.write('{"video": "v3", "ta')  # killed mid-line
    assert journal.tagged_videos(str(tmp_path)) == {"v0", "v1", "v2"}
    journal.merge_parts(str(tmp_path), ["v0", "v1", "v2", "v3"])
    assert [r["video"] for r in predictions(tmp_path)] == ["v0", "v1", "v2"]
    timeline = [json.loads(x) for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert [w["video"] for w in timeline] == ["v1"]
    assert not parts.exists()


def test_feature_list_or_videos_by_extension(library, tmp_path):
    assert tagging.is_video_list(str(library["list"]))
    features = tmp_path / "features.list"
    features.write_text("a.npy 1\n")
    assert not tagging.is_video_list(str(features))


def test_rerun_with_other_settings_does_not_extend_the_journal(library, dygraph_tagged, capsys):
    save_dir = dygraph_tagged["save_dir"]
    args = tag_args(library, save_dir, "--extractor_backend", "dygraph", "--keep_features",
                    str(dygraph_tagged["features"]))
    before = (save_dir / "predictions.jsonl").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        predict_cli.main(args + ["--topk", "3"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (f"error: {save_dir}: holds tags made with other settings (topk); use a new "
                                       "--save_dir, or --restart to tag every video again\n")
    assert (save_dir / "predictions.jsonl").read_text() == before
    assert json.loads((save_dir / "tagging.json").read_text())["topk"] == 5

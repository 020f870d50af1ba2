"""One list reader and writer for every list kind: names survive, comments and BOMs are skipped,
relative paths resolve beside the list or, as VideoTag's do, against the working directory."""
import os

import pytest

from core.errors import InputError
from core.lists import format_entry, list_entries, resolve, write_list
from extractor.videos import read_filelist
from sequence.data import read_feature_list

pytestmark = pytest.mark.smoke

NAMES = ["plain.mp4", "视频 clip.mp4", "tab\there.mp4", "#hash.mp4", '"quoted".mp4', "  lead.mp4", "a b\\c.npy"]


def test_every_name_we_write_reads_back(tmp_path):
    path = tmp_path / "x.list"
    write_list(path, [(name, [i, 7]) for i, name in enumerate(NAMES)])
    entries = [fields for _, fields, _ in list_entries(str(path))]
    assert entries == [[name, str(i), "7"] for i, name in enumerate(NAMES)]
    assert format_entry("plain.mp4", [3]) == "plain.mp4 3"  # what VideoTag's readers read too


def test_comments_blank_lines_bom_and_tabs(tmp_path):
    path = tmp_path / "x.list"
    path.write_bytes("\ufeffa.mp4 1\n\n# a comment\n  # indented comment\nmy clip.mp4\t2\t3\r\n".encode())
    assert [(n, f) for n, f, _ in list_entries(str(path))] == [(1, ["a.mp4", "1"]), (5, ["my clip.mp4", "2", "3"])]


def test_a_broken_quoted_path_names_the_line(tmp_path):
    path = tmp_path / "x.list"
    path.write_text('ok.mp4\n"not closed.mp4 1\n')
    with pytest.raises(InputError, match=r"x.list:2: malformed line"):
        list(list_entries(str(path)))


def test_relative_paths_beside_the_list_else_in_the_working_directory(tmp_path, monkeypatch):
    lists, work = tmp_path / "lists", tmp_path / "work"
    (lists / "feats").mkdir(parents=True)
    (work / "my_feature_path").mkdir(parents=True)
    (lists / "feats" / "a.npy").write_bytes(b"")
    (work / "my_feature_path" / "x.npy").write_bytes(b"")
    monkeypatch.chdir(work)
    assert resolve("feats/a.npy", str(lists)) == str(lists / "feats" / "a.npy")
    assert resolve("my_feature_path/x.npy", str(lists)) == "my_feature_path/x.npy"  # FineTune.md's lists
    listing = lists / "train.list"
    listing.write_text("feats/a.npy 1\nmy_feature_path/x.npy 3 17\n")
    videos = read_feature_list(str(listing), 20)
    assert [os.path.abspath(v.path) for v in videos] == [str(lists / "feats" / "a.npy"),
                                                        str(work / "my_feature_path" / "x.npy")]
    listing.write_text("nowhere/z.npy 1\n")
    with pytest.raises(InputError, match=r"train.list:1: feature file not found: nowhere/z.npy \(neither"):
        read_feature_list(str(listing), 20)


def test_video_lists_follow_the_same_rules(tmp_path):
    (tmp_path / "my clip.mp4").write_bytes(b"")
    listing = tmp_path / "videos.list"
    write_list(listing, [("my clip.mp4", [4]), ("#odd.mp4", [])])
    with open(listing, "a") as f:
        f.write("# not a video\n")
    videos = read_filelist(str(listing))
    assert [(v.path, v.video_id, v.labels) for v in videos] == [
        (str(tmp_path / "my clip.mp4"), "my clip", ("4",)), (str(tmp_path / "#odd.mp4"), "#odd", ())]

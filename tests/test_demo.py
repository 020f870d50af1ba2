"""The one-command demo, on a smaller library: both stages run and the report compares with chance."""
import json

from videotag import demo


def test_demo_runs_both_stages_and_reports(tmp_path, capsys):
    demo.main(["AttentionLSTM", "--library", str(tmp_path / "library"), "--save_dir", str(tmp_path / "out"),
               "--num_videos", "30"])
    out = capsys.readouterr().out
    assert "=== AttentionLSTM on the demo library (random backbone weights) ===" in out
    assert "random scores" in out and "class frequency" in out
    head_dir = tmp_path / "out" / "AttentionLSTM"
    metrics = json.loads((head_dir / "metrics.json").read_text())
    assert set(metrics) == {"gap", "hit_at_one", "perr", "map", "loss"}
    lines = (head_dir / "predictions.jsonl").read_text().splitlines()
    test_videos = (tmp_path / "library" / "test.list").read_text().splitlines()
    assert len(lines) == len(test_videos) > 0
    for split in ("train", "val", "test"):
        listed = (tmp_path / "library" / f"{split}.list").read_text().splitlines()
        features = (tmp_path / "out" / "features-random" / split / "features.list").read_text().splitlines()
        # Every video got features and kept its labels.
        assert [x.split()[1:] for x in features] == [x.split()[1:] for x in listed]

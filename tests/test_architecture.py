"""The layers hold: core <- extractor, sequence <- videotag <- entry scripts (tools/import_graph.py)."""
import shutil
import subprocess
import sys

from conftest import ROOT

TOOL = f"{ROOT}/tools/import_graph.py"


def run(root):
    return subprocess.run([sys.executable, TOOL, str(root)], capture_output=True, text=True)


def test_the_project_has_no_import_against_its_layers():
    result = run(ROOT)
    assert result.returncode == 0, result.stdout
    assert "videotag -> extractor" in result.stdout and "extractor -> core" in result.stdout


def test_an_upward_or_sideways_import_is_reported(tmp_path):
    for package in ("core", "extractor", "sequence", "videotag"):
        shutil.copytree(f"{ROOT}/{package}", tmp_path / package)
    for script in ("train", "eval", "predict"):
        shutil.copy(f"{ROOT}/{script}.py", tmp_path)
    (tmp_path / "core" / "late.py").write_text("def f():\n    from videotag import tagging\n")
    (tmp_path / "sequence" / "side.py").write_text("from extractor.resnet import FEATURE_DIM\n")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "core/late.py imports videotag" in result.stdout
    assert "sequence/side.py imports extractor.resnet" in result.stdout

"""TSN fine-tuning end to end on tiny generated videos: learning, top-1/top-5, resume, two processes,
--pretrain from another naming scheme, extraction with the tuned weights, bad video lists."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import eval as eval_cli
import train as train_cli
from extractor import weights as weight_names
from extractor.resnet import ResNet
from extractor.sampling import normalize
from extractor.tsn import TSN
from extractor.tsn_data import VideoListSource
from launch import launch_two
from videos import write_colour_classes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """8 videos of 2 classes; the list uses paths relative to its folder."""
    return write_colour_classes(tmp_path_factory.mktemp("tsn_videos"), 8)


def tsn_args(videos, save_dir, *extra, epochs=5):
    overrides = [
        "MODEL.num_layers=50", "MODEL.num_classes=2", "MODEL.drop_rate=0.0", "MODEL.freeze_bn=true",
        f"TRAIN.epoch={epochs}", "TRAIN.batch_size=4", "TRAIN.learning_rate=0.002", "TRAIN.decay_epochs=[3]",
        "TRAIN.num_workers=2", "VALID.batch_size=4", "TEST.batch_size=4", "TEST.seg_num=3"]
    for split in ("TRAIN", "VALID", "TEST"):  # validate and test on the training list: fitting it is the point
        overrides += [f"{split}.filelist={videos / 'train.list'}", f"{split}.short_size=32",
                      f"{split}.target_size=28"]
    overrides += ["TRAIN.seg_num=2", "VALID.seg_num=2"] + list(extra)
    args = ["--model_name", "TSN", "--config", os.path.join(ROOT, "configs", "tsn.yaml"), "--save_dir", str(save_dir)]
    for item in overrides:
        args += ["-o", item]
    return args


def params(path):
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


def assert_same_params(a, b, rtol=1e-5, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.fixture(scope="module")
def trained(videos, tmp_path_factory):
    """One 5-epoch run (learning rate x0.1 after epoch 3) that the other tests compare with."""
    save_dir = tmp_path_factory.mktemp("tsn_trained")
    train_cli.main(tsn_args(videos, save_dir))
    return save_dir


def test_fits_a_tiny_set_and_reports_top1_top5(videos, trained, tmp_path):
    paddle.seed(0)  # the trainer's initial weights (TRAIN.seed 0)
    paddle.save(TSN(50, 2, freeze_bn=True).state_dict(), str(tmp_path / "untrained.pdparams"))

    def evaluate(weights):
        return eval_cli.main(tsn_args(videos, tmp_path / "eval") + ["--weights", str(weights)])

    untrained, first = evaluate(tmp_path / "untrained.pdparams"), evaluate(trained / "TSN_epoch1.pdparams")
    best = evaluate(trained / "TSN_best.pdparams")
    assert set(best) == {"top1", "top5", "loss"}
    assert best == pytest.approx(json.loads((tmp_path / "eval" / "metrics.json").read_text()))
    assert best["top1"] == 1.0 and best["top5"] == 1.0  # 2 classes: top-5 is every class
    last = evaluate(trained / "TSN_epoch5.pdparams")
    assert untrained["loss"] > first["loss"] > last["loss"] and last["top1"] == 1.0


def test_resume_equals_uninterrupted(videos, trained, tmp_path):
    # The learning-rate step after epoch 3 and the epoch-seeded crops must both be restored.
    train_cli.main(tsn_args(videos, tmp_path, epochs=3))
    train_cli.main(tsn_args(videos, tmp_path, epochs=4) + ["--resume"])
    assert_same_params(params(trained / "TSN_epoch4.pdparams"), params(tmp_path / "TSN_epoch4.pdparams"))


def test_two_processes_equal_one(videos, trained, tmp_path):
    # Frozen BN (running statistics) makes each video's features independent of the batch split;
    # with batch statistics each process would normalise only its own half of the batch.
    status, logs = launch_two(["train.py"] + tsn_args(videos, tmp_path / "two", epochs=2), tmp_path / "log")
    assert status == 0, logs[-6000:]
    assert_same_params(params(trained / "TSN_epoch2.pdparams"), params(tmp_path / "two" / "TSN_epoch2.pdparams"),
                       rtol=1e-4, atol=1e-5)
    assert sorted(os.listdir(tmp_path / "two")) == ["TSN_best.pdparams", "TSN_epoch1.pdopt", "TSN_epoch1.pdparams",
                                                  "TSN_epoch2.pdopt", "TSN_epoch2.pdparams", "config.yaml",
                                                  "curves.png", "metrics.jsonl"]


def extract(videos, save_dir, *weights):
    args = ["--filelist", str(videos / "train.list"), "--save_dir", str(save_dir), "--extractor_backend", "dygraph",
            "-o", "MODEL.num_layers=50", "-o", "INFER.seg_num=2", "-o", "INFER.short_size=32",
            "-o", "INFER.target_size=28", "-o", "INFER.batch_size=4"]
    run = subprocess.run([sys.executable, "-m", "extractor", *args, *weights], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return {i: np.load(save_dir / "clips" / f"v{i}.npy") for i in range(8)}


def test_extraction_uses_the_tuned_backbone(videos, trained, tmp_path):
    weights = str(trained / "TSN_best.pdparams")
    tuned = extract(videos, tmp_path / "tuned", "--extractor_weights", weights)
    random = extract(videos, tmp_path / "random")
    model = TSN(50, 2)
    model.set_state_dict(paddle.load(weights))
    model.eval()
    source = VideoListSource(str(videos / "train.list"), {"seg_num": 2, "short_size": 32, "target_size": 28,
                                                          "batch_size": 4}, 2, training=False)
    for i in (0, 1, 5):
        assert tuned[i].shape == (2, 2048)
        with paddle.no_grad():
            expected = model.backbone(paddle.to_tensor(normalize(source.load(i)))).numpy()
        np.testing.assert_allclose(tuned[i], expected, rtol=1e-4, atol=1e-4)
        assert not np.allclose(tuned[i], random[i], rtol=1e-2, atol=1e-3)


def test_pretrain_from_a_static_checkpoint(videos, tmp_path):
    # An "ImageNet" ResNet-50 under VideoTag's static names, given straight to --pretrain.
    paddle.seed(7)
    resnet = ResNet(50)
    ours = {k: v.numpy() for k, v in resnet.state_dict().items()}
    static = {name: ours[target] for name, target in weight_names.name_map(50).items()
              if "_weights" in name or name.startswith("bn")}
    static["fc_0.w_0"] = np.zeros((2048, 1000), np.float32)
    paddle.save({k: paddle.to_tensor(v) for k, v in static.items()}, str(tmp_path / "static.pdparams"))
    train_cli.main(tsn_args(videos, tmp_path / "tuned", "TRAIN.learning_rate=0.0", "TRAIN.weight_decay=0.0",
                            epochs=1) + ["--pretrain", str(tmp_path / "static.pdparams")])
    tuned = params(tmp_path / "tuned" / "TSN_epoch1.pdparams")
    for k, v in ours.items():  # learning rate 0 and frozen BN: the loaded values stay as they were
        np.testing.assert_array_equal(tuned["backbone." + k], v, err_msg=k)
    assert tuned["fc.weight"].shape == (2048, 2)


# ---- bad input: one line naming the list file and line ----

@pytest.mark.smoke
def test_one_epoch_and_bad_video_lists(videos, tmp_path, capsys):
    train_cli.main(tsn_args(videos, tmp_path / "out", epochs=1))
    metrics = eval_cli.main(tsn_args(videos, tmp_path / "out") + ["--weights", str(tmp_path / "out" / "TSN_best.pdparams")])
    assert 0.0 <= metrics["top1"] <= 1.0 and metrics["top5"] == 1.0 and metrics["loss"] > 0
    good = str(videos / "clips" / "v0.mp4")
    cases = {
        "missing": ([f"{good} 0", "nowhere.mp4 1"], ["bad.list:2:", "video file not found"]),
        "malformed": ([f"{good} 0", f"{good} 0 1"], ["bad.list:2:", "malformed line"]),
        "no_label": ([f"{good}"], ["bad.list:1:", "malformed line"]),
        "label_range": ([f"{good} 0", f"{good} 2"], ["bad.list:2:", "label 2 is out of range", "num_classes is 2"]),
        "empty": (["", "# nothing"], ["bad.list", "empty"]),
    }
    for name, (lines, fragments) in cases.items():
        (tmp_path / "bad.list").write_text("\n".join(lines) + "\n")
        with pytest.raises(SystemExit) as exit_info:
            train_cli.main(tsn_args(videos, tmp_path / name, f"TRAIN.filelist={tmp_path / 'bad.list'}"))
        assert exit_info.value.code == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(err) == 1 and all(f in err[0] for f in fragments), (name, err)

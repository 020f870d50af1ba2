"""Heads trained elsewhere load through the real code path and give the original network's outputs:
VideoTag's fluid AttentionLSTM, the PaddleCV zoo's AttentionLSTM / AttentionCluster / NeXtVLAD (both
fluid layouts), PaddleVideo's AttentionLstmHead (with and without `head.`). Fixtures: the original
runtimes' outputs (tests/fixtures/zoo, tests/fixtures/videotag; tools/*_reference)."""
import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest

import eval as eval_cli
import predict as predict_cli
import train as train_cli
from core import checkpoint
from core.config import CONFIG_DIR, load_config
from core.errors import InputError
from features import write_feature_dataset
from sequence import tfrecord
from sequence.data import Batch
from videotag import convert as convert_cli
from videotag.export import export_head
from videotag.heads import InferenceHead
from videotag.models import make_task

FIXTURES = Path(__file__).parent / "fixtures"
ZOO = FIXTURES / "zoo"
VIDEOTAG = FIXTURES / "videotag"
ZOO_CASES = {**json.loads((ZOO / "manifest.json").read_text())["fluid"]["cases"],
             **json.loads((ZOO / "manifest.json").read_text())["paddlevideo"]["cases"]}
ZOO_CONFIG = {"AttentionLSTM": "attention_lstm_yt8m.yaml", "AttentionCluster": "attention_cluster_yt8m.yaml",
              "NeXtVLAD": "nextvlad_yt8m.yaml"}
# The fixture's own sizes; everything else comes from the YouTube-8M configs.
SIZE_KEYS = ("num_classes", "feature_dims", "embedding_size", "lstm_size", "cluster_nums", "cluster_size",
             "groups", "expansion", "hidden_size", "gating_reduction")
VIDEOTAG_SIZES = {"feature_dims": [64], "embedding_size": 32, "lstm_size": 16, "hidden_sizes": [48, 40],
                  "num_classes": 10}


def overrides(sizes):
    return [f"MODEL.{k}={json.dumps(v)}" for k, v in sizes.items()]


def task_for(model_name, config, sizes):
    return make_task(model_name, load_config(str(Path(CONFIG_DIR) / config), overrides(sizes)))


def zoo_task(case):
    meta = ZOO_CASES[case]
    model_name = meta.get("model", "AttentionLSTM")
    sizes = {k: v for k, v in meta["config"].items() if k in SIZE_KEYS}
    sizes["feature_names"] = meta["modalities"]
    if "fc_sizes" in meta["config"] and model_name != "NeXtVLAD":
        sizes["hidden_sizes"] = meta["config"]["fc_sizes"]
    return task_for(model_name, ZOO_CONFIG[model_name], sizes)


def zoo_inputs(case):
    """(features, mask) as our heads take them, from the fixture's io.npz."""
    io, modalities = np.load(ZOO / case / "io.npz"), ZOO_CASES[case]["modalities"]
    if case.startswith("paddlevideo"):
        return [io[f"{m}_data"] for m in modalities], io[f"{modalities[0]}_mask"][:, :, 0]
    if case.startswith("attentioncluster"):  # the frames the zoo reader sampled: seg_num of each video
        features = [io[f"{m}_sampled"] for m in modalities]
        return features, np.ones(features[0].shape[:2], "float32")
    return [io[m] for m in modalities], io["mask"]


def logits_of(model, features, mask):
    model.eval()
    with paddle.no_grad():
        return model([paddle.to_tensor(f) for f in features], paddle.to_tensor(mask)).numpy()


def videotag_inputs(io, batch=None):
    lengths = io["lengths"] if batch is None else io["lengths"][batch]
    rows = range(len(io["lengths"])) if batch is None else batch
    features = np.zeros((len(lengths), lengths.max(), 64), "float32")
    mask = np.zeros(features.shape[:2], "float32")
    for row, i in enumerate(rows):
        features[row, :io["lengths"][i]] = io[f"feature_{i}"]
        mask[row, :io["lengths"][i]] = 1
    return [features], mask


FLUID_LAYOUTS = [(case, layout) for case in ZOO_CASES if not case.startswith("paddlevideo")
                 for layout in ("model.pdparams", "params")]
PADDLEVIDEO_FILES = [(case, name) for case in ZOO_CASES if case.startswith("paddlevideo")
                     for name in ("head.pdparams", "recognizer.pdparams")]


@pytest.mark.smoke
@pytest.mark.parametrize("case, weights", FLUID_LAYOUTS + PADDLEVIDEO_FILES)
def test_zoo_and_paddlevideo_heads_give_the_originals_logits(case, weights):
    task = zoo_task(case)
    model = checkpoint.build_with_weights(task, str(ZOO / case / weights))
    features, mask = zoo_inputs(case)
    expected = np.load(ZOO / case / "io.npz")["logits"]
    np.testing.assert_allclose(logits_of(model, features, mask), expected, rtol=0, atol=1e-5)
    if task.model_name == "AttentionLSTM":  # the LSTM kind follows from the file alone
        assert task.cfg.MODEL.lstm == ("standard" if case.startswith("paddlevideo") else "peephole")


def videotag_task(config="attention_lstm.yaml", **sizes):
    return task_for("AttentionLSTM", config, {**VIDEOTAG_SIZES, **sizes})


@pytest.mark.smoke
def test_videotag_attention_lstm_gives_fluids_probabilities():
    task = videotag_task()
    assert task.cfg.MODEL.lstm == "standard"  # the config's default; the file switches it
    model = checkpoint.build_with_weights(task, str(VIDEOTAG / "attention_lstm.pdparams"))
    assert task.cfg.MODEL.lstm == "peephole"
    io = np.load(VIDEOTAG / "attention_lstm_io.npz")
    logits = logits_of(model, *videotag_inputs(io))
    np.testing.assert_allclose(logits, io["logits"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), io["probs"], rtol=0, atol=1e-4)
    # Another batching (other padding) changes nothing: padded steps never reach a real one.
    logits = logits_of(model, *videotag_inputs(io, batch=np.array([3, 2])))
    np.testing.assert_allclose(logits, io["logits"][[3, 2]], rtol=0, atol=1e-5)


def test_converted_file_loads_like_the_original(tmp_path):
    saved = tmp_path / "vt.safetensors"
    convert_cli.main(["--model", "AttentionLSTM", "--weights", str(VIDEOTAG / "attention_lstm.pdparams"),
                      "--save", str(saved), *sum((["-o", o] for o in overrides(VIDEOTAG_SIZES)), [])])
    task = videotag_task()
    model = checkpoint.build_with_weights(task, str(saved))
    assert task.cfg.MODEL.lstm == "peephole"
    io = np.load(VIDEOTAG / "attention_lstm_io.npz")
    np.testing.assert_allclose(logits_of(model, *videotag_inputs(io)), io["logits"], rtol=0, atol=1e-5)


def test_peephole_head_exports_equal_to_dygraph(tmp_path):
    task = videotag_task()
    model = checkpoint.build_with_weights(task, str(VIDEOTAG / "attention_lstm.pdparams"))
    model.eval()
    export_head(model, task.cfg.MODEL, str(tmp_path / "head"))
    exported = InferenceHead(str(tmp_path / "head"), task.cfg.MODEL.feature_names, "cpu")
    io = np.load(VIDEOTAG / "attention_lstm_io.npz")
    for batch in (None, np.array([1, 2])):  # batch and time are dynamic
        features, mask = videotag_inputs(io, batch)
        logits = exported(Batch(np.arange(len(mask)), [""] * len(mask), features, mask, None))
        np.testing.assert_allclose(logits, logits_of(model, features, mask), rtol=0, atol=1e-5)


def test_finetune_from_videotag_onto_five_classes(tmp_path):
    data = {split: write_feature_dataset(tmp_path / "data", 8, num_classes=5, dim=64, seed=i, prefix=split)
            for i, split in enumerate(("train", "val"))}
    sizes = {**VIDEOTAG_SIZES, "num_classes": 5}
    args = ["--model_name", "AttentionLSTM", "--save_dir", str(tmp_path / "out"),
            "--pretrain", str(VIDEOTAG / "attention_lstm.pdparams")]
    for item in overrides(sizes) + [f"TRAIN.filelist={data['train']}", f"VALID.filelist={data['val']}",
                                    "TRAIN.batch_size=8", "TRAIN.epoch=1", "TRAIN.learning_rate=0.0",
                                    "VALID.batch_size=8", "TRAIN.num_workers=1"]:
        args += ["-o", item]
    train_cli.main(args)  # one step: 8 videos, batch 8
    tuned = {k: v.numpy() for k, v in paddle.load(str(tmp_path / "out" / "AttentionLSTM_epoch1.pdparams")).items()}
    original = videotag_task().adopt_checkpoint(
        checkpoint.read_state(str(VIDEOTAG / "attention_lstm.pdparams")), "videotag")
    assert tuned["classifier.weight"].shape == (40, 5)
    assert set(original) == set(tuned)
    for key in original:
        if not key.startswith("classifier."):  # learning rate 0: all but the fresh classifier as loaded
            np.testing.assert_array_equal(tuned[key], original[key], err_msg=key)
    assert "lstm: peephole" in (tmp_path / "out" / "config.yaml").read_text()


def error_line(capsys, main, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.smoke
def test_unmappable_checkpoints_fail_with_one_line(tmp_path, capsys):
    original = checkpoint.read_state(str(VIDEOTAG / "attention_lstm.pdparams"))
    foreign, incomplete = tmp_path / "foreign.pdparams", tmp_path / "incomplete.pdparams"
    paddle.save({"conv_7.w_0": paddle.zeros([3, 3])}, str(foreign))
    paddle.save({k: paddle.to_tensor(v) for k, v in original.items() if k != "rgb_lstm_backward.b_0"}, str(incomplete))
    base = ["--model_name", "AttentionLSTM"] + sum((["-o", o] for o in overrides(VIDEOTAG_SIZES)), [])
    line = error_line(capsys, eval_cli.main, base + ["--weights", str(foreign), "--save_dir", str(tmp_path)])
    assert str(foreign) in line and "conv_7.w_0" in line and "VideoTag" in line
    line = error_line(capsys, eval_cli.main, base + ["--weights", str(incomplete), "--save_dir", str(tmp_path)])
    assert str(incomplete) in line and "lacks 'rgb_lstm_backward.b_0'" in line


def test_pretrain_matching_under_half_needs_consent():
    task = videotag_task()
    model = task.build_model()
    only_top = {k: v.numpy() for k, v in model.state_dict().items() if k.startswith(("fc1.", "fc2."))}
    with pytest.raises(InputError, match="only 4 of the .* --pretrain_partial"):
        checkpoint.load_matching(model, "top.pdparams", "AttentionLSTM", state=only_top)
    checkpoint.load_matching(model, "top.pdparams", "AttentionLSTM", state=only_top, partial=True)


def test_fluid_folder_reader_refuses_other_files(tmp_path):
    folder = tmp_path / "params"
    folder.mkdir()
    (folder / "fc_0.w_0").write_bytes(b"\x00" * 30)
    with pytest.raises(InputError, match="fc_0.w_0: not a fluid tensor file"):
        checkpoint.read_state(str(folder))


def test_peephole_lstm_trains_and_ignores_padding():
    paddle.seed(0)
    task = videotag_task(drop_rate=0.0, lstm="peephole")
    model = task.build_model()
    model.train()
    io = np.load(VIDEOTAG / "attention_lstm_io.npz")
    features, mask = videotag_inputs(io, batch=np.array([0, 2]))  # 5 and 3 frames
    longer = np.concatenate([features[0], np.full((2, 4, 64), 1e3, "float32")], axis=1)  # wild padding
    longer_mask = np.concatenate([mask, np.zeros((2, 4), "float32")], axis=1)
    logits = model([paddle.to_tensor(features[0])], paddle.to_tensor(mask))
    np.testing.assert_allclose(model([paddle.to_tensor(longer)], paddle.to_tensor(longer_mask)).numpy(),
                               logits.numpy(), rtol=0, atol=1e-6)
    logits.sum().backward()
    for name in ("peephole_l0", "peephole_l0_reverse", "weight_hh_l0_reverse"):
        grad = getattr(model.encoders[0].lstm, name).grad
        assert grad is not None and float(paddle.abs(grad).sum()) > 0, name


@pytest.mark.parametrize("case", ["nextvlad_rgb_audio", "attentionlstm_rgb_audio"])
def test_predict_on_shards_gives_the_zoo_models_tags(case, tmp_path):
    # predict.py --config configs/<head>_yt8m.yaml --weights <zoo file> --filelist <shards>: the
    # YouTube-8M codes go through our reader (dequantisation) and the converted zoo model.
    io, task = np.load(ZOO / case / "io.npz"), zoo_task(case)
    shard = tmp_path / "test0.tfrecord"
    tfrecord.write_tfrecord(str(shard), [
        (f"video{i}", {"rgb": io["rgb_uint8"][i, :n], "audio": io["audio_uint8"][i, :n]}, [])
        for i, n in enumerate(io["lengths"])])
    args = ["--model_name", task.model_name, "--config", str(Path(CONFIG_DIR) / ZOO_CONFIG[task.model_name]),
            "--weights", str(ZOO / case / "model.pdparams"), "--filelist", str(shard),
            "--save_dir", str(tmp_path / "out"), "--topk", "7", "-o", "TRAIN.num_workers=1"]
    for key, value in task.cfg.MODEL.items():
        if key in SIZE_KEYS + ("hidden_sizes",):
            args += ["-o", f"MODEL.{key}={json.dumps(value)}"]
    assert predict_cli.main(args) == 0
    lines = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [line["video"] for line in lines] == ["video0", "video1", "video2"]
    for line, probs in zip(lines, io["probs"]):
        got = np.zeros(len(probs))
        for tag in line["tags"]:
            got[tag["class_id"]] = tag["probability"]
        np.testing.assert_allclose(got, probs, rtol=0, atol=2e-6)


def test_save_persistables_folder_with_optimizer_state(tmp_path):
    # save_persistables also writes optimizer accumulators and the learning rate: ignored.
    case = "attentionlstm_rgb_audio"
    folder = tmp_path / "persistables"
    shutil.copytree(ZOO / case / "params", folder)
    shutil.copy(folder / "fc_1.w_0", folder / "fc_1.w_0_moment_0")
    shutil.copy(folder / "fc_0.b_0", folder / "learning_rate_0")
    model = checkpoint.build_with_weights(zoo_task(case), str(folder))
    expected = np.load(ZOO / case / "io.npz")["logits"]
    np.testing.assert_allclose(logits_of(model, *zoo_inputs(case)), expected, rtol=0, atol=1e-5)

"""Configs: the model's reference config is the schema and the defaults; VideoTag's files load unchanged
(their keys mapped, or ignored with a reason); wrong keys, types and ranges fail as one line."""
import logging

import pytest

from core import config as config_module
from core.config import load_config
from core.errors import InputError
from core.trainer import learning_rate
from extractor.sampling import check_resize_mode
from videotag.models import default_config_path
from videotag_yaml import write_configs

LSTM_REF = default_config_path("AttentionLSTM")
TSN_REF = default_config_path("TSN")


@pytest.fixture
def videotag_configs(tmp_path):
    return write_configs(tmp_path)


def test_videotag_attention_lstm_configs_load_as_videotag_meant_them(videotag_configs, caplog):
    config_module._logged_ignored.clear()
    with caplog.at_level(logging.INFO, logger="videotag"):
        cfg = load_config(videotag_configs["attention_lstm.yaml"], [], LSTM_REF)
    train = cfg.TRAIN
    assert (train.learning_rate, train.batch_size, train.epoch, train.decay_epochs) == (0.001, 1024, 10, [5.0])
    assert (train.weight_decay, train.num_samples, train.optimizer) == (0.0008, 5000000, "RMSProp")
    assert train.weight_decay_on == "all_but_fc_biases"  # defaults come from our reference config
    assert cfg.MODEL.hidden_sizes == [8192, 4096] and cfg.MODEL.lstm_size == 512
    assert (cfg.TEST.batch_size, cfg.INFER.batch_size) == (128, 1)
    ignored = [r.getMessage() for r in caplog.records if "ignoring VideoTag keys" in r.getMessage()]
    assert len(ignored) == 1
    for key in ("MODEL.dataset", "MODEL.bone_nework", "TRAIN.pretrain_base", "TRAIN.use_gpu", "TRAIN.num_gpus"):
        assert key in ignored[0]
    single = load_config(videotag_configs["attention_lstm-single.yaml"], [], LSTM_REF)
    assert (single.TRAIN.learning_rate, single.TRAIN.batch_size, single.VALID.batch_size) == (0.000125, 128, 128)
    # VideoTag's decay points: decay_epochs x num_samples examples (steps of the total batch)
    assert learning_rate(train, 0, 5 * 5000000 - 1024) == pytest.approx(0.001)
    assert learning_rate(train, 0, 5 * 5000000) == pytest.approx(0.0001)


def test_videotag_tsn_configs_load_as_videotag_meant_them(videotag_configs):
    cfg = load_config(videotag_configs["tsn.yaml"], [], TSN_REF)
    train = cfg.TRAIN
    assert isinstance(train.weight_decay, float) and train.weight_decay == 1e-4  # `1e-4`: a string to PyYAML
    assert (train.decay_gamma, train.momentum, train.learning_rate, train.batch_size) == (0.1, 0.9, 0.01, 256)
    assert train.decay_epochs == [15.0, 30.0]  # thirds of the 45 epochs
    assert train.num_samples == int(224684 / 256 + 1) * 256
    assert train.num_workers == 12 and cfg.INFER.num_workers == 12
    assert (cfg.TEST.seg_num, cfg.INFER.seg_num, cfg.INFER.resize) == (7, 300, "videotag")
    assert cfg.MODEL.drop_rate == 0.0 and train.weight_decay_on == "all"
    short = load_config(videotag_configs["tsn-single.yaml"], ["TRAIN.epoch=6"], TSN_REF)
    assert short.TRAIN.decay_epochs == [2.0, 4.0] and short.TRAIN.batch_size == 32
    assert load_config(videotag_configs["tsn.yaml"], ["TRAIN.decay_epochs=[10]"], TSN_REF).TRAIN.decay_epochs == [10.0]


def test_a_user_file_is_merged_onto_the_reference(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("TRAIN:\n  epoch: 3\n  learning_rate: 1e-3\n")
    cfg = load_config(str(user), ["VALID.batch_size=7"], LSTM_REF)
    assert cfg.TRAIN.epoch == 3 and cfg.TRAIN.learning_rate == 0.001 and cfg.VALID.batch_size == 7
    assert cfg.MODEL.lstm_size == 512 and cfg.TRAIN.optimizer == "RMSProp"
    assert cfg.path == str(user)


@pytest.mark.parametrize("override, message", [
    ("TRAIN.epoch=abc", "-o: TRAIN.epoch must be an integer, not 'abc'"),
    ("TRAIN.epoch=2.5", "-o: TRAIN.epoch must be an integer, not 2.5"),
    ("TRAIN.epoch=0", "-o: TRAIN.epoch must be at least 1, not 0"),
    ("TRAIN.batch_size=0", "-o: TRAIN.batch_size must be at least 1, not 0"),
    ("TRAIN.batch_size=-4", "-o: TRAIN.batch_size must be at least 1, not -4"),
    ("TRAIN.learning_rate=-0.1", "-o: TRAIN.learning_rate must be at least 0, not -0.1"),
    ("TRAIN.learning_rate=fast", "-o: TRAIN.learning_rate must be a number, not 'fast'"),
    ("TRAIN.decay_epochs=5", r"-o: TRAIN.decay_epochs must be a list, e.g. \[5\], not 5"),
    ("TRAIN.decay_epochs=[a]", "-o: TRAIN.decay_epochs must be a list of numbers"),
    ("MODEL.lstm_size=[8]", r"-o: MODEL.lstm_size must be an integer, not \[8\]"),
    ("MODEL.feature_dims=[2048.5]", "-o: MODEL.feature_dims must be a list of integers"),
    ("MODEL.drop_rate=1.5", "-o: MODEL.drop_rate must be below 1, not 1.5"),
    ("TRAIN.seed=true", "-o: TRAIN.seed must be an integer, not True"),
    ("MODEL.cluster_nums=[8]", "-o: unknown key MODEL.cluster_nums; valid keys of MODEL: drop_rate, embedding_size"),
    ("TRAIN.epochs=3", "-o: unknown key TRAIN.epochs; valid keys of TRAIN: batch_loss, batch_size"),
    ("TRIAN.epoch=3", "unknown section 'TRIAN'"),
    ("MODEL.seglen=3", r"-o: MODEL.seglen must be 1 \(VideoTag's value"),
])
def test_bad_overrides_are_one_line_naming_the_key(override, message):
    with pytest.raises(InputError, match=message):
        load_config(LSTM_REF, [override], LSTM_REF)


def test_bad_values_in_a_file_name_the_file(tmp_path):
    user = tmp_path / "bad.yaml"
    user.write_text("TRAIN:\n  batch_size: 0\n")
    with pytest.raises(InputError, match=r"bad.yaml: TRAIN.batch_size must be at least 1, not 0"):
        load_config(str(user), [], LSTM_REF)
    user.write_text("TRAIN:\n  lr: 0.1\n")
    with pytest.raises(InputError, match=r"bad.yaml: unknown key TRAIN.lr; valid keys of TRAIN: batch_loss, batch_size"):
        load_config(str(user), [], LSTM_REF)
    user.write_text("MODEL:\n  image_mean: [0.5, 0.5, 0.5]\n")
    with pytest.raises(InputError, match=r"MODEL.image_mean must be \[0.485, 0.456, 0.406\]"):
        load_config(str(user), [], TSN_REF)
    user.write_text("TRAIN:\n  total_videos: many\n")
    with pytest.raises(InputError, match="TRAIN.total_videos must be a positive integer, not 'many'"):
        load_config(str(user), [], TSN_REF)
    user.write_text("INFER:\n  resize: stretch\n")
    with pytest.raises(InputError, match="resize 'stretch' is not one of videotag, paddlevideo, keep_aspect"):
        check_resize_mode(load_config(str(user), [], TSN_REF).INFER.resize, str(user))


@pytest.mark.parametrize("model", ["AttentionLSTM", "AttentionCluster", "NeXtVLAD", "TSN"])
def test_every_reference_config_passes_its_own_checks(model):
    path = default_config_path(model)
    assert load_config(path, [], path) == load_config(path)

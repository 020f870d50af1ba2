"""Stage-two heads: config building, the padding contract, export, and learning a toy task."""
import os

import videotag  # noqa: F401  (sets OMP_NUM_THREADS before paddle is imported)
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

pytestmark = pytest.mark.smoke  # also run on Paddle 2.6 in CI

from sequence.models.attention_cluster import AttentionCluster
from sequence.models.attention_lstm import AttentionLSTM
from sequence.models.nextvlad import NeXtVLAD
from core import bf16_products
from core.config import CONFIG_DIR, load_config
from core.errors import InputError
from videotag.models import HEADS, build_head

FEATURE_DIMS = [16, 8]  # two modalities, like YouTube-8M's rgb + audio
NUM_CLASSES = 5


def tiny_model(name, feature_dims=FEATURE_DIMS, num_classes=NUM_CLASSES, drop_rate=0.0):
    if name == "AttentionLSTM":
        return AttentionLSTM(num_classes, feature_dims, embedding_size=16, lstm_size=16,
                             drop_rate=drop_rate, hidden_sizes=(32, 32))
    if name == "AttentionCluster":
        return AttentionCluster(num_classes, feature_dims, cluster_nums=4, drop_rate=drop_rate,
                                hidden_sizes=(32, 32))
    return NeXtVLAD(num_classes, feature_dims, cluster_size=6, groups=4, expansion=2,
                    hidden_size=16, gating_reduction=4, drop_rate=drop_rate)


def padded_batch(sequences, total_steps, rng):
    """Pad sequences (lists of per-modality [T_i, D] arrays) to total_steps with large garbage."""
    features = []
    for modality in range(len(sequences[0])):
        dim = sequences[0][modality].shape[1]
        batch = rng.normal(0.0, 10.0, (len(sequences), total_steps, dim)).astype("float32")
        for row, sequence in enumerate(sequences):
            batch[row, :len(sequence[modality])] = sequence[modality]
        features.append(paddle.to_tensor(batch))
    lengths = np.array([len(sequence[0]) for sequence in sequences])
    mask = (np.arange(total_steps)[None, :] < lengths[:, None]).astype("float32")
    return features, paddle.to_tensor(mask)


def random_sequences(lengths, rng, feature_dims=FEATURE_DIMS):
    return [[rng.normal(size=(length, dim)).astype("float32") for dim in feature_dims]
            for length in lengths]


ALL_MODELS = sorted(HEADS)


@pytest.mark.parametrize("config_file, model_class", [
    ("attention_lstm.yaml", AttentionLSTM),
    ("attention_cluster.yaml", AttentionCluster),
    ("nextvlad.yaml", NeXtVLAD),
])
def test_build_model_from_config_uses_its_sizes(config_file, model_class):
    model_cfg = dict(load_config(os.path.join(CONFIG_DIR, config_file)).MODEL)
    # Shrink every size so the test stays fast; the keys are the config's own.
    shrunk = {"num_classes": 7, "feature_dims": [16], "embedding_size": 6, "lstm_size": 5,
              "cluster_nums": 3, "cluster_size": 4, "groups": 2, "hidden_size": 8}
    model_cfg.update({key: value for key, value in shrunk.items() if key in model_cfg})
    model = build_head(model_cfg)
    assert type(model) is model_class
    assert isinstance(model.classifier, paddle.nn.Linear)
    assert model.classifier.weight.shape[1] == 7
    if model_class is AttentionLSTM:
        assert model.encoders[0].lstm.hidden_size == 5
        assert model.encoders[0].embedding.weight.shape == [16, 6]
    elif model_class is AttentionCluster:
        assert model.encoders[0].cluster_scores.weight.shape == [16, 3]
    else:
        assert model.encoders[0].centers.shape == [4, 16]  # expansion 2 * 16 / groups 2
        assert model.hidden.weight.shape == [4 * 16, 8]


def test_build_model_rejects_unknown_name_and_missing_keys():
    with pytest.raises(InputError, match="NetVLAD"):
        build_head({"name": "NetVLAD", "num_classes": 3, "feature_dims": [4]})
    with pytest.raises(InputError, match="num_classes"):
        build_head({"name": "NeXtVLAD", "feature_dims": [4]})


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("training", [False, True])
def test_padding_never_changes_the_logits(name, training):
    rng = np.random.RandomState(0)
    paddle.seed(0)
    model = tiny_model(name, drop_rate=0.0)
    model.train() if training else model.eval()
    sequences = random_sequences([7, 3, 1, 5], rng)
    short_features, short_mask = padded_batch(sequences, 7, rng)
    long_features, long_mask = padded_batch(sequences, 12, rng)
    short_logits = model(short_features, short_mask).numpy()
    long_logits = model(long_features, long_mask).numpy()
    assert short_logits.shape == (4, NUM_CLASSES)
    np.testing.assert_allclose(long_logits, short_logits, atol=1e-5, rtol=0)
    if not training:
        # In eval mode every sequence is independent of its batch: compare with each alone, unpadded.
        for row, sequence in enumerate(sequences):
            alone = model([paddle.to_tensor(x[None]) for x in sequence],
                          paddle.ones([1, len(sequence[0])])).numpy()
            np.testing.assert_allclose(long_logits[row], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_padded_frames_get_no_gradient(name):
    rng = np.random.RandomState(1)
    model = tiny_model(name, drop_rate=0.0)
    model.train()
    features, mask = padded_batch(random_sequences([6, 2, 4], rng), 9, rng)
    for frames in features:
        frames.stop_gradient = False
    model(features, mask).sum().backward()
    padded = mask.numpy() == 0
    for frames in features:
        gradient = np.abs(frames.grad.numpy())
        # Not exactly 0: Paddle's softmax clamps exp, so a masked step keeps a weight near 1e-28.
        assert gradient[padded].max() < 1e-20
        assert gradient[~padded].max() > 1e-6


def test_nextvlad_batch_statistics_come_from_real_frames_only():
    rng = np.random.RandomState(2)
    sequences = random_sequences([5, 2, 4], rng)
    running_stats = []
    for total_steps in (5, 11):
        paddle.seed(0)
        model = tiny_model("NeXtVLAD", drop_rate=0.0)
        model.train()
        features, mask = padded_batch(sequences, total_steps, rng)
        model(features, mask)
        cluster_bn = model.encoders[0].cluster_bn
        running_stats.append((cluster_bn._mean.numpy(), cluster_bn._variance.numpy()))
    np.testing.assert_allclose(running_stats[1][0], running_stats[0][0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(running_stats[1][1], running_stats[0][1], atol=1e-6, rtol=0)
    # The running mean moved from 0 by (1 - momentum) times the mean over the 11 real frames.
    encoder = model.encoders[0]
    real_frames = paddle.to_tensor(np.concatenate([sequence[0] for sequence in sequences]))
    frame_logits = encoder.cluster_logits(encoder.expand(real_frames)).numpy()
    np.testing.assert_allclose(running_stats[1][0], 0.1 * frame_logits.mean(axis=0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_state_dict_round_trip_and_classifier(name):
    rng = np.random.RandomState(3)
    paddle.seed(0)
    source = tiny_model(name)
    paddle.seed(1)
    target = tiny_model(name)
    source.eval()
    target.eval()
    features, mask = padded_batch(random_sequences([4, 2], rng), 4, rng)
    assert not np.allclose(source(features, mask).numpy(), target(features, mask).numpy())
    target.set_state_dict(source.state_dict())
    np.testing.assert_array_equal(source(features, mask).numpy(), target(features, mask).numpy())
    assert "classifier.weight" in source.state_dict()
    assert source.classifier.weight.shape[1] == NUM_CLASSES


@pytest.mark.parametrize("name", ALL_MODELS)
def test_exported_model_matches_dygraph(name, tmp_path):
    rng = np.random.RandomState(4)
    paddle.seed(0)
    model = tiny_model(name, drop_rate=0.5)
    model.eval()
    input_spec = [
        [paddle.static.InputSpec([None, None, dim], "float32", name=f"feature_{i}")
         for i, dim in enumerate(FEATURE_DIMS)],
        paddle.static.InputSpec([None, None], "float32", name="mask"),
    ]
    path = str(tmp_path / "model")
    paddle.jit.save(paddle.jit.to_static(model, input_spec=input_spec, full_graph=True), path)
    assert os.path.isfile(path + ".pdiparams")
    loaded = paddle.jit.load(path)
    # Two batch sizes and lengths: the saved program must not have fixed either.
    for lengths, total_steps in (([3, 6, 1], 8), ([2, 5, 5, 4, 1], 5)):
        features, mask = padded_batch(random_sequences(lengths, rng), total_steps, rng)
        expected = model(features, mask).numpy()
        exported = loaded(*features, mask)  # the saved program takes the list flattened
        np.testing.assert_allclose(exported.numpy(), expected, atol=1e-4, rtol=0)


def prototype_task(num_sequences, prototypes, rng, max_steps=12):
    """Sequences of noise frames with some of the class prototypes in them; labels say which.

    Padded frames are prototypes too, so a head that reads padding learns the wrong labels.
    """
    num_classes, dim = prototypes.shape
    labels = (rng.rand(num_sequences, num_classes) < 0.35).astype("float32")
    lengths = rng.randint(num_classes, max_steps + 1, size=num_sequences)
    frames = rng.normal(size=(num_sequences, max_steps, dim)).astype("float32")
    for row, length in enumerate(lengths):
        present = np.flatnonzero(labels[row])
        positions = rng.permutation(length)[:len(present)]
        frames[row, positions] = prototypes[present] + 0.3 * rng.normal(size=(len(present), dim))
        frames[row, length:] = prototypes[rng.randint(num_classes, size=max_steps - length)]
    mask = (np.arange(max_steps)[None, :] < lengths[:, None]).astype("float32")
    return frames, mask, labels


def mean_average_precision(scores, labels):
    precisions = []
    for column in range(labels.shape[1]):
        ranked = labels[np.argsort(-scores[:, column], kind="stable"), column]
        hits = np.cumsum(ranked)
        precisions.append(np.sum(ranked * hits / np.arange(1, len(ranked) + 1)) / ranked.sum())
    return float(np.mean(precisions))


def prototype_map(name, bf16=False):
    """Test mAP of a tiny head trained 100 steps on the prototype task (`bf16`: --amp's CPU products)."""
    rng = np.random.RandomState(5)
    paddle.seed(5)
    num_classes, dim = 6, 16
    prototypes = 2.0 * rng.normal(size=(num_classes, dim)).astype("float32")
    train_frames, train_mask, train_labels = prototype_task(256, prototypes, rng)
    test_frames, test_mask, test_labels = prototype_task(128, prototypes, rng)
    model = tiny_model(name, feature_dims=[dim], num_classes=num_classes, drop_rate=0.1)
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    model.train()
    batch_size = 32
    for step in range(100):
        rows = rng.choice(len(train_frames), batch_size, replace=False)
        with bf16_products.enabled(bf16):
            logits = model([paddle.to_tensor(train_frames[rows])], paddle.to_tensor(train_mask[rows]))
        loss = F.binary_cross_entropy_with_logits(
            logits, paddle.to_tensor(train_labels[rows]), reduction="none").sum(axis=1).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    model.eval()
    with paddle.no_grad(), bf16_products.enabled(bf16):
        scores = model([paddle.to_tensor(test_frames)], paddle.to_tensor(test_mask)).numpy()
    return mean_average_precision(scores, test_labels)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_head_learns_which_prototypes_a_sequence_contains(name):
    assert prototype_map(name) > 0.9  # chance is the positive rate, about 0.35


@pytest.mark.skipif(bool(bf16_products.unavailable_reason()), reason=bf16_products.unavailable_reason() or "runs")
@pytest.mark.parametrize("name", ["AttentionLSTM", "NeXtVLAD"])
def test_heads_with_a_bf16_path_learn_as_well_with_it(name):
    assert prototype_map(name, bf16=True) > 0.9


def test_nextvlad_eigen_file_rescales_rgb(tmp_path):
    rng = np.random.default_rng(0)
    eigenvalues = rng.uniform(0.1, 4.0, (FEATURE_DIMS[0] + 3, 1))  # stored as [n, 1], like the reference file
    np.save(tmp_path / "eigenvals.npy", eigenvalues)
    sizes = dict(num_classes=NUM_CLASSES, feature_dims=FEATURE_DIMS, cluster_size=4, groups=2, hidden_size=8,
                 gating_reduction=2, drop_rate=0.0)
    paddle.seed(0)
    scaled = NeXtVLAD(eigen_file=str(tmp_path / "eigenvals.npy"), **sizes)
    plain = NeXtVLAD(**sizes)
    plain.set_state_dict({k: v for k, v in scaled.state_dict().items() if k != "rgb_scale"})
    scaled.eval(), plain.eval()
    features, mask = padded_batch(random_sequences([5, 3], rng), 6, rng)
    scale = np.sqrt(eigenvalues[:FEATURE_DIMS[0], 0]) + 1e-4
    by_hand = [(features[0] - 4.0 / 512) * paddle.to_tensor(scale, dtype="float32")] + features[1:]
    np.testing.assert_allclose(scaled(features, mask).numpy(), plain(by_hand, mask).numpy(), rtol=1e-5, atol=1e-6)
    assert scaled.rgb_scale.stop_gradient
    with pytest.raises(InputError, match="eigenvalues"):
        np.save(tmp_path / "short.npy", eigenvalues[:3])
        NeXtVLAD(eigen_file=str(tmp_path / "short.npy"), **sizes)

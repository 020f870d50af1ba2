import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from sequence.metrics import gap, hit_at_one, mean_ap, perr


def test_gap_hand_worked():
    # Video 0: top-2 = (0.9, true), (0.8, false); video 1: top-2 = (0.7, true), (0.2, false).
    # Pooled and sorted: T F T F -> precisions 1, 2/3 at the true items; P = 3 (one true label of
    # video 1 falls outside its top-2): GAP = (1 + 2/3) / 3.
    predictions = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.1]])
    labels = np.array([[1, 0, 0], [1, 0, 1]])
    assert gap(predictions, labels, top_k=2) == pytest.approx((1 + 2 / 3) / 3)


def test_gap_is_global_not_a_mean_of_batches():
    rng = np.random.default_rng(0)
    predictions = rng.random((40, 10))
    labels = (rng.random((40, 10)) < 0.2).astype(int)
    whole = gap(predictions, labels, top_k=3)
    batch_mean = np.mean([gap(predictions[i:i + 8], labels[i:i + 8], top_k=3) for i in range(0, 40, 8)])
    assert whole != pytest.approx(batch_mean)
    # The whole-set value does not depend on the order of the videos.
    perm = rng.permutation(40)
    assert gap(predictions[perm], labels[perm], top_k=3) == pytest.approx(whole)


def test_gap_ties_do_not_depend_on_order():
    # All scores equal: whatever order, precision is read at the end of the tied block.
    predictions = np.full((2, 3), 0.5)
    labels = np.array([[1, 0, 0], [0, 0, 1]])
    assert gap(predictions, labels, top_k=3) == pytest.approx(2 / 6)
    assert gap(predictions, labels[:, ::-1], top_k=3) == pytest.approx(2 / 6)


def test_gap_no_positive_is_zero_and_perfect_is_one():
    predictions = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert gap(predictions, np.zeros((2, 2), int)) == 0.0
    assert gap(predictions, np.array([[1, 0], [0, 1]])) == pytest.approx(1.0)


def test_hit_at_one_counts_videos_without_labels_as_misses():
    predictions = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([[1, 0], [1, 0], [0, 0]])
    assert hit_at_one(predictions, labels) == pytest.approx(1 / 3)


def test_perr_hand_worked_and_skips_unlabelled_videos():
    predictions = np.array([[0.9, 0.8, 0.1], [0.9, 0.0, 0.5], [0.5, 0.5, 0.5]])
    labels = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    # Video 0: k=2, top-2 = {0, 1}: 1/2. Video 1: k=1, top-1 = {0}: 0. Video 2 has no labels.
    assert perr(predictions, labels) == pytest.approx(0.25)
    # A true label with score 0 does not count.
    assert perr(np.array([[0.0, -1.0]]), np.array([[1, 0]])) == 0.0


def test_mean_ap_matches_sklearn_and_skips_classes_without_positives():
    rng = np.random.default_rng(1)
    predictions = rng.random((30, 5))
    labels = (rng.random((30, 5)) < 0.3).astype(int)
    labels[:, 4] = 0
    expected = np.mean([average_precision_score(labels[:, c], predictions[:, c]) for c in range(4)])
    assert mean_ap(predictions, labels) == pytest.approx(expected)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        gap(np.zeros((2, 3)), np.zeros((2, 4)))

"""YouTube-8M metrics on whole evaluation sets.

Every function takes `predictions` [N, C] (scores; higher means more likely) and `labels` [N, C]
in {0, 1} as numpy arrays and returns a float. Callers gather the predictions of the whole
evaluation set first: GAP of per-batch means is a different, batch-size-dependent number.

Tied scores are ranked as one block (precision is read at the end of the block), so the order
of tied items, and hence the input order, can never inflate a result.
"""
import numpy as np


def _as_arrays(predictions, labels):
    predictions = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 2:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must both be [N, C]")
    return predictions, labels.astype(np.float64)


def _tie_aware_average_precision(scores, is_true, num_positives):
    """sum_i is_true(i) * precision@i / num_positives over items sorted by score, ties as one block."""
    if num_positives == 0 or scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    scores, is_true = scores[order], is_true[order]
    # The last position of each block of equal scores.
    block_ends = np.flatnonzero(np.append(np.diff(scores) != 0, True))
    true_so_far = np.cumsum(is_true)[block_ends]
    true_in_block = np.diff(np.concatenate([[0.0], true_so_far]))
    precision_at_block_end = true_so_far / (block_ends + 1)
    return float(np.sum(true_in_block * precision_at_block_end) / num_positives)


def gap(predictions, labels, top_k=20):
    """Global Average Precision: each video's top_k (score, is_true) pairs pooled over all videos.

    The denominator counts every true label, also those that fall outside every top_k.
    """
    predictions, labels = _as_arrays(predictions, labels)
    top_k = min(top_k, predictions.shape[1])
    top = np.argsort(-predictions, axis=1, kind="stable")[:, :top_k]
    scores = np.take_along_axis(predictions, top, axis=1).ravel()
    is_true = np.take_along_axis(labels, top, axis=1).ravel()
    return _tie_aware_average_precision(scores, is_true, labels.sum())


def hit_at_one(predictions, labels):
    """Mean over videos of whether the top-scored class is a true label."""
    predictions, labels = _as_arrays(predictions, labels)
    if len(predictions) == 0:
        return 0.0
    best = predictions.argmax(axis=1)
    return float(labels[np.arange(len(labels)), best].mean())


def perr(predictions, labels):
    """Precision at equal recall rate: per video with k true labels, the precision of its top k
    (a prediction counts only when its score is > 0), averaged over the videos that have labels."""
    predictions, labels = _as_arrays(predictions, labels)
    precisions = []
    for scores, truth in zip(predictions, labels):
        k = int(truth.sum())
        if k == 0:
            continue
        top = np.argsort(-scores, kind="stable")[:k]
        precisions.append(np.sum(truth[top] * (scores[top] > 0)) / k)
    return float(np.mean(precisions)) if precisions else 0.0


def mean_ap(predictions, labels):
    """Mean over classes with at least one positive of the class's average precision."""
    predictions, labels = _as_arrays(predictions, labels)
    positives = labels.sum(axis=0)
    aps = [_tie_aware_average_precision(predictions[:, c], labels[:, c], positives[c])
           for c in np.flatnonzero(positives)]
    return float(np.mean(aps)) if aps else 0.0


def all_metrics(predictions, labels, top_k=20):
    return {"gap": gap(predictions, labels, top_k), "hit_at_one": hit_at_one(predictions, labels),
            "perr": perr(predictions, labels), "map": mean_ap(predictions, labels)}

"""SROCC and PLCC: how well predicted quality scores follow the true ones over a whole evaluation set.

PLCC is Pearson's linear correlation; SROCC is Spearman's rank correlation, Pearson's on the ranks,
tied values sharing the mean of their ranks (scipy.stats.spearmanr's definition, which
PaddleVideo's quality metric calls). Both are computed over the whole set gathered first: a mean of
per-batch correlations is another, batch-size-dependent number.
"""
import numpy as np
import paddle
import paddle.nn.functional as F


def _pair(predictions, targets):
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    if predictions.shape != targets.shape:
        raise ValueError(f"{predictions.size} predictions for {targets.size} targets")
    return predictions, targets


def average_ranks(values):
    """Ranks 1..n of `values`, ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    block_starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    block_ends = np.append(block_starts[1:], len(values))  # exclusive
    block_rank = (block_starts + 1 + block_ends) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(block_rank, block_ends - block_starts)
    return ranks


def plcc(predictions, targets):
    """Pearson's linear correlation; 0.0 when either side is constant (undefined: scipy gives nan),
    so an untrained model that predicts one value never counts as better than a ranking one."""
    x, y = _pair(predictions, targets)
    if x.size < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float(np.clip((x * y).sum() / denominator, -1.0, 1.0)) if denominator > 0 else 0.0


def srocc(predictions, targets):
    """Spearman's rank correlation (ties: average ranks); 0.0 when either side is constant."""
    x, y = _pair(predictions, targets)
    return plcc(average_ranks(x), average_ranks(y))


def quality_metrics(predictions, scores):
    """What the quality models report over a whole set: srocc, plcc and the L1 loss (their training
    loss), predictions and scores numpy [N, 1] or [N]."""
    predictions, scores = _pair(predictions, scores)
    return {"srocc": srocc(predictions, scores), "plcc": plcc(predictions, scores),
            "loss": float(np.abs(predictions - scores).mean()) if scores.size else 0.0}


class ScoreRegression:
    """What the quality tasks (end to end and on features) share: trained with the L1 loss of
    PaddleVideo's quality model on the scores, reporting quality_metrics, the best by SROCC."""
    best_metric = "srocc"

    def loss(self, predictions, batch):
        return F.l1_loss(predictions, paddle.to_tensor(batch.scores))

    def targets(self, batch):
        return batch.scores

    def metrics(self, predictions, scores):
        return quality_metrics(predictions, scores)

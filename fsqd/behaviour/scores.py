"""Window-level scores of a classifier: accuracy, macro-F1, confusion, NLL and Brier."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def confusion(
    labels: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer], k: int
) -> npt.NDArray[np.int64]:
    """(K, K) counts: row = true label, column = predicted."""
    flat = np.asarray(labels, np.int64) * k + np.asarray(predicted, np.int64)
    out: npt.NDArray[np.int64] = np.bincount(flat, minlength=k * k).reshape(k, k)
    return out


def per_class_f1(matrix: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """F1 per label; 0 for a label neither present nor predicted (as scikit-learn)."""
    tp = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: npt.NDArray[np.float64] = np.where(denominator > 0, 2 * tp / denominator, 0.0)
    return out


def macro_f1(matrix: npt.NDArray[np.int64]) -> float:
    return float(per_class_f1(matrix).mean())


def accuracy(matrix: npt.NDArray[np.int64]) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def brier(probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer]) -> float:
    """Multi-class Brier score: mean over windows of sum_k (p_k - [k = y])^2, in [0, 2]."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(probs)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


__all__ = ["accuracy", "brier", "confusion", "macro_f1", "per_class_f1"]

"""Window-level numbers of a calibration, before and after: one JSON-ready dict.

What ``fsqd model calibrate`` stores in the card's ``metrics`` and ``fsqd model evaluate``
prints: accuracy, macro-F1, the confusion matrix, ECE (equal-width and adaptive bins),
MCE, NLL and Brier, and the conformal sets' coverage and size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.conformal import coverage
from fsqd.behaviour.reliability import BINS, reliability
from fsqd.behaviour.scores import accuracy, brier, confusion, macro_f1, per_class_f1
from fsqd.behaviour.sets import softmax
from fsqd.behaviour.temperature import nll
from fsqd.model.calibration import ConformalSpec

Bias = tuple[float, ...] | None


def probability_metrics(
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    temperature: float,
    bias: Bias = None,
) -> dict[str, float]:
    probs = softmax(logits, temperature, bias)
    width = reliability(probs, labels, BINS, "width")
    return {
        "ece": width.ece,
        "ece_adaptive": reliability(probs, labels, BINS, "mass").ece,
        "mce": width.mce,
        "nll": nll(logits, labels, temperature, bias),
        "brier": brier(probs, labels),
    }


def classification_metrics(
    logits: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> dict[str, Any]:
    k = logits.shape[1]
    matrix = confusion(labels, logits.argmax(axis=1), k)
    return {
        "accuracy": accuracy(matrix),
        "macro_f1": macro_f1(matrix),
        "f1": [float(v) for v in per_class_f1(matrix)],
        "confusion": matrix.tolist(),
        "windows_per_label": [int(v) for v in np.bincount(labels, minlength=k)],
    }


def set_metrics(
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    temperature: float,
    spec: ConformalSpec,
    bias: Bias = None,
) -> dict[str, Any]:
    c = coverage(softmax(logits, temperature, bias), labels, spec)
    return {
        "target": spec.coverage,
        "coverage": c.overall,
        "per_label": [None if np.isnan(v) else v for v in c.per_class],
        "mean_set_size": c.mean_size,
        "empty_sets": c.empty,
    }


def window_metrics(
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    temperature: float,
    spec: ConformalSpec | None,
    bias: Bias = None,
) -> dict[str, Any]:
    """Everything about these windows under a temperature and bias (and sets, when given)."""
    out: dict[str, Any] = {"windows": len(labels), **classification_metrics(logits, labels)}
    out["raw"] = probability_metrics(logits, labels, 1.0)
    out["calibrated"] = probability_metrics(logits, labels, temperature, bias)
    if spec is not None:
        out["sets"] = set_metrics(logits, labels, temperature, spec, bias)
    return out


__all__ = ["classification_metrics", "probability_metrics", "set_metrics", "window_metrics"]

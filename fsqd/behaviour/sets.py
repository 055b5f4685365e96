"""Calibrated probabilities and conformal prediction sets from the head's logits.

The runtime half of the card's calibration: the temperature divides the logits before the
softmax (and a per-label bias is added, when fitted), and the conformal threshold turns each
window's probabilities into the set of labels that holds the true one with the calibrated
coverage. ``fsqd model calibrate`` fits
both with the same functions, so what is fitted is exactly what runs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fsqd.model.calibration import ConformalSpec


def softmax(
    logits: npt.NDArray[np.floating],
    temperature: float = 1.0,
    bias: tuple[float, ...] | npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Row-wise softmax of ``logits / temperature + bias`` in float64 (the card's
    calibration: ``softmax(logits, cal.temperature, cal.bias)``)."""
    z = np.asarray(logits, np.float64) / temperature
    if bias is not None:
        z = z + np.asarray(bias, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def lac_scores(
    probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer]
) -> npt.NDArray[np.float64]:
    """LAC non-conformity of the true label: 1 - its probability."""
    out: npt.NDArray[np.float64] = 1.0 - probs[np.arange(len(labels)), labels]
    return out


def aps_scores(
    probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer]
) -> npt.NDArray[np.float64]:
    """APS non-conformity (not randomised): the probability mass of every label ranked
    at or above the true one."""
    p_true = probs[np.arange(len(labels)), labels][:, None]
    out: npt.NDArray[np.float64] = np.where(probs >= p_true, probs, 0.0).sum(axis=1)
    return out


def prediction_sets(probs: npt.NDArray[np.float64], spec: ConformalSpec) -> npt.NDArray[np.bool_]:
    """(N, K) membership of each label in each window's set.

    LAC: labels with score 1 - p <= threshold; a window may get an empty set (no label is
    as probable as the calibration data needed), as MAPIE's LAC sets. APS: labels whose
    APS score (the mass ranked at or above them) is <= threshold, plus the top label, so
    the set is never empty: MAPIE's APS sets with ``include_last_label=False`` on scores
    without the random term. With ``class_thresholds``, label j uses threshold j.
    """
    k = probs.shape[1]
    if spec.class_thresholds is not None:
        q = np.asarray(spec.class_thresholds, np.float64)[None, :]
    else:
        q = np.full((1, k), spec.threshold)
    if spec.method == "lac":
        out: npt.NDArray[np.bool_] = (1.0 - probs) <= q
        return out
    # Score of label j: sum of probabilities >= p_j (ties included, as in aps_scores).
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked = np.take_along_axis(probs, order, axis=1)
    cum = np.cumsum(ranked, axis=1)
    # Tied labels share the score of the last of them (the mass ranked at or above).
    score_sorted = cum.copy()
    for i in range(k - 2, -1, -1):
        tied = ranked[:, i] == ranked[:, i + 1]
        score_sorted[tied, i] = score_sorted[tied, i + 1]
    scores = np.empty_like(score_sorted)
    np.put_along_axis(scores, order, score_sorted, axis=1)
    member = scores <= q
    top = np.argmax(probs, axis=1)
    member[np.arange(len(probs)), top] = True
    return member

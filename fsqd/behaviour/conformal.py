"""Split-conformal prediction sets: the threshold that gives ``coverage`` on new windows.

Scores are those of ``fsqd.behaviour.sets`` (LAC: 1 - p of the true label; APS: the mass
ranked at or above it), so the sets fitted here are exactly the sets the daemon computes.
The threshold is the ``ceil((n + 1) * coverage)``-th smallest of ``n`` calibration scores:
a new exchangeable window's true label is then in its set with probability at least
``coverage`` (and, for continuous scores, less than ``coverage + 1 / (n + 1)``).
Class-conditional (Mondrian) thresholds use only the windows of each true label, so
every label, a rare behaviour included, gets the coverage on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.sets import aps_scores, lac_scores, prediction_sets
from fsqd.errors import DataError
from fsqd.model.calibration import ConformalMethod, ConformalSpec


def conformal_rank(n: int, coverage: float) -> int:
    """1-based rank of the calibration score that is the threshold: ceil((n + 1) coverage)."""
    # The rounding keeps float noise ((n + 1) * 0.9 = 9.000000000000002) out of the ceil.
    return math.ceil(round((n + 1) * coverage, 9))


def conformal_quantile(scores: npt.NDArray[np.float64], coverage: float, what: str = "") -> float:
    """The finite-sample conformal quantile of ``scores``; DataError when there are too few
    for this coverage (the rank would be past the largest score)."""
    n = len(scores)
    rank = conformal_rank(n, coverage)
    if rank > n:
        need = math.ceil(coverage / (1.0 - coverage) - 1e-9)
        where = f" {what}" if what else ""
        raise DataError(
            f"{n} calibration windows{where}: a {coverage:g} conformal set needs at least {need}"
        )
    return float(np.sort(scores)[rank - 1])


def scores(
    probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer], method: ConformalMethod
) -> npt.NDArray[np.float64]:
    return lac_scores(probs, labels) if method == "lac" else aps_scores(probs, labels)


def fit_conformal(
    probs: npt.NDArray[np.float64],
    labels: npt.NDArray[np.integer],
    coverage: float,
    method: ConformalMethod = "lac",
    *,
    class_conditional: bool = False,
    label_names: tuple[str, ...] = (),
) -> ConformalSpec:
    """Thresholds from calibrated probabilities (N, K) and true labels (N,)."""
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be in (0, 1), got {coverage}")
    s = scores(probs, labels, method)
    threshold = conformal_quantile(s, coverage)
    per_class = None
    if class_conditional:
        y = np.asarray(labels)
        per_class = tuple(
            conformal_quantile(s[y == j], coverage, f"of {label_names[j] if label_names else j!r}")
            for j in range(probs.shape[1])
        )
    return ConformalSpec(method, coverage, threshold, per_class)


@dataclass(frozen=True)
class Coverage:
    """How the sets did on windows with known labels."""

    overall: float
    per_class: tuple[float, ...]  # NaN for a label with no windows
    mean_size: float
    empty: float  # share of windows with an empty set (LAC only)
    windows: int


def coverage(
    probs: npt.NDArray[np.float64], labels: npt.NDArray[np.integer], spec: ConformalSpec
) -> Coverage:
    member = prediction_sets(probs, spec)
    y = np.asarray(labels)
    hit = member[np.arange(len(y)), y]
    k = probs.shape[1]
    per_class = tuple(float(hit[y == j].mean()) if (y == j).any() else math.nan for j in range(k))
    size = member.sum(axis=1)
    return Coverage(
        overall=float(hit.mean()),
        per_class=per_class,
        mean_size=float(size.mean()),
        empty=float((size == 0).mean()),
        windows=len(y),
    )


__all__ = [
    "Coverage",
    "conformal_quantile",
    "conformal_rank",
    "coverage",
    "fit_conformal",
    "scores",
]

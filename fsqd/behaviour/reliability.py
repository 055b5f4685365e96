"""How far the top-label confidence is from the accuracy: reliability bins, ECE and MCE.

Bins are half-open ``(lo, hi]`` (the first one closed at 0), as scikit-learn's
``calibration_curve`` bins them: ``np.searchsorted(inner_edges, confidence)``.
Equal-width bins split [0, 1] into ``bins`` equal parts; adaptive (equal-mass) bins put
their edges at the confidence's quantiles, so each holds about the same number of
windows (ties, common with a codebook, can leave some empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

BINS = 15
Binning = Literal["width", "mass"]


@dataclass(frozen=True)
class Reliability:
    """Per bin: edges, windows, mean confidence and accuracy (NaN where empty)."""

    edges: npt.NDArray[np.float64]  # (bins + 1,)
    count: npt.NDArray[np.int64]  # (bins,)
    confidence: npt.NDArray[np.float64]  # (bins,)
    accuracy: npt.NDArray[np.float64]  # (bins,)

    @property
    def gaps(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.abs(self.accuracy - self.confidence)
        return out

    @property
    def ece(self) -> float:
        """Expected calibration error: the window-weighted mean gap."""
        n = self.count.sum()
        filled = self.count > 0
        return float((self.count[filled] * self.gaps[filled]).sum() / n) if n else 0.0

    @property
    def mce(self) -> float:
        """Maximum calibration error: the largest gap of a non-empty bin."""
        filled = self.count > 0
        return float(self.gaps[filled].max()) if filled.any() else 0.0


def reliability(
    probs: npt.NDArray[np.float64],
    labels: npt.NDArray[np.integer],
    bins: int = BINS,
    binning: Binning = "width",
) -> Reliability:
    """Reliability bins of the top-label confidence of ``probs`` (N, K)."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    if binning == "width":
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        edges = np.percentile(confidence, np.linspace(0.0, 100.0, bins + 1))
    which = np.searchsorted(edges[1:-1], confidence)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    return Reliability(edges, count, mean_conf, accuracy)


__all__ = ["BINS", "Binning", "Reliability", "reliability"]

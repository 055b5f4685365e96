"""Temperature scaling: one number that divides the head's logits, fitted by minimum NLL.

The negative log-likelihood of ``softmax(z / T)`` is convex in ``1 / T``, so it has one
minimum; a golden-section search over ``log T`` within ``BOUNDS`` finds it without scipy.
Dividing by T never changes the argmax: accuracy stays, only the confidence moves.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError

BOUNDS = (0.05, 20.0)  # a temperature outside these says the head is broken, not miscalibrated
TOLERANCE = 1e-7  # on log T: the fitted T is good to ~1e-7 relative
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def nll(
    logits: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], temperature: float = 1.0
) -> float:
    """Mean negative log-likelihood of the true labels under ``softmax(logits / T)``."""
    z = np.asarray(logits, np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), labels]))


def fit_temperature(
    logits: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    bounds: tuple[float, float] = BOUNDS,
) -> float:
    """The T in ``bounds`` that minimises ``nll(logits, labels, T)``."""
    if len(labels) == 0:
        raise DataError("no windows to fit a temperature on")
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels)
    a, b = math.log(bounds[0]), math.log(bounds[1])
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = nll(z, y, math.exp(c)), nll(z, y, math.exp(d))
    while b - a > TOLERANCE:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = nll(z, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = nll(z, y, math.exp(d))
    return math.exp((a + b) / 2.0)


__all__ = ["BOUNDS", "fit_temperature", "nll"]

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
    logits: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    temperature: float = 1.0,
    bias: tuple[float, ...] | npt.NDArray[np.float64] | None = None,
) -> float:
    """Mean negative log-likelihood of the true labels under ``softmax(logits / T + bias)``."""
    z = np.asarray(logits, np.float64) / temperature
    if bias is not None:
        z = z + np.asarray(bias, np.float64)
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


def fit_temperature_and_bias(
    logits: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    bounds: tuple[float, float] = BOUNDS,
) -> tuple[float, tuple[float, ...]]:
    """T and a per-label bias minimising the NLL of ``softmax(logits / T + bias)``
    (bias-corrected temperature scaling, Alexandari et al. 2020).

    The NLL is convex in ``(1 / T, bias)``: logits enter linearly, so damped Newton steps
    from the temperature-only fit converge in a few iterations. The bias is defined up to
    a constant (softmax ignores one): it is returned centred on zero. A label no window
    carries would pull its bias to minus infinity; a small ridge keeps it finite.
    """
    t = fit_temperature(logits, labels, bounds)
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels)
    n, k = z.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    theta = np.zeros(k + 1)
    theta[0] = 1.0 / t

    def loss(th: npt.NDArray[np.float64]) -> float:
        return nll(z, y, 1.0 / th[0], th[1:]) + _RIDGE * float(th[1:] @ th[1:])

    for _ in range(_NEWTON_STEPS):
        p = _softmax_rows(z * theta[0] + theta[1:])
        r = p - onehot  # d NLL / d logit, per window
        grad = np.concatenate([[np.sum(r * z)], r.sum(axis=0)]) / n
        grad[1:] += 2 * _RIDGE * theta[1:]
        # Hessian: mean over windows of J^T (diag(p) - p p^T) J with J = [z_i | I].
        jac = np.concatenate([z[:, :, None], np.broadcast_to(np.eye(k), (n, k, k))], axis=2)
        cov = p[:, :, None] * np.eye(k) - p[:, :, None] * p[:, None, :]
        hess = np.einsum("nka,nkl,nlb->ab", jac, cov, jac) / n
        hess[1:, 1:] += 2 * _RIDGE * np.eye(k)
        step = np.linalg.solve(hess + 1e-12 * np.eye(k + 1), grad)
        f0, scale = loss(theta), 1.0
        while scale > 1e-4 and (theta[0] - scale * step[0] <= 0 or loss(theta - scale * step) > f0):
            scale /= 2  # damped: never a step that raises the loss or flips T's sign
        if scale <= 1e-4:
            break
        theta = theta - scale * step
        if np.max(np.abs(scale * step)) < 1e-9:
            break
    temperature = float(np.clip(1.0 / theta[0], *bounds))
    bias = theta[1:] - theta[1:].mean()
    return temperature, tuple(float(b) for b in bias)


def _softmax_rows(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


_RIDGE = 1e-4  # on the bias: finite for a label the data never shows, negligible otherwise
_NEWTON_STEPS = 50

__all__ = ["BOUNDS", "fit_temperature", "fit_temperature_and_bias", "nll"]

"""Online behaviour states: an explicit-duration HMM over the calibrated per-window posteriors.

The hidden state of window t is (behaviour j, windows r left in the current bout,
1 <= r <= D). A bout counts down: (j, r) -> (j, r - 1); when it ends (r = 1) the next
behaviour k follows with ``transitions[j][k]`` and draws its length from its duration
model. Durations longer than D windows are a geometric tail: state (j, D) stays with
probability ``stay[j]`` and moves on to (j, D - 1) otherwise, so a bout entering at D
lasts D - 1 + G windows, G geometric. The cost per window is a few vectorised numpy
operations on a K x D table, whatever the bout lengths (D is capped by ``max_steps``).

Evidence: the head's calibrated posterior over behaviours divided by the class prior is
proportional to the likelihood of the window given the behaviour (Bayes' rule), so it
stands in for the emission probability.

Each window is filtered forward (its behaviour given everything so far), and the window
``lag`` windows back is smoothed with the ``lag`` windows that followed it (a short
backward pass over the buffered tables: fixed-lag smoothing). A segment starts in the
middle of a bout: behaviour from ``initial``, windows left from the residual-life
distribution of its duration model.

With geometric durations this is an HMM (stay a_j, move (1 - a_j) * transitions[j][k]);
``tests/test_hsmm.py`` checks it against hmmlearn's forward-backward.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError
from fsqd.model.calibration import DurationModel, SemiMarkovSpec

__all__ = ["Decision", "Hsmm", "HsmmModel", "body_steps", "step_durations"]

F64 = npt.NDArray[np.float64]

MAX_STEPS = 64  # windows of explicit duration per behaviour; longer bouts are the geometric tail


@dataclass(frozen=True, slots=True)
class Decision:
    """The behaviour of one window: its label, its probability, all labels' probabilities."""

    label: int
    confidence: float
    probs: F64


def _survival(model: DurationModel, t: F64) -> F64:
    """P(duration > t) with the histogram spread evenly inside each bin."""
    b, pmf = model.bin_s, np.asarray(model.pmf, np.float64)
    n = len(pmf)
    cum = np.concatenate([[0.0], np.cumsum(pmf)])  # F at bin edges
    i = np.clip(np.floor(t / b).astype(np.int64), 0, max(n - 1, 0))
    inside = cum[i] + pmf[i] * np.clip(t / b - i, 0.0, 1.0) if n else np.zeros_like(t)
    beyond = (1.0 - model.tail_mass) + model.tail_mass * -np.expm1(
        -np.maximum(t - n * b, 0.0) / model.tail_mean_s
    )
    cdf = np.where(t <= n * b, inside, beyond)
    out: F64 = np.clip(1.0 - cdf, 0.0, 1.0)
    return out


def body_steps(model: DurationModel, step_s: float) -> int:
    """Window steps the duration model's histogram spans."""
    return math.ceil(len(model.pmf) * model.bin_s / step_s - 1e-9)


def step_durations(model: DurationModel, step_s: float, steps: int) -> tuple[F64, float, F64]:
    """A duration model at the runtime's window step, truncated at D = ``steps`` (>= 2).

    Returns ``entry`` (D,): P(d = m) for m < D and P(d >= D) at D; ``stay``: the tail's
    self-loop so that the mean excess beyond D - 1 matches the model's (exact when the
    histogram ends before D); and ``resid`` (D,): where a segment that starts mid-bout
    stands (the residual life, same truncation).
    """
    d = steps
    span = body_steps(model, step_s)
    m = np.arange(0, d + 1, dtype=np.float64)
    surv = _survival(model, m * step_s)  # S(0), S(h), ..., S(D h)
    entry = np.empty(d)
    entry[:-1] = surv[:-2] - surv[1:-1]  # P(d = m) = S((m-1) h) - S(m h), m = 1..D-1
    entry[-1] = surv[d - 1]  # P(d >= D)
    r = math.exp(-step_s / model.tail_mean_s)
    if (d - 1) * step_s >= len(model.pmf) * model.bin_s - 1e-9:
        # Past the histogram the survival is exactly geometric with ratio r.
        excess_sum = surv[d - 1] / (1.0 - r)  # sum over m >= D of P(d >= m)
    else:
        # Truncated inside the histogram: sum the rest of it, then the geometric part.
        far = np.arange(d - 1, span + 1, dtype=np.float64)
        s_far = _survival(model, far * step_s)
        excess_sum = float(s_far[:-1].sum()) + float(s_far[-1]) / (1.0 - r)
    tail = float(surv[d - 1])
    stay = 0.0 if tail <= 0 else max(0.0, 1.0 - tail / excess_sum)
    resid = np.empty(d)
    resid[:-1] = surv[: d - 1]  # P(d >= m) for m = 1..D-1
    resid[-1] = excess_sum
    total = resid.sum()
    resid = resid / total if total > 0 else np.eye(1, d, 0).ravel()
    return entry, stay, resid


@dataclass(frozen=True)
class HsmmModel:
    """The per-step tables the filter runs on (K behaviours, D duration steps)."""

    initial: F64  # (K,)
    transitions: F64  # (K, K), zero diagonal
    entry: F64  # (K, D)
    stay: F64  # (K,)
    resid: F64  # (K, D)
    inv_prior: F64  # (K,)

    @classmethod
    def from_spec(
        cls, spec: SemiMarkovSpec, step_s: float, max_steps: int = MAX_STEPS
    ) -> HsmmModel:
        if not step_s > 0 or max_steps < 2:
            raise ConfigError(f"step_s must be > 0 and max_steps >= 2, got {step_s}, {max_steps}")
        natural = max(body_steps(m, step_s) + 1 for m in spec.durations)
        d = min(max(2, natural), max_steps)
        parts = [step_durations(m, step_s, d) for m in spec.durations]
        entry = np.stack([e for e, _, _ in parts])
        # Exactly 1 per row (the card allows 1e-4 of slack): the smoother relies on it.
        entry /= entry.sum(axis=1, keepdims=True)
        stay = np.array([s for _, s, _ in parts])
        resid = np.stack([r for _, _, r in parts])
        prior = np.asarray(spec.prior, np.float64)
        return cls(
            initial=np.asarray(spec.initial, np.float64),
            transitions=np.asarray(spec.transitions, np.float64),
            entry=entry,
            stay=stay,
            resid=resid,
            inv_prior=1.0 / np.maximum(prior, 1e-12),
        )

    @property
    def steps(self) -> int:
        return int(self.entry.shape[1])

    @property
    def labels(self) -> int:
        return int(self.entry.shape[0])


class Hsmm:
    """The filter and the fixed-lag smoother, one window at a time.

    ``push(posterior)`` returns the decision for the window ``lag`` windows back (nothing
    for the first ``lag`` windows of a segment); ``flush()`` at a segment's end returns the
    rest, each smoothed with what followed it, and starts a new segment.
    """

    def __init__(self, model: HsmmModel, lag: int) -> None:
        if lag < 0:
            raise ConfigError(f"lag must be >= 0 windows, got {lag}")
        self.model = model
        self.lag = lag
        self._start = model.initial[:, None] * model.resid
        self._inv_prior = model.inv_prior
        # The tail state (column D - 1) moves on to D - 2 or stays: both at once, (K, 2).
        self._tail = np.stack([1.0 - model.stay, model.stay], axis=1)
        self._stay_not, self._stay = 1.0 - model.stay, model.stay.copy()
        self._trans = model.transitions
        self._entry = model.entry
        self._d = model.steps
        self._alpha: F64 | None = None
        # The last lag + 1 filtered tables and the emissions after the oldest of them.
        self._alphas: deque[F64] = deque(maxlen=lag + 1)
        self._emissions: deque[F64] = deque(maxlen=lag + 1)

    @property
    def filtered(self) -> F64 | None:
        """The newest window's behaviour probabilities given everything so far."""
        return None if self._alpha is None else self._alpha.sum(axis=1)

    def reset(self) -> None:
        self._alpha = None
        self._alphas.clear()
        self._emissions.clear()

    def _predict(self, alpha: F64) -> F64:
        d = self._d
        pred = self._entry * (alpha[:, 0] @ self._trans)[:, None]  # bouts that start now
        pred[:, : d - 2] += alpha[:, 1 : d - 1]  # the others count down
        pred[:, d - 2 :] += alpha[:, d - 1 :] * self._tail
        return pred

    def push(self, posterior: F64) -> list[Decision]:
        e = posterior * self._inv_prior
        prior = self._start if self._alpha is None else self._predict(self._alpha)
        alpha = prior * e[:, None]
        total = float(alpha.sum())
        if not 0 < total < math.inf:
            # No usable evidence (NaN, all zero) or evidence that rules out every state the
            # model allows: the window only moves time on, here and in the smoother.
            e = np.ones_like(e)
            alpha, total = prior.copy(), float(prior.sum())
        alpha *= 1.0 / total
        self._alpha = alpha
        self._alphas.append(alpha)
        self._emissions.append(e)
        if len(self._alphas) <= self.lag:
            return []
        return [self._smoothed(0)]

    def flush(self) -> list[Decision]:
        """The windows still waiting for their lag (a segment ends), then a fresh start."""
        n = len(self._alphas)
        out = [self._smoothed(i) for i in range(max(0, n - self.lag), n)] if n else []
        self.reset()
        return out

    def _smoothed(self, i: int) -> Decision:
        """The buffered window ``i`` (0 = oldest) given every window buffered after it."""
        alphas, emissions = self._alphas, self._emissions
        n = len(alphas)
        if n - 1 <= i:
            gamma = alphas[i]
        else:
            # beta, from the newest window back to window i + 1's, in one buffer: this runs
            # lag times per window, so each step is a handful of in-place numpy calls.
            d, trans, entry = self._d, self._trans, self._entry
            e = emissions[n - 1]
            beta = np.empty_like(entry)
            beta[:, 1:] = e[:, None]  # beta all ones: entry rows and the tail's moves sum to 1
            beta[:, 0] = trans @ e
            beta *= 1.0 / beta.max()
            w = np.empty_like(entry)
            for s in range(n - 2, i, -1):
                np.multiply(beta, emissions[s][:, None], out=w)
                beta[:, 0] = trans @ np.einsum("kd,kd->k", entry, w)
                beta[:, d - 1] = w[:, d - 2] * self._stay_not + w[:, d - 1] * self._stay
                beta[:, 1 : d - 1] = w[:, : d - 2]
                beta *= 1.0 / beta.max()
            gamma = alphas[i] * beta
        probs = gamma.sum(axis=1)
        probs /= probs.sum()
        label = int(np.argmax(probs))
        return Decision(label, float(probs[label]), probs)

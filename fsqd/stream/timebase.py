"""Timestamps as loggers write them: their unit, the sample rate they imply, its jitter.

Loggers write integer milliseconds, microseconds or nanoseconds as often as seconds, quantise
their clocks to a millisecond, deliver samples in bursts, and stall. The rate is therefore a
fit over gap-free stretches (a regression of time on sample index, one slope shared by all
stretches), never one over a median step, and the unit is chosen from the timestamps'
magnitude (UNIX epoch times) and the step size (the rate it implies must be plausible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError

UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
MIN_RATE_HZ = 1.0
MAX_RATE_HZ = 10_000.0
RATE_BAND = f"{MIN_RATE_HZ:g} Hz..{MAX_RATE_HZ / 1000:g} kHz"
EPOCH_S = (1e8, 4.2e9)  # UNIX seconds from 1973 to 2103: a timestamp in this band is absolute
SPAN_STEPS = 60  # steps per span in the first guess: a multiple of common burst sizes
TYPICAL_RATE_HZ = 100.0  # tie-break between units that both give a plausible rate

F64 = npt.NDArray[np.float64]


def typical_step(t: npt.ArrayLike) -> float:
    """A first guess at the sample period (in t's own unit), robust to bursts and jitter.

    The median of (t[i + k] - t[i]) / k over many i: a span of k steps averages a burst
    logger's short and long steps, and the median ignores the few spans holding a gap.
    """
    a = np.asarray(t, np.float64)
    if len(a) < 2:
        raise DataError("need at least two timestamps to learn the sample rate")
    k = min(SPAN_STEPS, len(a) - 1)
    spans = a[k:] - a[:-k]
    spans = spans[spans > 0]
    if spans.size == 0:
        raise DataError("need at least two increasing timestamps to learn the sample rate")
    return float(np.median(spans)) / k


@dataclass(frozen=True)
class UnitGuess:
    unit: str  # s, ms, us or ns
    factor: float  # seconds per unit
    reason: str  # why, for the summary


def detect_time_unit(t: npt.ArrayLike) -> UnitGuess:
    """The unit of numeric timestamps, from their step and (for epoch times) magnitude.

    Every unit whose implied rate lies in 1 Hz..10 kHz is a candidate. A candidate that makes
    the first timestamp a UNIX time of 1973..2103 wins; then seconds for fractional timestamps
    and any other unit for integer ones; then the rate nearest 100 Hz on a log scale.
    """
    a = np.asarray(t, np.float64)
    step = typical_step(a)
    first = float(a[0])
    integers = bool(np.all(a == np.round(a)))
    candidates = []
    for unit, factor in UNITS.items():
        rate = 1.0 / (step * factor)
        if MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            epoch = EPOCH_S[0] <= abs(first) * factor <= EPOCH_S[1]
            # Integer timestamps are rarely seconds, fractional ones rarely anything else.
            unlikely = unit == "s" if integers else unit != "s"
            score = (not epoch, unlikely, abs(math.log10(rate / TYPICAL_RATE_HZ)))
            candidates.append((score, unit, factor, rate, epoch))
    if not candidates:
        implied = ", ".join(f"{1.0 / (step * f):.3g} Hz as {u}" for u, f in UNITS.items())
        raise DataError(
            f"timestamps advance by {step:.6g} per sample ({implied}): no unit gives a rate "
            f"within {RATE_BAND}; give --time-unit or --rate"
        )
    _, unit, factor, rate, epoch = min(candidates)
    what = "UNIX epoch time" if epoch else "relative time"
    reason = f"step {step:.6g} {unit} -> {rate:.4g} Hz, {what}"
    return UnitGuess(unit, factor, reason)


def check_rate(rate_hz: float, where: str = "") -> None:
    """Refuse a rate no IMU recording has, with the number."""
    if not (MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ):
        prefix = f"{where}: " if where else ""
        raise DataError(
            f"{prefix}sample rate {rate_hz:.6g} Hz is implausible for an IMU "
            f"(expected {RATE_BAND}); check the time unit "
            "(--time-unit) or give --rate"
        )


@dataclass(frozen=True)
class RateEstimate:
    rate_hz: float  # samples per second, from the fit
    jitter: float  # RMS of the timestamps about the fitted line, in sample periods
    step_jitter: float  # RMS of single steps about the period, in sample periods
    samples: int  # timestamps the fit used
    stretches: int  # gap-free stretches they fell into
    bursty: bool  # samples arrive in bursts: single steps say nothing about the rate
    gap_s: float  # a step longer than this is a gap (for this timestamp pattern)

    def describe(self) -> str:
        pattern = "bursty" if self.bursty else "steady"
        return (
            f"{self.rate_hz:.6g} Hz (fit over {self.samples} samples in {self.stretches} "
            f"gap-free stretch{'es' if self.stretches != 1 else ''}; {pattern} timestamps, "
            f"step jitter {100 * self.step_jitter:.0f}% of a period RMS)"
        )


def estimate_rate(t: npt.ArrayLike, max_gap_periods: float = 2.5) -> RateEstimate:
    """Fit the sample period over gap-free stretches: a pooled regression of t on index.

    Millisecond quantisation, jitter and bursts average out over a stretch instead of
    picking the most common step; gaps and time going back start a new stretch.
    """
    a = np.asarray(t, np.float64)
    p0 = typical_step(a)
    steps = np.diff(a)
    positive = steps[steps > 0]
    # Bursts: most single steps are far shorter than the long-run period.
    bursty = bool(np.median(steps) < 0.5 * p0)
    gap_s = max_gap_periods * p0
    if bursty:
        gap_s = max(gap_s, 1.5 * float(np.quantile(positive, 0.99)))
    breaks = (steps > gap_s) | (steps <= 0)
    stretch = np.concatenate([[0], np.cumsum(breaks)])
    counts = np.bincount(stretch)
    idx = np.arange(len(a), dtype=np.float64)
    # Within-stretch centring, relative to each stretch's first sample to keep precision.
    first = np.flatnonzero(np.concatenate([[True], breaks]))
    rel_t = a - a[first][stretch]
    rel_i = idx - idx[first][stretch]
    mean_t = np.bincount(stretch, rel_t) / counts
    mean_i = np.bincount(stretch, rel_i) / counts
    di = rel_i - mean_i[stretch]
    dt_ = rel_t - mean_t[stretch]
    den = float(di @ di)
    if den == 0:
        raise DataError("need at least two increasing timestamps without a gap to learn the rate")
    if bursty:
        # A stretch rarely starts and ends at the same point of a burst: regress.
        period = float(di @ dt_) / den
    else:
        # Span over steps, pooled: the mean step, right for both a grid with quantised
        # timestamps and a logger whose steps wander independently.
        last = np.concatenate([first[1:] - 1, [len(a) - 1]])
        spans = a[last] - a[first]
        period = float(spans.sum()) / float((counts - 1).sum())
    if not period > 0:
        raise DataError("timestamps do not increase: cannot learn the sample rate")
    used = counts >= 2
    residual = dt_ - period * di
    in_stretch = used[stretch]
    jitter = float(np.sqrt(np.mean(residual[in_stretch] ** 2))) / period
    inner = steps[~breaks]
    step_jitter = float(np.sqrt(np.mean((inner - period) ** 2))) / period if inner.size else 0.0
    return RateEstimate(
        rate_hz=1.0 / period,
        jitter=jitter,
        step_jitter=step_jitter,
        samples=int(in_stretch.sum()),
        stretches=int(used.sum()),
        bursty=bursty,
        gap_s=gap_s,
    )

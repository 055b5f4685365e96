"""When each sample was taken, from when the FIFO count changed.

A chip's FIFO says how many samples wait, not when they were taken, and its oscillator
is off by up to a few percent. Stamping the newest sample of a burst with the read time
is biased by up to a period (9.6 ms at 104 Hz); stamping with the nominal rate drifts.

So the sample clock is measured, not assumed: now and then (every second, and at every
segment start) the reader polls the FIFO count tightly around the moment the next sample
is due and catches the count changing. That gives an *anchor*: sample k appeared in
(t1, t2], an interval a register read or two wide. A weighted straight-line fit
``t = offset + k * period`` over the anchors of the last minute tracks the true rate
(drift with temperature included) and the phase. Stamps come from the fit, so they
neither drift from the monotonic clock nor jump: a new anchor moves the line by about
its own uncertainty, and stamps never step backwards.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ANCHOR_WINDOW_S = 60.0  # anchors older than this no longer steer the fit
ANCHOR_EVERY_S = 1.0  # how often to catch a count edge once locked
FLOOR_S = 20e-6  # uncertainty floor: a perfect anchor is still one register read wide
TIGHT_S = 0.5e-3  # an anchor at most this far from its middle steers the fit


@dataclass(frozen=True)
class Anchor:
    k: int  # sample index within the segment
    t: float  # monotonic seconds, middle of the interval
    half: float  # half the interval's width


class SampleClock:
    """Sample index within a segment -> monotonic time, fitted to anchors."""

    def __init__(self, nominal_hz: float, hint_hz: float | None = None) -> None:
        self.nominal_hz = nominal_hz
        self.hint_hz = hint_hz or nominal_hz
        self.anchors: deque[Anchor] = deque()
        self.period = 1.0 / self.hint_hz
        self.offset: float | None = None  # time of sample 0; None until the first anchor
        self._last_stamp = -np.inf
        self.tight = False  # the fit rests on tight anchors (not only provisional ones)
        self.rejected = 0  # anchors too wide to use (the thread was preempted mid-catch)

    @property
    def locked(self) -> bool:
        return self.offset is not None

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.period

    def restart(self) -> None:
        """A new segment: sample indices start again at 0, the rate estimate is kept."""
        self.anchors.clear()
        self.offset = None
        self._last_stamp = -np.inf
        self.tight = False

    def expected(self, k: int) -> float:
        """When sample k is (was) due; only meaningful once locked."""
        assert self.offset is not None
        return self.offset + k * self.period

    def add_anchor(self, k: int, t1: float, t2: float) -> bool:
        """Sample k appeared after ``t1`` and by ``t2``; False if too wide to use.

        A wide interval (the thread lost the CPU or the GIL while catching the edge)
        is kept only as a provisional anchor until the first tight one arrives.
        """
        half = 0.5 * (t2 - t1)
        if half > TIGHT_S:
            if self.tight:
                self.rejected += 1
                return False
        elif not self.tight:
            self.anchors.clear()  # provisional anchors only get in the way now
            self.tight = True
        self.anchors.append(Anchor(k, 0.5 * (t1 + t2), half))
        while self.anchors and self.anchors[0].t < t2 - ANCHOR_WINDOW_S:
            self.anchors.popleft()
        self._fit()
        return half <= TIGHT_S

    def _fit(self) -> None:
        a = self.anchors
        k = np.array([x.k for x in a], np.float64)
        t = np.array([x.t for x in a])
        w = 1.0 / (np.array([x.half for x in a]) ** 2 + FLOOR_S**2)
        # The rate needs anchors spread over enough samples that their uncertainty is
        # small against the span; until then keep the hint (or the last estimate).
        span_s = (k.max() - k.min()) * self.period if len(a) > 1 else 0.0
        worst = float(np.median([x.half for x in a])) + FLOOR_S
        if len(a) >= 2 and span_s > 50 * worst:
            kw = (w * k).sum() / w.sum()
            tw = (w * t).sum() / w.sum()
            period = float((w * (k - kw) * (t - tw)).sum() / (w * (k - kw) ** 2).sum())
            # A fit far from the chip's nominal rate is a broken anchor, not the chip.
            if abs(period * self.nominal_hz - 1.0) < 0.1:
                self.period = period
        self.offset = float(((t - k * self.period) * w).sum() / w.sum())

    def provisional(self, first: int, n: int) -> F64:
        """Stamps from the current fit without the monotonic guard (nothing is emitted)."""
        assert self.offset is not None
        return self.offset + (first + np.arange(n, dtype=np.float64)) * self.period

    def times(self, first: int, n: int) -> F64:
        """Monotonic stamps of samples first .. first + n - 1 (increasing across calls)."""
        assert self.offset is not None
        t = self.offset + (first + np.arange(n, dtype=np.float64)) * self.period
        # A refit may move the line back by a fraction of a period: never step back.
        floor = self._last_stamp + 0.5 * self.period
        if n and t[0] < floor:
            t = np.maximum(t, floor + np.arange(n) * 0.5 * self.period)
        if n:
            self._last_stamp = float(t[-1])
        return t


__all__ = ["ANCHOR_EVERY_S", "Anchor", "SampleClock"]

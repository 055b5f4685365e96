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

An anchor's interval is true by construction (the count was read between the clock
reads around it): a thread that lost the CPU only makes it wider, never wrong. So a
tight anchor that the line misses by more than ``RELOCK_S`` means the line is wrong
(the oscillator moved, or the rate hint was off by a few percent), unless it is a
one-off glitch. The first such anchor is held as a suspect and another is caught soon;
if that one also disagrees with the line, the clock re-locks onto the two, forgetting
the older anchors; if it agrees, the suspect is dropped as an outlier. And when the
edge does not come where the line says (the line is wrong), the next catch spins for
up to a whole period, where an edge must come, rather than trust the line again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ANCHOR_WINDOW_S = 60.0  # anchors older than this no longer steer the fit
ANCHOR_EVERY_S = 1.0  # how often to catch a count edge once locked
FLOOR_S = 20e-6  # uncertainty floor: a perfect anchor is still one register read wide
TIGHT_S = 0.5e-3  # an anchor at most this far from its middle steers the fit
HINT_OK_S = 0.05e-3  # a second anchor this close to the hint's line confirms the hint
RELOCK_S = 0.5e-3  # a tight anchor this far outside the line: the line is wrong


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
        self.outliers = 0  # tight anchors off the line that the next one did not confirm
        self.relocks = 0  # times the line was rebuilt from anchors that disagreed with it
        self.missed = 0  # edge catches in a row that saw no edge where the line said
        self.lock_k = 0  # sample index the current line was (re)built from
        # The line's rate is trusted: fitted from tight anchors, or a second tight anchor
        # landed where the hint said (then the rate is refitted only over a long span).
        self.fitted = False
        self.hint_confirmed = False
        self._suspect: Anchor | None = None

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
        self.missed = 0
        self.lock_k = 0
        self.fitted = False
        self.hint_confirmed = False
        self._suspect = None

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
        new = Anchor(k, 0.5 * (t1 + t2), half)
        self.missed = 0
        if half > TIGHT_S:
            if self.tight:
                self.rejected += 1
                return False
        elif not self.tight:
            self.anchors.clear()  # provisional anchors only get in the way now
            self.tight = True
            self.lock_k = k
        elif self._misfit([*self.anchors, new]) > RELOCK_S:
            # No straight line passes through the old anchors and this one.
            suspect, self._suspect = self._suspect, new
            if suspect is None:
                return False  # maybe a glitch: let the next anchor decide
            self._suspect = None
            self.relocks += 1
            self.fitted = self.hint_confirmed = False  # whatever the rate was, it is not now
            self.anchors.clear()
            self.anchors.append(suspect)
            self.lock_k = suspect.k
        elif self._suspect is not None:
            self._suspect = None
            self.outliers += 1
        elif len(self.anchors) == 1 and self.tight and not self.fitted:
            miss = abs(new.t - self.expected(k)) - half - self.anchors[0].half - FLOOR_S
            self.hint_confirmed = self.fitted = miss < HINT_OK_S
        self.anchors.append(new)
        while self.anchors and self.anchors[0].t < t2 - ANCHOR_WINDOW_S:
            self.anchors.popleft()
        period, self.offset = self._line(self.anchors)
        if self.tight and period != self.period:
            self.fitted = True
        self.period = period
        return half <= TIGHT_S

    @property
    def suspect(self) -> bool:
        """An anchor disagreed with the line and awaits another one's verdict."""
        return self._suspect is not None

    def _line(self, anchors: Sequence[Anchor]) -> tuple[float, float]:
        """(period, offset) of the weighted straight-line fit through ``anchors``."""
        k = np.array([x.k for x in anchors], np.float64)
        t = np.array([x.t for x in anchors])
        w = 1.0 / (np.array([x.half for x in anchors]) ** 2 + FLOOR_S**2)
        # The rate needs anchors spread over enough samples that their uncertainty is
        # small against the span; until then keep the hint (or the last estimate).
        period = self.period
        span_s = (k.max() - k.min()) * period if len(anchors) > 1 else 0.0
        worst = float(np.median([x.half for x in anchors])) + FLOOR_S
        # A confirmed hint is better than a rate from anchors a few samples apart.
        if len(anchors) >= 2 and span_s > (5000 if self.hint_confirmed else 50) * worst:
            kw = (w * k).sum() / w.sum()
            tw = (w * t).sum() / w.sum()
            fitted = float((w * (k - kw) * (t - tw)).sum() / (w * (k - kw) ** 2).sum())
            # A fit far from the chip's nominal rate is a broken anchor, not the chip.
            if abs(fitted * self.nominal_hz - 1.0) < 0.1:
                period = fitted
        return period, float(((t - k * period) * w).sum() / w.sum())

    def _misfit(self, anchors: Sequence[Anchor]) -> float:
        """How far (s) the best line through ``anchors`` misses the worst one's interval."""
        period, offset = self._line(anchors)
        return max(abs(a.t - offset - a.k * period) - a.half - FLOOR_S for a in anchors)

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


__all__ = ["ANCHOR_EVERY_S", "RELOCK_S", "Anchor", "SampleClock"]

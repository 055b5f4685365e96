"""Per-stage latency histograms (HdrHistogram, microseconds), safe across threads.

Every stage keeps two histograms: a cumulative one and a per-period one that
``StageTimer.roll()`` hands over and replaces (the daemon's ``stats`` period).
Recording takes a per-stage lock, so the acquisition, inference and event-loop
threads can all record into the same timer. Values above the range are counted as
``out_of_range`` and recorded at the top, never dropped silently.

``fsqd replay`` prints ``table()``; the daemon publishes ``summary()`` and
``encode()`` blobs (mergeable: ``decode_histogram`` + ``add``; any HdrHistogram
library reads them). One code path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fsqd.hdrhistogram import HdrHistogram

# 1 us .. 60 s at 3 significant digits: a stage slower than a minute is a hang, not a latency.
LOW_US, HIGH_US, DIGITS = 1, 60_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOW_US, HIGH_US, DIGITS)


def decode_histogram(blob: str | bytes) -> HdrHistogram:
    """A histogram from an ``encode()`` blob (e.g. one node's ``stats``), ready to ``add``.

    A blob that is not one raises ``DataError`` with a one-line reason.
    """
    return HdrHistogram.decode(blob)


@dataclass(frozen=True)
class StageSummary:
    """Percentiles of one histogram, in microseconds."""

    count: int
    p50: int
    p90: int
    p99: int
    p999: int
    max: int
    out_of_range: int

    @classmethod
    def of(cls, h: HdrHistogram, out_of_range: int) -> StageSummary:
        if h.get_total_count() == 0:
            return cls(0, 0, 0, 0, 0, 0, out_of_range)
        p = h.get_percentile_to_value_dict(list(PERCENTILES))
        return cls(
            h.get_total_count(),
            p[50.0],
            p[90.0],
            p[99.0],
            p[99.9],
            h.get_max_value(),
            out_of_range,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "count": self.count,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p99.9": self.p999,
            "max": self.max,
            "out_of_range": self.out_of_range,
        }


class StageStats:
    """One stage: cumulative and per-period histograms behind one lock."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hist = new_histogram()  # cumulative
        self.period = new_histogram()
        self.total_ns = 0
        self.items = 0
        self.out_of_range = 0
        self.period_out_of_range = 0
        self._lock = threading.Lock()

    def record(self, elapsed_ns: int, items: int = 0) -> None:
        us = max(LOW_US, elapsed_ns // 1000)
        over = us > HIGH_US
        if over:
            us = HIGH_US
        with self._lock:
            self.total_ns += max(0, elapsed_ns)
            self.items += items
            if over:
                self.out_of_range += 1
                self.period_out_of_range += 1
            self.hist.record_value(us)
            self.period.record_value(us)

    def roll(self, fresh: HdrHistogram) -> tuple[HdrHistogram, int]:
        """Hand over the period histogram and its out-of-range count; start a new period."""
        with self._lock:
            old, self.period = self.period, fresh
            over, self.period_out_of_range = self.period_out_of_range, 0
        return old, over

    def period_percentile_us(self, pct: float) -> int | None:
        """The current period's percentile so far (None before any value): for a status line."""
        with self._lock:
            if not self.period.get_total_count():
                return None
            return int(self.period.get_value_at_percentile(pct))

    def cumulative(self) -> tuple[HdrHistogram, int]:
        """A consistent copy of the cumulative histogram (for encoding off the lock)."""
        with self._lock:
            copy = self.hist.copy()
            over = self.out_of_range
        return copy, over


@dataclass(frozen=True)
class Period:
    """What one stats period saw, per stage: summaries and the period histograms."""

    stages: dict[str, StageSummary]
    cumulative: dict[str, StageSummary]
    histograms: dict[str, HdrHistogram]
    cumulative_histograms: dict[str, HdrHistogram]


class StageTimer:
    """Collects per-stage timings in the order stages first appear; thread-safe."""

    def __init__(self) -> None:
        self.stages: dict[str, StageStats] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> StageStats:
        st = self.stages.get(name)
        if st is None:
            with self._lock:
                st = self.stages.get(name)
                if st is None:
                    st = StageStats(name)
                    # Copy-on-write: readers iterate a dict nobody mutates.
                    self.stages = {**self.stages, name: st}
        return st

    @contextmanager
    def stage(self, name: str, items: int = 0) -> Iterator[None]:
        t0 = time.perf_counter_ns()
        try:
            yield
        finally:
            self._get(name).record(time.perf_counter_ns() - t0, items)

    def add(self, name: str, elapsed_ns: int, items: int = 0) -> None:
        self._get(name).record(elapsed_ns, items)

    def add_seconds(self, name: str, elapsed_s: float, items: int = 0) -> None:
        self._get(name).record(round(elapsed_s * 1e9), items)

    def peek_us(self, name: str, pct: float) -> int | None:
        """``pct`` of stage ``name`` in the current period so far, without ending it."""
        st = self.stages.get(name)
        return None if st is None else st.period_percentile_us(pct)

    def roll(self) -> Period:
        """End the current period: summaries of it and of everything so far."""
        stages: dict[str, StageSummary] = {}
        cumul: dict[str, StageSummary] = {}
        hists: dict[str, HdrHistogram] = {}
        cumul_hists: dict[str, HdrHistogram] = {}
        for name, st in self.stages.items():
            h, over = st.roll(new_histogram())
            stages[name] = StageSummary.of(h, over)
            hists[name] = h
            ch, cover = st.cumulative()
            cumul[name] = StageSummary.of(ch, cover)
            cumul_hists[name] = ch
        return Period(stages, cumul, hists, cumul_hists)

    def table(self, windows: int) -> str:
        """A fixed-width table: stage, total, share, per window, batch p50/p99/max."""
        stages = list(self.stages.values())
        total = sum(s.total_ns for s in stages) or 1
        rows = [
            f"{'stage':<12} {'total s':>9} {'share':>6} {'us/window':>10} "
            f"{'batches':>8} {'p50 us':>9} {'p99 us':>9} {'max us':>9}"
        ]
        for s in stages:
            h, over = s.cumulative()
            per = s.total_ns / 1000 / windows if windows else 0.0
            sm = StageSummary.of(h, over)
            flag = f"  ({over} out of range)" if over else ""
            rows.append(
                f"{s.name:<12} {s.total_ns / 1e9:>9.3f} {100 * s.total_ns / total:>5.1f}% "
                f"{per:>10.2f} {sm.count:>8} {sm.p50:>9} {sm.p99:>9} {sm.max:>9}{flag}"
            )
        return "\n".join(rows)


def encode(h: HdrHistogram) -> str:
    """The mergeable base64 blob of a histogram (HdrHistogram's compressed V2 format)."""
    return h.encode().decode("ascii")

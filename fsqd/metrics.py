"""Per-stage latency histograms (HdrHistogram, microseconds) and counters.

A stage is timed per batch with ``with timer.stage("infer", n):``; the summary reports
total time, share, time per window and batch latency percentiles.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

# 1 us .. 60 s at 3 significant digits: a stage slower than a minute is a hang, not a latency.
_LOW_US, _HIGH_US, _DIGITS = 1, 60_000_000, 3


@dataclass
class StageStats:
    name: str
    hist: HdrHistogram
    total_ns: int = 0
    items: int = 0
    out_of_range: int = 0

    def record(self, elapsed_ns: int, items: int) -> None:
        self.total_ns += elapsed_ns
        self.items += items
        us = max(_LOW_US, elapsed_ns // 1000)
        if us > _HIGH_US:
            self.out_of_range += 1
            us = _HIGH_US
        self.hist.record_value(us)


class StageTimer:
    """Collects per-stage timings in the order stages first appear."""

    def __init__(self) -> None:
        self.stages: dict[str, StageStats] = {}

    def _get(self, name: str) -> StageStats:
        st = self.stages.get(name)
        if st is None:
            st = self.stages[name] = StageStats(name, HdrHistogram(_LOW_US, _HIGH_US, _DIGITS))
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

    def table(self, windows: int) -> str:
        """A fixed-width table: stage, total, share, per window, batch p50/p99/max."""
        total = sum(s.total_ns for s in self.stages.values()) or 1
        rows = [
            f"{'stage':<10} {'total s':>9} {'share':>6} {'us/window':>10} "
            f"{'batches':>8} {'p50 us':>9} {'p99 us':>9} {'max us':>9}"
        ]
        for s in self.stages.values():
            per = s.total_ns / 1000 / windows if windows else 0.0
            rows.append(
                f"{s.name:<10} {s.total_ns / 1e9:>9.3f} {100 * s.total_ns / total:>5.1f}% "
                f"{per:>10.2f} {s.hist.get_total_count():>8} "
                f"{s.hist.get_value_at_percentile(50):>9} "
                f"{s.hist.get_value_at_percentile(99):>9} {s.hist.get_max_value():>9}"
            )
        return "\n".join(rows)

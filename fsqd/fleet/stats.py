"""The collector's counters and its ``stats`` log line, one per interval."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from fsqd.fleet.store import CommitResult
from fsqd.hdrhistogram import HdrHistogram

__all__ = ["CollectStats"]


@dataclass
class CollectStats:
    received: int = 0
    acked: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    files: int = 0
    commits: int = 0
    compactions: int = 0
    quarantined: int = 0
    gaps_suspected: int = 0
    gaps_confirmed: int = 0
    gaps_closed_late: int = 0
    disconnects: int = 0
    _lag: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 86_400_000, 2))
    _last: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    def lag(self, seconds: float) -> None:
        """One code's lag: received minus the window's end, in ms (negative clocks count as 0)."""
        self._lag.record_value(min(max(1, round(seconds * 1000)), 86_400_000))

    def add(self, r: CommitResult) -> None:
        self.stored += r.rows
        self.duplicates += r.duplicates
        self.files += r.files
        self.commits += 1
        self.compactions += r.compactions
        self.quarantined += r.quarantined
        self.gaps_suspected += r.gaps_suspected
        self.gaps_confirmed += r.gaps_confirmed
        self.gaps_closed_late += r.gaps_closed_late

    def counters(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def line(self, waiting: int, evicted: int) -> str:
        """``key=value`` pairs: rates and lag of the interval since the last line."""
        now = time.monotonic()
        t0, n0 = self._last
        self._last = (now, self.received)
        rate = (self.received - n0) / max(now - t0, 1e-9)
        lag = self._lag
        p50, p99 = (
            (lag.get_value_at_percentile(q) for q in (50, 99)) if lag.get_total_count() else (0, 0)
        )
        lag.reset()
        parts = {
            "msgs_per_s": f"{rate:.1f}",
            **self.counters(),
            "waiting": waiting,
            "lag_p50_ms": p50,
            "lag_p99_ms": p99,
            "evicted": evicted,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())

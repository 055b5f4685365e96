"""``[stats]``: how often the daemon publishes its stats and logs its summary line."""

from __future__ import annotations

from dataclasses import dataclass

from fsqd.tomlcheck import Table

__all__ = ["StatsConfig", "parse_stats"]


@dataclass(frozen=True)
class StatsConfig:
    interval_s: float = 60.0


def parse_stats(t: Table) -> StatsConfig:
    stats = StatsConfig(t.number("interval_s", 60.0, low=1.0, high=86400.0))
    t.done()
    return stats

"""``[health]``: code-usage drift (``fsqd.behaviour.health``) against the card's reference.

Both keys override the card's ``calibration.code_reference`` values; without a reference
in the card there is no drift to watch and they are unused (perplexity is still measured).
"""

from __future__ import annotations

from dataclasses import dataclass

from fsqd.tomlcheck import Table

__all__ = ["HealthSettings", "parse_health"]


@dataclass(frozen=True)
class HealthSettings:
    drift_threshold: float | None = None  # Jensen-Shannon divergence, bits; None: the card's
    drift_windows: int | None = None  # windows in the sliding window; None: the card's


def parse_health(t: Table) -> HealthSettings:
    threshold = (
        t.number("drift_threshold", low=0.0, high=1.0, low_open=True)
        if t.has("drift_threshold")
        else t.optional("drift_threshold", float)
    )
    settings = HealthSettings(
        drift_threshold=threshold,
        drift_windows=t.optional_integer("drift_windows", low=2, high=10_000_000),
    )
    t.done()
    return settings

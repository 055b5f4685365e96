"""``[window]``: how the stream is cut into windows and how far inference may fall behind."""

from __future__ import annotations

from dataclasses import dataclass

from fsqd.model.package import ModelPackage
from fsqd.tomlcheck import Table

__all__ = ["WindowConfig", "parse_window"]


@dataclass(frozen=True)
class WindowConfig:
    hop: int | None = None  # samples between windows (None: the card's)
    max_gap_periods: float = 2.5
    max_pending: int = 64  # windows waiting for inference before the oldest are dropped
    max_batch: int = 32  # windows per inference call when catching up


def parse_window(t: Table, package: ModelPackage) -> WindowConfig:
    card = package.card
    hop = t.optional_integer("hop", low=1, high=card.window * 100)
    cfg = WindowConfig(
        hop=hop,
        max_gap_periods=t.number("max_gap_periods", 2.5, low=1.0, low_open=True),
        max_pending=t.integer("max_pending", 64, low=1, high=100_000),
        max_batch=t.integer("max_batch", 32, low=1, high=4096),
    )
    t.done()
    return cfg

"""Even timestamps for loggers that deliver samples in bursts.

A logger that stamps five samples at once every 50 ms says nothing about when each was
taken, only how many arrive per second. Its timestamps are replaced by ``anchor + i / rate``
(rate: the long-run fit), re-anchored on the real time after a gap or when time goes back,
so the stages after it still see those. Between anchors the re-spaced times follow the
fitted rate, not the logger's clock.
"""

from __future__ import annotations

import math

import numpy as np

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError


class Respacer:
    def __init__(self, rate_hz: float, gap_s: float) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0 and math.isfinite(gap_s) and gap_s > 0):
            raise ConfigError(f"respacer needs a positive rate and gap, got {rate_hz}, {gap_s}")
        self.rate = rate_hz
        self.gap_s = gap_s
        self.anchors = 0  # times the grid was re-anchored on the real clock
        self._last: float | None = None  # last real timestamp seen
        self._anchor = 0.0  # real time of the current anchor sample
        self._count = 0  # samples since the anchor

    def push(self, chunk: SampleChunk) -> SampleChunk:
        t = chunk.t
        n = len(t)
        if n == 0:
            if chunk.new_segment:
                self._last = None
            return chunk
        prev = math.nan if chunk.new_segment or self._last is None else self._last
        steps = np.diff(t, prepend=prev)
        # A NaN first step (no previous sample) is a break too: the comparisons are False.
        breaks = ~((steps > 0) & (steps <= self.gap_s))
        run = np.cumsum(breaks)  # 0: continues the previous anchor
        starts = np.flatnonzero(breaks)
        anchor_t = np.concatenate([[self._anchor], t[starts]])[run]
        first_i = np.concatenate([[-self._count], starts])[run]
        out = anchor_t + (np.arange(n) - first_i) / self.rate
        self.anchors += len(starts)
        if len(starts):
            self._anchor, self._count = float(t[starts[-1]]), n - int(starts[-1])
        else:
            self._count += n
        self._last = float(t[-1])
        return SampleChunk(out, chunk.x, chunk.new_segment)

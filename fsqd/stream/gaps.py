"""Split a sample stream where timestamps jump: no window may span a gap."""

from __future__ import annotations

import numpy as np

from fsqd.errors import DataError
from fsqd.stream.chunk import SampleChunk


class GapSplitter:
    """Stateful across chunks: a step longer than ``max_gap_periods`` sample periods
    starts a new segment. Counts gaps and the seconds they lost."""

    def __init__(self, rate_hz: float, max_gap_periods: float = 2.5) -> None:
        if not rate_hz > 0 or not max_gap_periods > 1:
            raise DataError(
                "gap splitter needs rate > 0 and a max gap over 1 period, "
                f"got {rate_hz} Hz and {max_gap_periods}"
            )
        self.max_step = max_gap_periods / rate_hz
        self.period = 1.0 / rate_hz
        self.gaps = 0
        self.gap_seconds = 0.0
        self._last: float | None = None

    def split(self, chunk: SampleChunk) -> list[SampleChunk]:
        n = len(chunk.t)
        if n == 0:
            return []
        fresh = chunk.new_segment or self._last is None
        prev = chunk.t[0] if fresh or self._last is None else self._last
        steps = np.diff(chunk.t, prepend=prev)  # steps[0] is 0 on a fresh segment
        bad = np.flatnonzero(steps <= 0)
        if fresh:
            bad = bad[bad > 0]
        if bad.size:
            at = int(bad[0])
            raise DataError(
                f"timestamp {float(chunk.t[at])!r} is not after the previous one "
                f"({float(prev if at == 0 else chunk.t[at - 1])!r})"
            )
        cuts = np.flatnonzero(steps > self.max_step)
        self.gaps += len(cuts)
        self.gap_seconds += float((steps[cuts] - self.period).sum())
        self._last = float(chunk.t[-1])
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), n]
        return [
            SampleChunk(chunk.t[a:b], chunk.x[a:b], new_segment=fresh or i > 0)
            for i, (a, b) in enumerate(zip(starts, ends, strict=True))
            if b > a
        ]

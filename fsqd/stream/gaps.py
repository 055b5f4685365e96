"""Split a sample stream where timestamps jump, so that no window spans a gap."""

from __future__ import annotations

import itertools
import math
from typing import Literal

import numpy as np

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError, DataError

Backwards = Literal["error", "segment"]
BACKWARDS_POLICIES: tuple[Backwards, ...] = ("error", "segment")


class GapSplitter:
    """Cut wherever a time step exceeds ``max_gap_periods`` sample periods.

    Stateful across chunks: the last timestamp is remembered, so a gap that falls
    between two chunks is found like one inside a chunk. ``gaps`` counts the cuts and
    ``gap_seconds`` the time they lost (each step minus the one period it should be).

    Time that does not advance (a logger restart, an NTP step, a repeated row) is, by
    ``on_backwards``: ``"error"`` (a DataError naming the sample; replay's default, where
    the reader names FILE:LINE first) or ``"segment"`` (a new segment, counted in
    ``backwards``; the live daemon's choice, which must never stop for its clock).
    """

    def __init__(
        self, rate_hz: float, max_gap_periods: float = 2.5, on_backwards: Backwards = "error"
    ) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f"gap splitter needs a positive sample rate, got {rate_hz} Hz")
        if not (math.isfinite(max_gap_periods) and max_gap_periods > 1):
            raise ConfigError(
                f"a gap must be longer than 1 sample period, got max_gap_periods={max_gap_periods}"
            )
        if on_backwards not in BACKWARDS_POLICIES:
            raise ConfigError(f"on_backwards must be 'error' or 'segment', got {on_backwards!r}")
        self.on_backwards = on_backwards
        self.max_step = max_gap_periods / rate_hz
        self.period = 1.0 / rate_hz
        self.backwards = 0  # times time did not advance (new segments under "segment")
        self.gaps = 0
        self.gap_seconds = 0.0
        self._last: float | None = None  # last timestamp of the current segment
        self._seen = 0  # samples accepted so far, to name a bad one's place in the stream

    def split(self, chunk: SampleChunk) -> list[SampleChunk]:
        t = chunk.t
        n = len(t)
        if n != len(chunk.x):
            raise DataError(f"chunk has {n} timestamps but {len(chunk.x)} samples")
        fresh = chunk.new_segment or self._last is None
        if n == 0:
            if chunk.new_segment:
                self._last = None  # the next samples start a segment even so
            return []
        finite = np.isfinite(t)
        if not finite.all():
            at = int(np.flatnonzero(~finite)[0])
            raise DataError(
                f"sample {self._seen + at}: timestamp {float(t[at])!r} is not a finite number"
            )
        prev = t[0] if fresh or self._last is None else self._last
        steps = np.diff(t, prepend=prev)  # steps[0] is 0 on a fresh segment
        bad = np.flatnonzero(steps <= 0)
        if fresh:
            bad = bad[bad > 0]
        if bad.size and self.on_backwards == "error":
            at = int(bad[0])
            raise DataError(
                f"sample {self._seen + at}: timestamp {float(t[at])!r} is not after "
                f"the previous one ({float(prev if at == 0 else t[at - 1])!r})"
            )
        self.backwards += len(bad)
        gaps = np.flatnonzero(steps > self.max_step)
        self.gaps += len(gaps)
        self.gap_seconds += float((steps[gaps] - self.period).sum())
        self._last = float(t[-1])
        self._seen += n
        if not gaps.size and not bad.size:  # the usual chunk: one piece, as it came
            return [chunk if chunk.new_segment == fresh else SampleChunk(t, chunk.x, fresh)]
        cuts = np.union1d(gaps, bad)
        edges = [0, *cuts.tolist(), n]
        return [
            SampleChunk(t[a:b], chunk.x[a:b], new_segment=fresh or i > 0)
            for i, (a, b) in enumerate(itertools.pairwise(edges))
            if b > a
        ]

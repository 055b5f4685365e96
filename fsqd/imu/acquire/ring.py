"""A preallocated ring of timestamped samples between one writer thread and one reader.

The writer (the acquisition thread) never waits for the reader: when the reader falls
more than the capacity behind, its oldest unread samples are overwritten, and the next
``read()`` reports them as an overrun (counted) and starts a new segment there. Every
sample has a sequence number (its position in the stream since start), so losses are
exact counts. The lock is held only for the copy of a burst or of one read.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk


class SampleRing:
    def __init__(self, capacity: int, channels: int) -> None:
        if capacity < 1 or channels < 1:
            raise ValueError(f"ring needs capacity and channels >= 1, got {capacity}, {channels}")
        self.capacity = capacity
        self.channels = channels
        self._t = np.zeros(capacity, np.float64)
        self._x = np.zeros((capacity, channels), np.float32)
        self._segment = np.zeros(capacity, np.bool_)  # a row that does not continue the one before
        self._lock = threading.Lock()
        self.written = 0  # sequence number of the next sample written
        self.read_seq = 0  # sequence number of the next sample read
        self.overruns = 0  # times the reader fell behind
        self.overrun_samples = 0  # samples overwritten before they were read

    def write(
        self, t: npt.NDArray[np.float64], x: npt.NDArray[np.float32], new_segment: bool
    ) -> None:
        n = len(t)
        if n == 0:
            return
        if n > self.capacity:  # only the newest fit; the rest go as an overrun on read
            with self._lock:
                self.written += n - self.capacity
            t, x, new_segment = t[-self.capacity :], x[-self.capacity :], True
            n = self.capacity
        with self._lock:
            start = self.written % self.capacity
            first = min(n, self.capacity - start)
            self._t[start : start + first] = t[:first]
            self._x[start : start + first] = x[:first]
            self._segment[start : start + first] = False
            if first < n:
                self._t[: n - first] = t[first:]
                self._x[: n - first] = x[first:]
                self._segment[: n - first] = False
            self._segment[start] = new_segment
            self.written += n

    def read(self) -> list[SampleChunk]:
        """Every sample since the last read, split into chunks at segment starts."""
        with self._lock:
            end = self.written
            begin = self.read_seq
            lost = end - begin - self.capacity
            broken = lost > 0
            if broken:
                self.overruns += 1
                self.overrun_samples += lost
                begin = end - self.capacity
            n = end - begin
            idx = (begin + np.arange(n)) % self.capacity
            t = self._t[idx]
            x = self._x[idx]
            seg = self._segment[idx]
            self.read_seq = end
        if n == 0:
            return []
        if broken:
            seg[0] = True
        cuts = [0, *np.flatnonzero(seg[1:]) + 1, n]
        return [
            SampleChunk(t[a:b], x[a:b], new_segment=bool(seg[a]))
            for a, b in itertools.pairwise(cuts)
        ]


__all__ = ["SampleRing"]

"""Several sensors onto one time grid: the first sensor's sample times.

Each other sensor is linearly interpolated at the first sensor's timestamps, within one
of its own segments (never across a gap). A first-sensor sample waits until every
other sensor has a sample at or after it; if one has not after ``hold_s`` (it is lost,
or it lags), the sample is dropped, counted, and the output starts a new segment.

First-sensor samples from before every other sensor took its first sample are not
lost (nothing was lost: the set of sensors had not started yet): they are counted as
``skipped``, apart from ``dropped``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Rows = tuple[F64, F32, bool]  # (t, x, new_segment) for a run of aligned rows


class _Buffer:
    def __init__(self, width: int) -> None:
        self.t = np.zeros(0)
        self.x = np.zeros((0, width), np.float32)
        self.seg = np.zeros(0, np.bool_)  # row starts a segment of this sensor
        self.fresh = True

    def push(self, t: F64, x: F32, new_segment: bool) -> None:
        seg = np.zeros(len(t), np.bool_)
        seg[0] = new_segment or self.fresh
        self.fresh = False
        self.t = np.concatenate([self.t, t])
        self.x = np.concatenate([self.x, x])
        self.seg = np.concatenate([self.seg, seg])

    def drop(self, n: int) -> None:
        self.t, self.x, self.seg = self.t[n:], self.x[n:], self.seg[n:]


class Aligner:
    def __init__(self, sensors: int, width: int = 9, hold_s: float = 0.5) -> None:
        self.buffers = [_Buffer(width) for _ in range(sensors)]
        self.hold_s = hold_s
        self.dropped = 0  # first-sensor samples that could not be aligned (lost)
        self.skipped = 0  # first-sensor samples from before every other sensor started
        self._started_at: float | None = None  # the last other sensor's first sample time
        self._break = False

    def push(self, sensor: int, t: F64, x: F32, new_segment: bool) -> None:
        if len(t):
            self.buffers[sensor].push(t, x, new_segment)

    def pop(self, now: float) -> list[Rows]:
        first, others = self.buffers[0], self.buffers[1:]
        if not len(first.t):
            return []
        if self._started_at is None and all(len(b.t) for b in others):
            self._started_at = max(float(b.t[0]) for b in others)
        horizon = min((float(b.t[-1]) if len(b.t) else -np.inf) for b in others)
        ready = int(np.searchsorted(first.t, horizon, side="right"))
        out: list[Rows] = []
        if ready:
            t, x, seg = first.t[:ready], first.x[:ready], first.seg[:ready].copy()
            cols = [x]
            ok = np.ones(ready, np.bool_)
            for b in others:
                values, valid = _interpolate(b, t)
                cols.append(values)
                ok &= valid
            joined = np.concatenate(cols, axis=1)
            out = self._runs(t, joined, seg, ok)
            first.drop(ready)
            for b in others:  # keep the row before the next first-sensor time
                keep = int(np.searchsorted(b.t, t[-1], side="right")) - 1
                if keep > 0:
                    b.drop(keep)
        # First-sensor samples the others cannot cover in time are dropped.
        stale = int(np.searchsorted(first.t, now - self.hold_s, side="left"))
        if stale:
            self._count_dropped(first.t[:stale])
            first.drop(stale)
            self._break = True
        return out

    def _runs(
        self, t: F64, x: F32, seg: npt.NDArray[np.bool_], ok: npt.NDArray[np.bool_]
    ) -> list[Rows]:
        out: list[Rows] = []
        self._count_dropped(t[~ok])
        start = None
        brk = self._break
        for i in range(len(t) + 1):
            end_run = i == len(t) or not ok[i] or (seg[i] and start is not None)
            if end_run and start is not None:
                out.append((t[start:i], x[start:i], brk or bool(seg[start])))
                brk = False
                start = None
            if i == len(t):
                break
            if not ok[i]:
                brk = True
            elif start is None:
                start = i
        self._break = brk
        return out

    def _count_dropped(self, t: F64) -> None:
        early = (
            len(t)
            if self._started_at is None
            else int(np.searchsorted(t, self._started_at, side="left"))
        )
        self.skipped += early
        self.dropped += len(t) - early


def _interpolate(b: _Buffer, t: F64) -> tuple[F32, npt.NDArray[np.bool_]]:
    """b's rows at times t, and whether each lies inside one of b's segments."""
    hi = np.searchsorted(b.t, t, side="left")
    exact = (hi < len(b.t)) & (b.t[np.minimum(hi, len(b.t) - 1)] == t)
    lo = hi - 1
    inside = (lo >= 0) & (hi < len(b.t))
    hi_c = np.clip(hi, 0, len(b.t) - 1)
    lo_c = np.clip(lo, 0, len(b.t) - 1)
    inside &= ~b.seg[hi_c]  # the row at hi continues the row at lo
    valid = inside | exact
    span = np.where(inside, b.t[hi_c] - b.t[lo_c], 1.0)
    f = np.where(inside, (t - b.t[lo_c]) / span, 0.0)[:, None]
    values = np.where(exact[:, None], b.x[hi_c], b.x[lo_c] + f * (b.x[hi_c] - b.x[lo_c])).astype(
        np.float32
    )
    return values, valid


__all__ = ["Aligner"]

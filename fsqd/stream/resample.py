"""Sample-rate estimation and streaming linear resampling onto the model's rate."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError
from fsqd.stream.chunk import SampleChunk


def estimate_rate(t: npt.NDArray[np.float64]) -> float:
    """Robust rate in Hz: the median positive step, so gaps and jitter do not move it."""
    steps = np.diff(np.asarray(t, np.float64))
    steps = steps[steps > 0]
    if steps.size == 0:
        raise DataError("need at least two increasing timestamps to learn the sample rate")
    return float(1.0 / np.median(steps))


class LinearResampler:
    """Linear interpolation onto ``t0 + k / out_rate`` within each segment.

    The last input sample is carried across chunks so the output does not depend on
    how the input was chunked; a new segment restarts the grid at its first sample.
    """

    def __init__(self, in_rate_hz: float, out_rate_hz: float) -> None:
        if not (in_rate_hz > 0 and out_rate_hz > 0):
            raise DataError(f"rates must be positive, got {in_rate_hz} and {out_rate_hz}")
        self.in_rate = in_rate_hz
        self.out_period = 1.0 / out_rate_hz
        self._t0 = 0.0  # first sample time of the segment: grid origin
        self._k = 0  # next output index on the grid
        self._prev_t: npt.NDArray[np.float64] | None = None  # last input sample, carried
        self._prev_x: npt.NDArray[np.float32] | None = None

    def push(self, chunk: SampleChunk) -> SampleChunk:
        if chunk.new_segment or self._prev_t is None:
            self._prev_t = self._prev_x = None
            if len(chunk.t):
                self._t0, self._k = float(chunk.t[0]), 0
        if len(chunk.t) == 0:
            return chunk
        if self._prev_t is not None and self._prev_x is not None:
            t = np.concatenate([self._prev_t, chunk.t])
            x = np.concatenate([self._prev_x, chunk.x])
        else:
            t, x = chunk.t, chunk.x
        # Grid points covered by [t[0], t[-1]] that were not emitted yet.
        k_end = int(np.floor((t[-1] - self._t0) / self.out_period + 1e-9)) + 1
        ks = np.arange(self._k, max(self._k, k_end))
        tq = (self._t0 + ks * self.out_period).astype(np.float64, copy=False)
        # Left neighbour of each grid time; a grid time on a sample takes that sample
        # exactly (w = 0), which keeps the output independent of chunk boundaries.
        j = np.clip(np.searchsorted(t, tq, side="right") - 1, 0, len(t) - 1)
        jn = np.minimum(j + 1, len(t) - 1)
        span = t[jn] - t[j]
        w = np.divide(tq - t[j], span, out=np.zeros_like(tq), where=span > 0)
        xq = x[j] + (x[jn] - x[j]) * w.astype(np.float32)[:, None]
        self._k += len(ks)
        self._prev_t, self._prev_x = t[-1:].copy(), x[-1:].copy()
        return SampleChunk(tq, np.ascontiguousarray(xq, np.float32), chunk.new_segment)

"""Sample-rate estimation and streaming linear resampling onto the model's rate."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError, DataError
from fsqd.stream.chunk import SampleChunk


def estimate_rate(t: npt.ArrayLike) -> float:
    """Robust rate in Hz: the median positive step, so gaps and jitter do not move it."""
    steps = np.diff(np.asarray(t, np.float64))
    steps = steps[steps > 0]
    if steps.size == 0:
        raise DataError("need at least two increasing timestamps to learn the sample rate")
    return float(1.0 / np.median(steps))


class LinearResampler:
    """Linear interpolation onto ``t0 + k / out_rate`` within each segment.

    ``t0`` is the first sample time of the segment. The last input sample is carried
    across chunks and a grid point is emitted only once an input sample at or after it
    has arrived, so every output value comes from the same two input samples however
    the input was chunked. A new segment restarts the grid at its first sample.
    Equal rates pass samples through untouched.
    """

    def __init__(self, in_rate_hz: float, out_rate_hz: float) -> None:
        for name, rate in (("input", in_rate_hz), ("output", out_rate_hz)):
            if not (math.isfinite(rate) and rate > 0):
                raise ConfigError(f"resampler {name} rate must be positive, got {rate} Hz")
        self.in_rate = in_rate_hz
        self.out_rate = out_rate_hz
        self.passthrough = in_rate_hz == out_rate_hz
        self._t0 = 0.0  # grid origin: the segment's first sample time
        self._k = 0  # next grid index to emit
        self._fresh = True  # the next sample starts a segment
        self._prev_t = np.zeros(0, np.float64)  # the last input sample, carried
        self._prev_x = np.zeros((0, 0), np.float32)

    def push(self, chunk: SampleChunk) -> SampleChunk:
        if self.passthrough:
            if chunk.x.dtype == np.float32:
                return chunk
            return SampleChunk(chunk.t, chunk.x.astype(np.float32), chunk.new_segment)
        if chunk.new_segment:
            self._fresh = True
        n = len(chunk.t)
        if n == 0:
            return SampleChunk(
                np.zeros(0, np.float64),
                np.zeros((0, *chunk.x.shape[1:]), np.float32),
                chunk.new_segment,
            )
        new_segment = self._fresh
        if self._fresh:
            self._t0, self._k, self._fresh = float(chunk.t[0]), 0, False
            t, x = chunk.t, chunk.x
        else:
            t = np.concatenate([self._prev_t, chunk.t])
            x = np.concatenate([self._prev_x, chunk.x])
        # Grid points not emitted yet that lie at or before the newest sample.
        k_hi = int((float(t[-1]) - self._t0) * self.out_rate) + 2
        ks = np.arange(self._k, max(self._k, k_hi), dtype=np.float64)
        tq = self._t0 + ks / self.out_rate
        tq = tq[: np.searchsorted(tq, t[-1], side="right")]
        # Left neighbour j with t[j] <= tq (exists: tq >= the carried sample's time) and
        # its right neighbour; a grid time on the newest sample takes it exactly (w = 0).
        j = np.searchsorted(t, tq, side="right") - 1
        jn = np.minimum(j + 1, len(t) - 1)
        span = t[jn] - t[j]
        w = np.divide(tq - t[j], span, out=np.zeros_like(tq), where=span > 0)
        # Lerp in float64, then one rounding to float32: within an ulp of np.interp.
        x0 = x[j].astype(np.float64)
        xq = x0 + (x[jn] - x0) * w[:, None]
        self._k += len(tq)
        self._prev_t, self._prev_x = t[-1:].copy(), x[-1:].copy()
        return SampleChunk(tq, xq.astype(np.float32), new_segment)

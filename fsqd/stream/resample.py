"""Band-limited streaming resampling onto the model's rate, positioned by real timestamps.

Each output sample sits on ``t0 + k / out_rate`` (t0: the segment's first sample time). Its
place among the input samples comes from their timestamps, so a sensor whose clock runs a
few percent off its nominal rate still lands on the model's grid. Its value is a windowed-
sinc (Kaiser) interpolation of the 2K input samples around that place: a low-pass whose
stop band starts at the lower of the two Nyquist frequencies, so downsampling does not fold
a 95 Hz vibration onto 5 Hz. The kernel is tabulated once per rate pair at ``PHASES``
fractional offsets; run time is one gather and one weighted sum per output sample.

``kernel="linear"`` (live data from a chip whose own digital low-pass already removed the
band that would fold, at a rate within a few percent of the model's) interpolates between
the two inputs around each output instead: it waits for one input past an output, not K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError, DataError
from fsqd.stream import timebase

PHASES = 512  # tabulated fractional offsets; linear between them (error ~1e-6 of the tap)
MAX_RATIO = 1000.0  # 1 Hz -> 1 kHz at most: beyond, the output would dwarf the input
LOOP_TAPS = 128  # up to here a loop over taps beats gathering them (measured, bench_resample)
WORK_VALUES = 1 << 20  # float64 values per step (gathered taps + weights): bounded per chunk
# flush(): a grid time this far (in output periods) past a segment's last sample is taken as
# on it; far above the rounding of UNIX-sized stamps, far below any real offset.
END_TOLERANCE = 1e-3


def estimate_rate(t: npt.ArrayLike) -> float:
    """The rate in Hz fitted over gap-free stretches (``timebase.estimate_rate`` has the
    jitter and the burst pattern too)."""
    return timebase.estimate_rate(t).rate_hz


@dataclass(frozen=True)
class FilterDesign:
    """The anti-alias low-pass, in Hz at the nominal input rate."""

    in_rate_hz: float
    out_rate_hz: float
    pass_hz: float  # flat (within ripple) up to here
    stop_hz: float  # at least ``stop_db`` down from here on
    stop_db: float
    half_taps: int  # K: input samples used on each side of an output time
    beta: float  # Kaiser window shape


def design(
    in_rate_hz: float,
    out_rate_hz: float,
    *,
    stop_db: float = 60.0,
    drift: float = 0.05,
    half_taps: int | None = None,
) -> FilterDesign:
    """Kaiser-window design: pass to 0.8 of the lower Nyquist, stop from it (less drift).

    ``drift`` keeps the stop band below the Nyquist frequency even when the sensor's real
    rate is that much above nominal (the filter runs in samples, so it moves with the clock).
    """
    nyquist = min(in_rate_hz, out_rate_hz) / 2
    stop = nyquist / (1 + drift)
    pass_ = 0.8 * nyquist
    width = (stop - pass_) / in_rate_hz  # cycles per input sample
    a = stop_db
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    taps = (a - 7.95) / (2.285 * 2 * math.pi * width) + 1
    k = math.ceil(taps / 2) + 1 if half_taps is None else half_taps
    return FilterDesign(in_rate_hz, out_rate_hz, pass_, stop, a, k, beta)


Kernel = Literal["sinc", "linear"]


def linear_table(phases: int = PHASES) -> npt.NDArray[np.float64]:
    """Weights (phases + 1, 2) of linear interpolation: row p is (1 - p/phases, p/phases)."""
    frac = np.arange(phases + 1, dtype=np.float64) / phases
    return np.stack([1.0 - frac, frac], axis=1)


def kernel_table(d: FilterDesign, phases: int = PHASES) -> npt.NDArray[np.float64]:
    """Weights (phases + 1, 2K): row p for an output p/phases of a period after input j,
    column q for input j - K + 1 + q; each row sums to 1 (DC passes exactly)."""
    k = d.half_taps
    fc = (d.pass_hz + d.stop_hz) / 2 / d.in_rate_hz  # cycles per input sample
    frac = np.arange(phases + 1, dtype=np.float64)[:, None] / phases
    offsets = np.arange(-k + 1, k + 1, dtype=np.float64)[None, :]
    tau = frac - offsets  # distance from each input to the output, in input periods
    window = np.i0(d.beta * np.sqrt(np.clip(1 - (tau / k) ** 2, 0, None))) / np.i0(d.beta)
    h = 2 * fc * np.sinc(2 * fc * tau) * window
    result: npt.NDArray[np.float64] = h / h.sum(axis=1, keepdims=True)
    return result


class Resampler:
    """Streaming, chunk-invariant resampling from ``in_rate_hz`` (nominal) to ``out_rate_hz``.

    An output is emitted once the K input samples after it have arrived; a new segment (or
    ``flush()``) first finishes the previous one, holding its last sample for the missing
    right-hand taps, as the first sample is held for the left-hand taps of a segment's start.
    The same input gives the same output bit for bit, however it is cut into chunks.
    ``kernel="linear"``: K = 1, the two inputs around each output (no anti-alias filter:
    the input must already be band-limited below the lower Nyquist frequency).
    """

    def __init__(
        self,
        in_rate_hz: float,
        out_rate_hz: float,
        *,
        stop_db: float = 60.0,
        drift: float = 0.05,
        max_step_periods: float = 2.5,
        half_taps: int | None = None,
        kernel: Kernel = "sinc",
    ) -> None:
        for name, rate in (("input", in_rate_hz), ("output", out_rate_hz)):
            if not (math.isfinite(rate) and rate > 0):
                raise ConfigError(f"resampler {name} rate must be positive, got {rate} Hz")
        ratio = out_rate_hz / in_rate_hz
        if not (1 / MAX_RATIO <= ratio <= MAX_RATIO):
            raise DataError(
                f"resampling {in_rate_hz:.6g} Hz -> {out_rate_hz:.6g} Hz changes the rate by more "
                f"than {MAX_RATIO:g}x: is the time unit right?"
            )
        self.in_rate = in_rate_hz
        self.out_rate = out_rate_hz
        if half_taps is not None and half_taps < 1:
            raise ConfigError(f"resampler half_taps must be >= 1, got {half_taps}")
        if kernel not in ("sinc", "linear"):
            raise ConfigError(f"resampler kernel must be 'sinc' or 'linear', got {kernel!r}")
        self.kernel: Kernel = kernel
        linear = kernel == "linear"
        self.design = design(
            in_rate_hz,
            out_rate_hz,
            stop_db=stop_db,
            drift=drift,
            half_taps=1 if linear else half_taps,
        )
        self._table = linear_table() if linear else kernel_table(self.design)
        self._k = self.design.half_taps
        self._offsets = np.arange(-self._k + 1, self._k + 1)
        # Bound on outputs per input sample inside a segment (gaps are split upstream).
        self._max_out_per_in = (max_step_periods + 1) * out_rate_hz / in_rate_hz * (1 + drift)
        self._t = np.zeros(0, np.float64)  # buffered input times; -inf/+inf on held samples
        self._x = np.zeros((0, 0), np.float32)
        self._t0 = 0.0
        self._next = 0  # next grid index to emit
        self._open = False  # a segment is in progress
        self._fresh_out = True  # the next output starts a segment

    def push(self, chunk: SampleChunk) -> list[SampleChunk]:
        out: list[SampleChunk] = []
        if chunk.new_segment and self._open:
            out += self.flush()
        if len(chunk.t) == 0:
            return out
        x = chunk.x.astype(np.float32, copy=False)
        if not self._open:
            self._start(chunk.t, x)
        else:
            self._t = np.concatenate([self._t, chunk.t])
            self._x = np.concatenate([self._x, x])
        # Ready: grid times before the K-th newest input, so every right-hand tap is in.
        limit = float(self._t[-self._k]) if len(self._t) > self._k else -math.inf
        piece = self._emit(limit, new_inputs=len(chunk.t))
        if piece is not None:
            out.append(piece)
        return out

    def flush(self) -> list[SampleChunk]:
        """Finish the open segment: the grid up to its last sample, holding that sample.

        A grid time that is the last sample's time but for rounding (an ulp of a
        UNIX-sized stamp is ~0.2 us) counts as reaching it: N samples at the output rate
        give N outputs whatever the start time."""
        if not self._open:
            return []
        last = float(self._t[-1])
        self._t = np.concatenate([self._t, np.full(self._k, np.inf)])
        self._x = np.concatenate([self._x, np.repeat(self._x[-1:], self._k, axis=0)])
        piece = self._emit(last + END_TOLERANCE / self.out_rate, new_inputs=self._k)
        self._open = False
        self._t, self._x = self._t[:0], self._x[:0]
        return [] if piece is None else [piece]

    def _start(self, t: npt.NDArray[np.float64], x: npt.NDArray[np.float32]) -> None:
        k = self._k
        self._t = np.concatenate([np.full(k, -np.inf), t])
        self._x = np.concatenate([np.repeat(x[:1], k, axis=0), x])
        self._t0, self._next, self._open, self._fresh_out = float(t[0]), 0, True, True

    def _emit(self, limit: float, new_inputs: int) -> SampleChunk | None:
        """Outputs for grid times in [next, limit); trims the buffer to what later ones need."""
        if not limit > self._t0:
            return None
        k_hi = math.ceil((limit - self._t0) * self.out_rate)
        count = k_hi - self._next
        if count > self._max_out_per_in * new_inputs + 2:
            raise DataError(
                f"resampler: {count} outputs due for {new_inputs} input samples; a time step "
                "inside a segment is too long (gaps must be split before resampling)"
            )
        if count <= 0:
            return None
        tq = self._t0 + np.arange(self._next, k_hi, dtype=np.float64) / self.out_rate
        tq = tq[tq < limit]
        if len(tq) == 0:
            return None
        self._next += len(tq)
        t, x = self._t, self._x
        j = np.searchsorted(t, tq, side="right") - 1
        with np.errstate(invalid="ignore"):
            frac = (tq - t[j]) / (t[j + 1] - t[j])
        frac = np.where(np.isfinite(frac), frac, 0.0)  # at a held end sample: exactly it
        y = np.empty((len(tq), x.shape[1]), np.float32)
        if self.kernel == "linear":
            # The two inputs around each output: the table's rows would give the same
            # weights, at the cost of the gathers and the blend between two rows.
            f = frac[:, None]
            y[:] = x[j] * (1.0 - f) + x[j + 1] * f
            return self._keep(t, x, j, tq, y)
        step = max(1, WORK_VALUES // (len(self._offsets) * (x.shape[1] + 1)))
        for a in range(0, len(tq), step):
            b = min(len(tq), a + step)
            pos = frac[a:b] * PHASES
            p = np.minimum(pos.astype(np.int64), PHASES - 1)
            w_hi = (pos - p)[:, None]
            weights = self._table[p] * (1 - w_hi) + self._table[p + 1] * w_hi
            # Each output's taps are summed in the same order whatever m is, so the output
            # has the same bits however the input was chunked (tests check this).
            if len(self._offsets) <= LOOP_TAPS:
                acc = np.zeros((b - a, x.shape[1]), np.float64)
                for q, off in enumerate(self._offsets.tolist()):
                    acc += weights[:, q : q + 1] * x[j[a:b] + off]
                y[a:b] = acc
            else:  # long filters: gather the (m, C, 2K) taps once, one einsum
                windows = sliding_window_view(x, len(self._offsets), axis=0)  # (n-2K+1, C, 2K)
                taps = windows[j[a:b] - (self._k - 1)].astype(np.float64)
                y[a:b] = np.einsum("mck,mk->mc", taps, weights)
        return self._keep(t, x, j, tq, y)

    def _keep(
        self,
        t: npt.NDArray[np.float64],
        x: npt.NDArray[np.float32],
        j: npt.NDArray[np.intp],
        tq: npt.NDArray[np.float64],
        y: npt.NDArray[np.float32],
    ) -> SampleChunk:
        """Trim the buffer to what later outputs need; the outputs as a chunk."""
        keep = max(0, int(j[-1]) - self._k + 1)
        self._t, self._x = t[keep:].copy(), x[keep:].copy()
        fresh, self._fresh_out = self._fresh_out, False
        return SampleChunk(tq, y, new_segment=fresh)

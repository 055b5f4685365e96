"""Sliding windows over a segmented sample stream, chunk-invariant.

Window k of a segment starts at sample k * hop of that segment. The tail that may
still start a window is kept between chunks; a new segment drops it, so no window
spans a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError, DataError


@dataclass(frozen=True, slots=True)
class WindowBatch:
    x: npt.NDArray[np.float32]  # (N, window, C); C-contiguous unless asked for a view
    t_start: npt.NDArray[np.float64]  # (N,) time of each window's first sample
    t_end: npt.NDArray[np.float64]  # (N,) time of its last sample

    def __len__(self) -> int:
        return len(self.t_start)


class Windower:
    """Sliding windows of ``window`` samples every ``hop`` samples, per segment.

    With ``copy=False`` a batch's ``x`` is a strided view into the samples, for a caller
    that copies windows once, straight into its own buffers (replay's encoder batches).
    """

    def __init__(self, window: int, hop: int, channels: int, *, copy: bool = True) -> None:
        if window < 1 or hop < 1 or channels < 1:
            raise ConfigError(
                f"window, hop and channels must be >= 1, got {window}, {hop}, {channels}"
            )
        self.window, self.hop, self.channels = window, hop, channels
        self.copy = copy
        self.windows_emitted = 0
        self._t = np.zeros(0, np.float64)
        self._x = np.zeros((0, channels), np.float32)
        self._next = 0  # index in the buffer where the next window starts

    def push(self, chunk: SampleChunk) -> WindowBatch:
        """All windows completed by this chunk; the tail that may start more is kept."""
        if chunk.x.ndim != 2 or chunk.x.shape[1] != self.channels:
            raise DataError(f"samples have shape {chunk.x.shape}, expected (n, {self.channels})")
        if len(chunk.t) != len(chunk.x):
            raise DataError(f"chunk has {len(chunk.t)} timestamps but {len(chunk.x)} samples")
        if chunk.new_segment:
            self._t, self._x, self._next = self._t[:0], self._x[:0], 0
        cx = chunk.x.astype(np.float32, copy=False)
        t = np.concatenate([self._t, chunk.t]) if len(self._t) else chunk.t
        x = np.concatenate([self._x, cx]) if len(self._x) else cx
        n_starts = max(0, (len(t) - self.window - self._next) // self.hop + 1)
        if n_starts:
            first = self._next
            last = first + (n_starts - 1) * self.hop
            # (N, C, window) view -> one copy into (N, window, C).
            view = sliding_window_view(x, self.window, axis=0)[first : last + 1 : self.hop]
            wx = view.transpose(0, 2, 1)
            if self.copy:
                wx = np.ascontiguousarray(wx)
            starts = np.arange(first, last + 1, self.hop)
            batch = WindowBatch(wx, t[starts], t[starts + self.window - 1])
            self._next = last + self.hop
        else:
            batch = WindowBatch(
                np.zeros((0, self.window, self.channels), np.float32),
                np.zeros(0, np.float64),
                np.zeros(0, np.float64),
            )
        drop = min(self._next, len(t))
        self._t, self._x = t[drop:].copy(), x[drop:].copy()
        self._next -= drop
        self.windows_emitted += len(batch)
        return batch

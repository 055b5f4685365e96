"""Behaviour states without a duration model: the per-window argmax with a minimum dwell.

The fall-back when the card has no semi-Markov model. A different behaviour takes over
only after it has been the most probable one for ``min_dwell`` windows in a row; a window
that goes back to the current behaviour (or on to a third) starts the count again. The
verdict on a window is known ``min_dwell - 1`` windows later (when a run that starts at it
is confirmed or broken), so that is the lag: a change is dated to the window it began at.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.hsmm import Decision
from fsqd.errors import ConfigError

__all__ = ["Hysteresis"]


class Hysteresis:
    """Same calls as ``fsqd.behaviour.hsmm.Hsmm``: ``push`` per window, ``flush`` at a gap."""

    def __init__(self, min_dwell: int) -> None:
        if min_dwell < 1:
            raise ConfigError(f"min_dwell must be >= 1 window, got {min_dwell}")
        self.min_dwell = min_dwell
        self.lag = min_dwell - 1
        self._buffer: deque[npt.NDArray[np.float64]] = deque()
        self.filtered: npt.NDArray[np.float64] | None = None
        self.reset()

    def reset(self) -> None:
        self._state: int | None = None
        self._candidate = -1
        self._count = 0
        self._buffer.clear()
        self.filtered = None

    def push(self, posterior: npt.NDArray[np.float64]) -> list[Decision]:
        probs = np.asarray(posterior, np.float64)
        self.filtered = probs
        top = int(np.argmax(probs)) if np.all(np.isfinite(probs)) else -1
        if self._state is None and top >= 0:
            self._state = top  # a segment starts with its first usable window's argmax
        if top < 0 or top == self._state:
            self._candidate, self._count = -1, 0
        elif top == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = top, 1
        if self._count >= self.min_dwell:
            self._state, self._candidate, self._count = top, -1, 0
        self._buffer.append(probs)
        if len(self._buffer) <= self.lag:
            return []
        return self._decide(self._buffer.popleft())

    def flush(self) -> list[Decision]:
        """The windows still waiting: a run not confirmed by now never takes over."""
        out = [d for p in list(self._buffer) for d in self._decide(p)]
        self.reset()
        return out

    def _decide(self, probs: npt.NDArray[np.float64]) -> list[Decision]:
        if self._state is None:  # no usable window yet in this segment
            return [Decision(0, 0.0, probs)]
        p = float(probs[self._state]) if np.isfinite(probs[self._state]) else 0.0
        return [Decision(self._state, p, probs)]

"""Sample time from CLOCK_MONOTONIC, mapped to UNIX time, and wall-clock steps.

A Pi has no real-time clock: until NTP synchronises, the wall clock is wrong and then
steps. Samples are therefore stamped on a *stream timeline*: CLOCK_MONOTONIC plus the
wall-clock offset captured once at start (``sample_time()``), which never steps, so
gaps and windows stay right. ``WallClock`` follows the current offset between the wall
clock and CLOCK_MONOTONIC; when it moves by more than a threshold (a step, not NTP's
slow slew), ``to_wall`` maps every stream time still unsent to the corrected wall time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

# Captured once per process: the stream timeline = CLOCK_MONOTONIC + this.
_BASE_OFFSET = time.time() - time.monotonic()


def sample_time(mono: float | None = None) -> float:
    """UNIX-like seconds on the stream timeline for a CLOCK_MONOTONIC reading (default now).

    Acquisition stamps samples with this; it moves exactly with CLOCK_MONOTONIC.
    """
    return (time.monotonic() if mono is None else mono) + _BASE_OFFSET


class WallClock:
    """Maps stream times to wall (UNIX) time, following wall-clock steps.

    The offset is read between two CLOCK_MONOTONIC readings, the tightest pair of three
    (a thread preempted between the two clocks would otherwise shift every later code by
    the preemption), and it is followed only when it moved by ``follow_s`` or more: below
    that is reading noise or NTP's slew (at most 0.5 ms/s), and following it would make
    consecutive codes' times jitter off their grid by microseconds.
    """

    def __init__(
        self,
        *,
        step_threshold_s: float = 0.25,
        follow_s: float = 1e-3,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        base: float | None = None,
    ) -> None:
        self._wall, self._mono = wall, mono
        self.base = _BASE_OFFSET if base is None else base
        self.step_threshold_s = step_threshold_s
        self.follow_s = follow_s
        self.correction = self._measure()  # wall time - stream time
        self.steps = 0

    def now(self) -> float:
        """Now on the stream timeline."""
        return self._mono() + self.base

    def _measure(self) -> float:
        """Wall time minus stream time now, from the tightest of three bracketed readings."""
        best_span, best = float("inf"), 0.0
        for _ in range(3):
            before = self._mono()
            wall = self._wall()
            after = self._mono()
            if after - before < best_span:
                best_span, best = after - before, wall - ((before + after) / 2 + self.base)
        return best

    def check(self) -> float | None:
        """Measure the wall clock; returns the step in seconds when it stepped, else None.

        Drifts (NTP slewing) are followed silently once they reach ``follow_s``; a step is
        counted.
        """
        delta = self._measure() - self.correction
        if abs(delta) < self.follow_s:
            return None
        self.correction += delta
        if abs(delta) > self.step_threshold_s:
            self.steps += 1
            return delta
        return None

    def to_wall(self, t: float) -> float:
        """A stream time as UNIX time under the current mapping."""
        return t + self.correction


# -- is the wall clock synchronised? (adjtimex(2)) --

_TIME_ERROR = 5  # adjtimex return value: clock not synchronised
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    # The leading fields of struct timex (linux/timex.h); the kernel writes the rest into pad.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_pad", ctypes.c_byte * 256),
    ]


def _load_adjtimex() -> Callable[[ctypes._Pointer[_Timex]], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.adjtimex
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.POINTER(_Timex)]
    fn.restype = ctypes.c_int
    return fn


_adjtimex = _load_adjtimex()


def clock_synced() -> bool | None:
    """True when the kernel says the wall clock is synchronised (NTP), None if unknown.

    Read-only adjtimex (modes=0) needs no privileges.
    """
    if _adjtimex is None:
        return None
    tx = _Timex()
    state = _adjtimex(ctypes.pointer(tx))
    if state < 0:
        return None
    return state != _TIME_ERROR and not (tx.status & _STA_UNSYNC)

"""Time as the acquisition, the emulated chips and the daemon see it, injectable for tests.

``now()`` is monotonic seconds (never steps); ``epoch_offset`` turns it into UNIX
time. A ``ManualClock`` only moves when told to (``sleep`` advances it), so tests can
run many seconds of acquisition in milliseconds with the same code.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    epoch_offset: float  # UNIX time = now() + epoch_offset

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def tick(self) -> None:
        """One step of a busy wait: keeps the CPU (and the GIL) on a real clock."""


class SystemClock:
    """The real clocks: time.monotonic, mapped to UNIX time once at creation."""

    def __init__(self) -> None:
        self.epoch_offset = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def tick(self) -> None:
        pass


class ManualClock:
    """A clock that advances only through ``sleep``/``advance``; safe across threads."""

    def __init__(self, start: float = 1000.0, epoch_offset: float = 1_790_000_000.0) -> None:
        self._t = start
        self.resolution = 20e-6  # one busy-wait step: about one register read
        self.epoch_offset = epoch_offset
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def tick(self) -> None:
        self.advance(self.resolution)


__all__ = ["Clock", "ManualClock", "SystemClock"]

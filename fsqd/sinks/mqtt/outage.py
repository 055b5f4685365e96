"""A broker outage in a few log lines, not one line per reconnect attempt.

With the back-off capped at 60 s, a broker away for a day is about 1,440 attempts; a
WARNING at each would fill the journal and bury everything else. An outage gets one
WARNING when it starts (``mqtt connect failed`` or ``mqtt connection lost``, with the
reason), a reminder at most every ``remind_s`` while it lasts (``mqtt still unreachable``:
attempts so far, seconds down, the latest reason), and its end is said on the
``mqtt connected`` line (``down_s``, ``attempts``). Every failed attempt is still counted
in the ``connect_failures`` stat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["REMIND_S", "Outage"]

log = structlog.get_logger(__name__)

REMIND_S = 600.0  # a reminder every 10 min: 144 lines for a day down, not 1,440


class Outage:
    """The current outage of one broker connection (none while connected)."""

    def __init__(
        self, host: str, *, remind_s: float = REMIND_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.host = host
        self.remind_s = remind_s
        self.clock = clock
        self.started: float | None = None  # when the outage began; None: not down
        self.attempts = 0  # connect attempts that failed since then
        self._said = 0.0  # when the last line about it was logged

    @property
    def down(self) -> bool:
        return self.started is not None

    def connect_failed(self, error: str) -> None:
        """A connect attempt failed: the outage's first line, or a reminder when due."""
        now = self.clock()
        self.attempts += 1
        if self.started is None:
            self.started = self._said = now
            log.warning("mqtt connect failed", host=self.host, error=error)
        elif now - self._said >= self.remind_s:
            self._said = now
            log.warning(
                "mqtt still unreachable",
                host=self.host,
                attempts=self.attempts,
                down_s=round(now - self.started, 1),
                error=error,
            )

    def connection_lost(self, error: str) -> None:
        """A live connection ended: the outage starts now (the attempts come after)."""
        self.started = self._said = self.clock()
        self.attempts = 0
        log.warning("mqtt connection lost", error=error)

    def ended(self) -> dict[str, Any]:
        """Connected: the fields for the ``mqtt connected`` line ({} when nothing was down),
        with the attempts counting the one that succeeded."""
        if self.started is None:
            return {}
        fields = {"down_s": round(self.clock() - self.started, 1), "attempts": self.attempts + 1}
        self.started = None
        self.attempts = 0
        return fields

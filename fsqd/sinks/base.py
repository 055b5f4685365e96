"""The one interface every sink implements: JSON lines, MQTT (and the spool behind it).

Payloads are built once per window by ``fsqd.sinks.payload`` and handed to every sink
as bytes. All methods except ``run``/``aclose`` are called on the event loop and must
not block. A sink reports each code the other side has taken (the broker's PUBACK, a
completed write) by calling ``on_published(seq, latency_s)`` on the event loop, with
the time since ``submit_code``: the daemon turns that into the ``publish`` and ``e2e``
latencies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

PublishedCallback = Callable[[int, float], None]  # (seq, seconds since submit_code)


@runtime_checkable
class ClockStepAware(Protocol):
    """Optional for a sink that holds built codes (a spool): told of each wall-clock step
    so it can re-map their times (``fsqd.sinks.payload.shift_code_times``)."""

    def clock_stepped(self, step_s: float) -> None: ...


class Sink(Protocol):
    on_published: PublishedCallback | None

    async def run(self) -> None:
        """The sink's own loop (connection, reconnects) until cancelled."""
        ...

    def submit_code(self, payload: bytes, seq: int) -> None: ...

    def publish_stats(self, payload: bytes) -> None: ...

    def publish_info(self, payload: bytes) -> None: ...

    def publish_health(self, payload: bytes) -> None:
        """The retained ``health`` message (code-usage drift, the sensors' state)."""
        ...

    def publish_state(self, payload: bytes) -> None:
        """The behaviour state (retained where the sink can retain: latest wins)."""
        ...

    def publish_event(self, payload: bytes) -> None:
        """A finished behaviour segment (in order, not retained)."""
        ...

    def counters(self) -> dict[str, int | float]:
        """published, spooled, spool_depth, spool_dropped, lost, oldest_unsent_age_s, ...
        (each described in the stats schema; the daemon's log lines use the same names)."""
        ...

    async def aclose(self, timeout_s: float) -> None:
        """Deliver what is in flight (within the timeout), flush, close."""
        ...

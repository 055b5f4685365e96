"""What the daemon talks to (the acquisition, the service manager) and what its parts share."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from fsqd.chunk import SampleChunk
from fsqd.config.logging import LoggingConfig

__all__ = [
    "Acquisition",
    "BandLimited",
    "Counters",
    "LoggingOverride",
    "Notifier",
    "NullNotifier",
    "ReadHints",
    "new_run_id",
]


def new_run_id() -> str:
    """Random per start: the ``run`` of every payload and the spool's rows of this run."""
    return uuid.uuid4().hex[:12]


class Acquisition(Protocol):
    """``fsqd.imu.acquire.acquisition.Acquisition`` as the daemon uses it."""

    nominal_rate_hz: float
    channels: int

    def start(self, wake: Callable[[], None]) -> None: ...
    def read(self) -> list[SampleChunk]: ...
    def status(self) -> Sequence[Any]: ...
    def stop(self) -> None: ...


@runtime_checkable
class ReadHints(Protocol):
    """A source that reads its FIFOs just after each window completes, when told when that
    is (``fsqd.imu``'s acquisition); others are read when they wake the daemon."""

    def want(self, t_end: float, every_s: float, after: int) -> None: ...


@runtime_checkable
class BandLimited(Protocol):
    """A source whose chips' own low-pass leaves nothing above ``bandwidth_hz`` (Hz): the
    live path may then interpolate linearly instead of the band-limited kernel."""

    bandwidth_hz: float


class Notifier(Protocol):
    watchdog_interval_s: float | None

    def ready(self) -> None: ...
    def status(self, line: str) -> None: ...
    def watchdog(self) -> None: ...
    def stopping(self) -> None: ...
    def reloading(self) -> None: ...


class NullNotifier:
    """No service manager: every notification is a no-op."""

    watchdog_interval_s: float | None = None

    def ready(self) -> None:
        pass

    def status(self, line: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass

    def reloading(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class LoggingOverride:
    """``fsqd run --log-format/--log-level``: None keeps the config file's value."""

    format: str | None = None
    level: str | None = None

    def apply(self, cfg: LoggingConfig) -> LoggingConfig:
        return LoggingConfig(self.format or cfg.format, self.level or cfg.level)


@dataclasses.dataclass
class Counters:
    samples: int = 0
    windows: int = 0  # windows cut from the stream
    coded: int = 0  # windows that went through inference
    dropped: int = 0  # windows dropped because inference fell behind
    clock_steps: int = 0

"""`fsqd run`: the daemon, sensors -> codes -> MQTT (or JSON lines), until stopped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunOptions", "run"]


@dataclass(frozen=True)
class RunOptions:
    config: Path  # the TOML config file
    duration_s: float | None = None  # stop after this long (None: run until signalled)
    stdout: bool = False  # codes as JSON lines on stdout, no MQTT
    log_format: str | None = None  # overrides [logging] format, across SIGHUP reloads too
    log_level: str | None = None  # overrides [logging] level, across SIGHUP reloads too


def run(opts: RunOptions) -> int:
    from fsqd.config.loader import load_for_run
    from fsqd.daemon.contracts import LoggingOverride
    from fsqd.daemon.wiring import run_daemon

    config = load_for_run(opts.config, stdout=opts.stdout)
    return run_daemon(
        config,
        duration_s=opts.duration_s,
        stdout=opts.stdout,
        log_override=LoggingOverride(opts.log_format, opts.log_level),
    )

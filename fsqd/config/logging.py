"""``[logging]``: the log format and level (``fsqd.daemon.logging`` applies them)."""

from __future__ import annotations

from dataclasses import dataclass

from fsqd.tomlcheck import Table

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "LoggingConfig", "parse_logging"]

LOG_FORMATS = ("auto", "console", "json", "journal")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LoggingConfig:
    format: str = "auto"
    level: str = "info"


def parse_logging(t: Table) -> LoggingConfig:
    cfg = LoggingConfig(
        t.choice("format", LOG_FORMATS, "auto"), t.choice("level", LOG_LEVELS, "info")
    )
    t.done()
    return cfg

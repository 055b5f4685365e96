"""Command-line values -> typed ones: durations, start times, comma lists, counts.

Each refuses bad text with a one-line message (a UsageError, or argparse's own).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Callable
from typing import TypeVar

from fsqd.errors import UsageError

__all__ = [
    "comma_list",
    "floats",
    "ints",
    "names",
    "optional_duration",
    "parse_duration",
    "parse_start",
    "positive_int",
]

T = TypeVar("T")

MAX_SECONDS = 24 * 3600
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|m|min|s)?\s*$")


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise UsageError(f"duration must look like 90s, 10m or 1h, got {text!r}")
    value = float(m.group(1)) * {"h": 3600, "m": 60, "min": 60}.get(m.group(2) or "s", 1)
    if not 0 < value <= MAX_SECONDS:
        raise UsageError(f"duration must be between 0 and 24 h, got {text!r}")
    return value


def parse_start(text: str) -> float:
    """'0' (relative seconds), 'now', or an ISO-8601 time -> seconds."""
    from fsqd.recordings.base import iso_to_epoch

    if text == "now":
        return dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return iso_to_epoch(text)
    except ValueError:
        raise UsageError(f"--start must be seconds, 'now' or ISO-8601, got {text!r}") from None


def optional_duration(text: str | None) -> float | None:
    return None if text is None else parse_duration(text)


def comma_list(cast: Callable[[str], T], what: str) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for 'a,b,c' lists of ``cast`` values."""

    def parse(text: str) -> tuple[T, ...]:
        try:
            return tuple(cast(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None

    return parse


floats = comma_list(float, "numbers")
ints = comma_list(int, "integers")


def names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(","))
    if any(not n for n in names):
        raise argparse.ArgumentTypeError(f"empty name in {text!r}")
    return names


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v

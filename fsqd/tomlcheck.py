"""Read TOML tables into typed values, reporting each problem on one line.

A ``Table`` wraps one parsed table with the place it came from (``fsqd.toml [mqtt]``).
Values are taken by key with the type they must have; ``done()`` then refuses any key
nobody took, naming the nearest valid one, so a typo never silently falls back to a
default. Every message starts with the place, then the key, then what was wrong.
"""

from __future__ import annotations

import codecs
import difflib
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from fsqd.errors import ConfigError, NoInputError
from fsqd.safefile import CONFIG_MAX, FileProblem, read_bytes

T = TypeVar("T")

# Tables and arrays inside each other: fsqd's own files need 3 levels; far more is not a config.
MAX_DEPTH = 32

_MISSING: Any = object()

_KIND_NAMES: dict[type, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


class Table:
    """One TOML table, consumed key by key."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self._taken: set[str] = set()

    def error(self, key: str | None, message: str) -> ConfigError:
        place = f"{self.where} {key}" if key else self.where
        return ConfigError(f"{place}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, default: object) -> object:
        self._taken.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            # A misspelt required key would otherwise be reported as missing, not as the typo.
            typo = difflib.get_close_matches(key, [k for k in self.data if k not in self._taken])
            hint = f"; is {typo[0]!r} a typo?" if typo else ""
            raise self.error(key, f"missing (required{hint})")
        return default

    def get(self, key: str, kind: type[T], default: T = _MISSING) -> T:
        """``key`` as ``kind`` (an int is accepted where a float is asked for)."""
        value = self._raw(key, default)
        if value is default and default is not _MISSING:
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(
                key, f"expected {_KIND_NAMES.get(kind, kind.__name__)}, got {_describe(value)}"
            )
        seen: object = value
        if isinstance(seen, str) and "\x00" in seen:
            # No path, topic, host or name may hold one (the OS cuts a path there).
            raise self.error(key, "contains a NUL character (\\u0000)")
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        if key not in self.data:
            self._taken.add(key)
            return None
        return self.get(key, kind)

    def number(
        self,
        key: str,
        default: float = _MISSING,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
    ) -> float:
        """A finite float within [low, high] (or (low, high] with ``low_open``)."""
        v = self.get(key, float, default)
        bad = not math.isfinite(v)
        if low is not None:
            bad = bad or (v <= low if low_open else v < low)
        if high is not None:
            bad = bad or v > high
        if bad:
            lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
            hi = "" if high is None else f"<= {high:g}"
            bounds = " and ".join(b for b in (lo, hi) if b) or "finite"
            raise self.error(key, f"must be {bounds}, got {v:g}")
        return v

    def integer(
        self, key: str, default: int = _MISSING, *, low: int | None = None, high: int | None = None
    ) -> int:
        v = self.get(key, int, default)
        if (low is not None and v < low) or (high is not None and v > high):
            span = f"{'' if low is None else low}..{'' if high is None else high}"
            raise self.error(key, f"must be in {span}, got {v}")
        return v

    def optional_integer(self, key: str, *, low: int, high: int) -> int | None:
        """An integer within [low, high], or None when the key is absent."""
        return self.integer(key, low=low, high=high) if self.has(key) else self.optional(key, int)

    def choice(self, key: str, choices: tuple[str, ...], default: str = _MISSING) -> str:
        v = self.get(key, str, default)
        if v not in choices:
            raise self.error(
                key, f"must be one of {', '.join(choices)}, got {v!r}{_near(v, choices)}"
            )
        return v

    def table(self, key: str) -> Table:
        """A sub-table (an empty one when absent)."""
        value = self._raw(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_describe(value)}")
        return Table(value, f"{self.where} [{key}]" if self.where else f"[{key}]")

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``); empty when absent."""
        value = self._raw(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(key, f"expected [[{key}]] tables, got {_describe(value)}")
        return [Table(v, f"{self.where} [[{key}]] #{i + 1}") for i, v in enumerate(value)]

    def done(self) -> None:
        """Refuse keys that nobody read, naming the nearest valid key."""
        for key in self.data:
            if key not in self._taken:
                raise self.error(key, f"unknown key{_near(key, self._taken)}")


def _near(word: str, valid: set[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_toml(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A TOML file's bytes and its parsed tables.

    The file must be a regular file under ``CONFIG_MAX`` (FileProblem, a NoInputError,
    otherwise: the caller words it); a UTF-8 byte-order mark (Windows editors write one) is
    skipped; bad text, bad TOML and absurd nesting are one-line ConfigErrors.
    """
    if not path.exists() and not path.is_symlink():
        raise FileProblem(f"{path}: no such config file")
    raw = read_bytes(path, limit=CONFIG_MAX, what="a config file")
    body = raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        # tomllib descends once per nested array or inline table.
        raise ConfigError(_too_deep(path)) from None
    if nesting_depth(data) > MAX_DEPTH:
        raise ConfigError(_too_deep(path))
    return raw, data


def load_config_toml(path: Path) -> tuple[bytes, dict[str, Any]]:
    """``load_toml`` for a configuration file (the daemon's, collect's, tail's): a missing or
    unreadable one is a ConfigError too (configuration, exit 78), not an input error."""
    try:
        return load_toml(path)
    except NoInputError as e:
        raise ConfigError(str(e)) from None


def _too_deep(path: Path) -> str:
    return f"{path}: tables and arrays nested more than {MAX_DEPTH} levels deep"


def nesting_depth(value: object) -> int:
    """How deep tables and arrays go (without recursion: the depth is what is in doubt)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Mapping):
            children: list[object] = list(v.values())
        elif isinstance(v, list):
            children = v
        else:
            continue
        deepest = max(deepest, d + 1)
        if deepest > MAX_DEPTH:
            break  # enough to refuse it; no need to walk the rest
        stack.extend((c, d + 1) for c in children)
    return deepest

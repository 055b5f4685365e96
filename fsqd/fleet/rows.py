"""Messages -> rows: which table a topic fills, its columns, its de-duplication key, its date.

Every table carries ``node``, ``run`` and ``received_at`` (the collector's UNIX time).
A row's *key* within (node, run) is what makes a redelivered message a duplicate: the
window's ``seq`` for codes and state, the period's ``t`` (ms) for stats, the segment's
``start`` (ms) for events, and a hash of the payload for the retained topics
(info, health). ``status`` is plain text with no id in it: two "online" are two events,
so its key is the receive time and it is never de-duplicated. The UTC date a row is
filed under comes from the payload's own time (the key's time), never the receive time,
so every copy of a message lands in the same partition and meets its duplicates there.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = ["TABLES", "Malformed", "Row", "TableSpec", "parse_message", "utc_date"]


class Malformed(ValueError):
    """A message that is not what its topic promises; the text says what is wrong."""


@dataclass(frozen=True)
class Row:
    table: str
    node: str
    date: str  # UTC YYYY-MM-DD
    run: str
    key: int
    values: dict[str, Any]


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key_column: str  # the int64 column that, with node and run, names a message


_COMMON = [
    pa.field("node", pa.string(), nullable=False),
    pa.field("run", pa.string(), nullable=False),
]
_RECEIVED = pa.field("received_at", pa.float64(), nullable=False)


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema([*_COMMON, *fields, _RECEIVED])


TABLES: dict[str, TableSpec] = {
    "codes": TableSpec(
        "codes",
        _schema(
            pa.field("seq", pa.int64(), nullable=False),
            pa.field("t_start", pa.float64()),
            pa.field("t_end", pa.float64()),
            pa.field("code", pa.int64()),
            pa.field("digits", pa.list_(pa.int32())),
            pa.field("label", pa.string()),
            pa.field("p", pa.float64()),
            pa.field("set", pa.list_(pa.string())),
            pa.field("model", pa.string()),
            pa.field("clock_synced", pa.bool_()),
            pa.field("latency_ms", pa.float64()),
        ),
        "seq",
    ),
    "state": TableSpec(
        "state",
        _schema(
            pa.field("seq", pa.int64(), nullable=False),
            pa.field("behaviour", pa.string()),
            pa.field("since", pa.float64()),
            pa.field("confidence", pa.float64()),
            pa.field("set", pa.list_(pa.string())),
        ),
        "seq",
    ),
    "events": TableSpec(
        "events",
        _schema(
            pa.field("key", pa.int64(), nullable=False),
            pa.field("type", pa.string()),
            pa.field("behaviour", pa.string()),
            pa.field("start", pa.float64()),
            pa.field("end", pa.float64()),
            pa.field("duration_s", pa.float64()),
            pa.field("confidence", pa.float64()),
        ),
        "key",
    ),
    "stats": TableSpec(
        "stats",
        _schema(
            pa.field("key", pa.int64(), nullable=False),
            pa.field("t", pa.float64()),
            pa.field("interval_s", pa.float64()),
            pa.field("uptime_s", pa.float64()),
            pa.field("backend", pa.string()),
            pa.field("hdr_e2e", pa.string()),
            pa.field("hdr_e2e_total", pa.string()),
            pa.field("payload", pa.string()),
        ),
        "key",
    ),
    "health": TableSpec(
        "health",
        _schema(
            pa.field("key", pa.int64(), nullable=False),
            pa.field("drift", pa.bool_()),
            pa.field("jsd", pa.float64()),
            pa.field("perplexity", pa.float64()),
            pa.field("unseen_share", pa.float64()),
            pa.field("since", pa.float64()),
        ),
        "key",
    ),
    "info": TableSpec(
        "info",
        _schema(pa.field("key", pa.int64(), nullable=False), pa.field("payload", pa.string())),
        "key",
    ),
    "status": TableSpec(
        "status",
        _schema(pa.field("key", pa.int64(), nullable=False), pa.field("status", pa.string())),
        "key",
    ),
}


def utc_date(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def _ms(t: float) -> int:
    return round(t * 1000)


def _hash(payload: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big", signed=True)


def _get(
    d: dict[str, Any], name: str, kinds: type | tuple[type, ...], required: bool = True
) -> Any:
    if name not in d:
        if required:
            raise Malformed(f"no {name!r}")
        return None
    v = d[name]
    if v is None and not required:
        return None
    if isinstance(v, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise Malformed(f"{name!r} is {v!r}")
    if not isinstance(v, kinds):
        raise Malformed(f"{name!r} is {type(v).__name__}, not {_kind_name(kinds)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise Malformed(f"{name!r} is {v}")
    return v


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    ks = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in ks)


_NUM = (int, float)


def _str_list(d: dict[str, Any], name: str) -> list[str] | None:
    v = d.get(name)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise Malformed(f"{name!r} is not a list of strings")
    return v


def _codes(d: dict[str, Any], node: str) -> tuple[str, int, float, dict[str, Any]]:
    seq = _get(d, "seq", int)
    if seq < 0:
        raise Malformed(f"'seq' is {seq}")
    digits = _get(d, "digits", list)
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in digits):
        raise Malformed("'digits' is not a list of integers")
    t_start = float(_get(d, "t_start", _NUM))
    row = {
        "seq": seq,
        "t_start": t_start,
        "t_end": float(_get(d, "t_end", _NUM)),
        "code": _get(d, "code", int),
        "digits": digits,
        "label": _get(d, "label", str, False),
        "p": _opt_float(d, "p"),
        "set": _str_list(d, "set"),
        "model": _get(d, "model", str),
        "clock_synced": _get(d, "clock_synced", bool, False),
        "latency_ms": float(_get(d, "latency_ms", _NUM)),
    }
    return _get(d, "run", str), seq, t_start, row


def _opt_float(d: dict[str, Any], name: str) -> float | None:
    v = _get(d, name, _NUM, False)
    return None if v is None else float(v)


def _state(d: dict[str, Any], node: str) -> tuple[str, int, float, dict[str, Any]]:
    seq = _get(d, "seq", int)
    since = float(_get(d, "since", _NUM))
    row = {
        "seq": seq,
        "behaviour": _get(d, "behaviour", str),
        "since": since,
        "confidence": float(_get(d, "confidence", _NUM)),
        "set": _str_list(d, "set"),
    }
    return _get(d, "run", str), seq, since, row


def _events(d: dict[str, Any], node: str) -> tuple[str, int, float, dict[str, Any]]:
    start = float(_get(d, "start", _NUM))
    row = {
        "key": _ms(start),
        "type": _get(d, "type", str),
        "behaviour": _get(d, "behaviour", str),
        "start": start,
        "end": float(_get(d, "end", _NUM)),
        "duration_s": float(_get(d, "duration_s", _NUM)),
        "confidence": _opt_float(d, "confidence"),
    }
    return _get(d, "run", str), row["key"], start, row


def _stats(d: dict[str, Any], node: str, raw: bytes) -> tuple[str, int, float, dict[str, Any]]:
    t = float(_get(d, "t", _NUM))
    hdr = _get(d, "hdr", dict, False) or {}
    row = {
        "key": _ms(t),
        "t": t,
        "interval_s": _opt_float(d, "interval_s"),
        "uptime_s": _opt_float(d, "uptime_s"),
        "backend": _get(d, "backend", str, False),
        "hdr_e2e": _get(hdr, "e2e", str, False),
        "hdr_e2e_total": _get(hdr, "e2e_total", str, False),
        "payload": raw.decode(),
    }
    return _get(d, "run", str), row["key"], t, row


def _health(d: dict[str, Any], node: str, raw: bytes) -> tuple[str, int, float, dict[str, Any]]:
    since = float(_get(d, "since", _NUM))
    row = {
        "key": _hash(raw),
        "drift": _get(d, "drift", bool),
        "jsd": _opt_float(d, "jsd"),
        "perplexity": _opt_float(d, "perplexity"),
        "unseen_share": _opt_float(d, "unseen_share"),
        "since": since,
    }
    return "", row["key"], since, row


_JSON_PARSERS: dict[
    str, Callable[[dict[str, Any], str], tuple[str, int, float, dict[str, Any]]]
] = {
    "codes": _codes,
    "state": _state,
    "events": _events,
}


def parse_message(topic: str, payload: bytes, received_at: float, prefix: str = "fsqd") -> Row:
    """The row a message makes, or Malformed saying why it makes none."""
    parts = topic.split("/")
    head = prefix.split("/")
    if len(parts) != len(head) + 2 or parts[: len(head)] != head:
        raise Malformed(f"topic {topic!r} is not {prefix}/<node>/<kind>")
    node, kind = parts[-2], parts[-1]
    if kind not in TABLES:
        raise Malformed(f"topic {topic!r}: unknown kind {kind!r}")
    if kind == "status":
        text = payload.decode("utf-8", "replace")
        if text not in ("online", "offline"):
            raise Malformed(f"status is {text[:40]!r}, not online or offline")
        key = _ms(received_at)
        values = {"key": key, "status": text, "received_at": received_at}
        return Row("status", node, utc_date(received_at), "", key, values)
    try:
        d = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed(f"not JSON ({str(e)[:60]})") from None
    if not isinstance(d, dict):
        raise Malformed(f"JSON {type(d).__name__}, not an object")
    if d.get("v") != 1:
        raise Malformed(f"payload version {d.get('v')!r}, not 1")
    if kind == "info":
        run = _get(d, "run", str)
        key = _hash(payload)
        values = {"key": key, "payload": payload.decode(), "received_at": received_at}
        return Row("info", node, utc_date(received_at), run, key, values)
    if kind == "stats":
        run, key, t, row = _stats(d, node, payload)
    elif kind == "health":
        run, key, t, row = _health(d, node, payload)
    else:
        run, key, t, row = _JSON_PARSERS[kind](d, node)
    if not run and kind != "health":
        raise Malformed("'run' is empty")
    row["received_at"] = received_at
    return Row(kind, node, utc_date(t), run, key, row)

"""A corrupt spool is set aside, what SQLite can still read is kept, and life goes on.

An SD card that loses power mid-write, a bad block, a truncated copy: the spool file can
become unreadable, and a daemon that refuses to start on it is dead for good under
systemd's start limit. Instead the file (with its ``-wal`` and ``-shm``) is renamed to
``<name>.corrupt-<UTC time>``, the rows that can still be read are salvaged in id order,
and a fresh spool takes them. Only the newest few corrupt files are kept.

Salvage reads the table in id order and, at a damaged page, seeks past it: a seek descends
from the root, so rows on the far side of a bad leaf are still reached. Rows whose fields
do not have the types the spool writes, or whose payload is not a JSON object, are treated
as damage too.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KEEP_CORRUPT = 3  # corrupt spools kept for a post-mortem; older ones are deleted
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_MAX_DAMAGED_SPOTS = 10_000  # seeks past damage before salvage gives up
_MIN_ID = -(2**63)
_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class SalvagedRow:
    id: int
    seq: int
    t_submit: float
    payload: bytes


def is_corruption(e: BaseException) -> bool:
    """SQLite says the file is damaged or not a database at all."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def quick_check(db: sqlite3.Connection) -> str | None:
    """None when ``PRAGMA quick_check`` passes, else its first complaint."""
    rows = db.execute("PRAGMA quick_check").fetchall()
    if rows == [("ok",)]:
        return None
    return str(rows[0][0]) if rows else "quick_check returned nothing"


def move_aside(path: Path) -> Path:
    """Rename the spool and its ``-wal``/``-shm`` to ``<name>.corrupt-<UTC time>[-n]``, the
    name after every copy already there (several can come within one second)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1 + max((k for s, k, _ in _copies(path) if s == stamp), default=0)
    target = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{n}" if n > 1 else ""))
    for suffix in ("-wal", "-shm", ""):  # the database last: SQLite looks for it first
        src = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            src.rename(target.with_name(target.name + suffix))
    return target


_STAMP = re.compile(r"\.corrupt-(\d{8}T\d{6}Z)(?:-(\d+))?$")


def _copies(path: Path) -> list[tuple[str, int, Path]]:
    found: list[tuple[str, int, Path]] = []
    for p in path.parent.glob(f"{path.name}.corrupt-*"):
        if m := _STAMP.search(p.name):  # not a -wal or -shm beside one
            found.append((m.group(1), int(m.group(2) or 1), p))
    return sorted(found)


def corrupt_copies(path: Path) -> list[Path]:
    """The corrupt spools set aside beside ``path``, in the order they were set aside."""
    return [p for _, _, p in _copies(path)]


def prune_corrupt(path: Path, keep: int = KEEP_CORRUPT) -> None:
    copies = corrupt_copies(path)
    for old in copies[: max(0, len(copies) - keep)]:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                old.with_name(old.name + suffix).unlink()


def salvage(path: Path) -> Iterator[SalvagedRow]:
    """Every row of ``path``'s spool table SQLite can still read, in id order."""
    try:
        # mode=rw: a copy that is gone must not come back as an empty database.
        uri = path.absolute().as_uri() + "?mode=rw"
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        # writable_schema: read a truncated file (its header names more pages than it has).
        db.execute("PRAGMA writable_schema=ON")
        db.execute("PRAGMA cell_size_check=ON")
        db.execute("PRAGMA query_only=ON")
        yield from _rows(db)
    except sqlite3.Error:
        pass  # what was read so far is what there is
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.close()


def _rows(db: sqlite3.Connection) -> Iterator[SalvagedRow]:
    cursor = _MIN_ID
    for _ in range(_MAX_DAMAGED_SPOTS):
        try:
            for raw in db.execute(
                "SELECT id, seq, t_submit, payload FROM spool WHERE id > ? ORDER BY id",
                (cursor,),
            ):
                row = _checked(raw, cursor)
                if row is None:
                    break  # damaged fields: seek past them like a damaged page
                cursor = row.id
                yield row
            else:
                return  # the end of the table
        except sqlite3.DatabaseError as e:
            if not is_corruption(e):
                return
        row = _next_readable(db, cursor)
        if row is None:
            return
        cursor = row.id
        yield row


def _checked(raw: tuple[object, ...], after: int) -> SalvagedRow | None:
    i, seq, t, payload = raw
    if not (isinstance(i, int) and i > after and isinstance(seq, int)):
        return None
    if not (isinstance(t, float | int) and isinstance(payload, bytes) and _is_json_object(payload)):
        return None
    return SalvagedRow(i, seq, float(t), payload)


def _is_json_object(payload: bytes) -> bool:
    """SQLite has no checksums: a row whose record header survived may carry garbage in
    its payload. Every payload fsqd spools is a JSON object, and garbage rarely is one."""
    try:
        return isinstance(json.loads(payload), dict)
    except ValueError:  # not UTF-8, or not JSON
        return False


class _Damaged(Exception):
    pass


def _seek(db: sqlite3.Connection, at: int) -> SalvagedRow | None:
    """The first row with id >= ``at``; None past the end; _Damaged when it cannot be read."""
    try:
        raw = db.execute(
            "SELECT id, seq, t_submit, payload FROM spool WHERE id >= ? ORDER BY id LIMIT 1",
            (at,),
        ).fetchone()
    except sqlite3.DatabaseError as e:
        if is_corruption(e):
            raise _Damaged from None
        raise
    if raw is None:
        return None
    row = _checked(raw, at - 1)
    if row is None:
        raise _Damaged
    return row


def _next_readable(db: sqlite3.Connection, after: int) -> SalvagedRow | None:
    """The first row past ``after`` that a seek reaches cleanly: double the step until a
    seek lands behind the damage, then halve back towards it."""
    lo, step = after, 1
    while True:
        if after + step > _MAX_ID:
            return None
        try:
            found = _seek(db, after + step)
            break
        except _Damaged:
            lo = after + step
            step *= 2
    if found is None:
        return None  # nothing readable lies beyond the damage
    hi = after + step  # a seek from hi reads cleanly; from lo it did not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            got = _seek(db, mid)
        except _Damaged:
            lo = mid
            continue
        if got is None:
            break
        found, hi = got, mid
    return found

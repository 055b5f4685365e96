"""The SQLite file behind the spool: opened, checked, and rebuilt when it is corrupt.

Opening sets WAL mode, ``synchronous=NORMAL`` and a WAL kept to about the reserve's size,
runs ``PRAGMA quick_check``, creates or upgrades the tables (``schema``) and takes
this process's run number. A file that fails the check, is not a database, or is a
database but not a spool is set aside and rebuilt from what can still be read
(``repair``); a rebuild that cannot finish (the disk failing under it) is tried
again at the next use. On a full disk the reserve is freed to make room for the WAL
and the index.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import structlog

from fsqd.errors import OutputError
from fsqd.sinks.spool.repair import (
    SalvagedRow,
    is_corruption,
    move_aside,
    prune_corrupt,
    quick_check,
    salvage,
)
from fsqd.sinks.spool.schema import SchemaError, allocate_run, create_schema
from fsqd.sinks.spool.space import Reserve, is_disk_full

log = structlog.get_logger(__name__)

ROW_OVERHEAD = 32  # bytes a row takes beside its payload (measured: ~26 with page slack)


class _Corrupt(Exception):
    pass


class SpoolFile:
    def __init__(
        self, path: Path, *, run_id: str, reserve: Reserve, max_rows: int, max_bytes: int
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.reserve = reserve
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.run: int | None = None  # this process's run number, kept across a rebuild
        self.corrupt = 0  # corrupt files set aside
        self.salvaged = 0  # rows taken over from them
        self.db: sqlite3.Connection | None = None
        self.opened = 0  # connections made so far: a new one means the rows may differ
        self._closed = False

    def open(self) -> None:
        for attempt in (1, 2):
            try:
                self._connect()
                return
            except (sqlite3.Error, _Corrupt, SchemaError) as e:
                self._close_quietly()
                # A database that is not a spool (SchemaError) is set aside the same way:
                # refusing to start would only hand it to systemd's start limit.
                if isinstance(e, _Corrupt | SchemaError) or is_corruption(e):
                    self.heal(str(e))
                    return
                if isinstance(e, sqlite3.Error) and self.out_of_space(e) and attempt == 1:
                    self.reserve.release()  # the reserve is there for exactly this
                    continue
                raise OutputError(f"{self.path}: cannot open the spool: {e}") from None

    def conn(self) -> sqlite3.Connection:
        if self.db is None:
            if self._closed:
                raise OutputError(f"{self.path}: the spool is closed")
            # A rebuild that could not finish (a full or failing disk): try again now.
            self.open()
            assert self.db is not None
        return self.db

    def close(self) -> None:
        self._closed = True
        self._close_quietly()

    def rollback(self) -> None:
        db = self.db
        if db is not None and db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def out_of_space(self, e: sqlite3.Error) -> bool:
        return is_disk_full(e, self.path.parent, self.reserve.size)

    def heal(self, reason: str) -> None:
        """Set the corrupt file aside and carry on with a fresh one holding what was readable."""
        self._close_quietly()
        try:
            moved = move_aside(self.path)
        except OSError as e:
            raise OutputError(
                f"{self.path}: the spool is corrupt ({reason}) and cannot be moved aside: "
                f"{e.strerror}"
            ) from None
        self.corrupt += 1
        for attempt in (1, 2):
            try:
                self._connect(check=False, salvage_from=moved)
                break
            except sqlite3.Error as e:
                self._close_quietly()
                if self.out_of_space(e) and attempt == 1 and self.reserve.release():
                    continue
                raise OutputError(f"{self.path}: cannot make a fresh spool: {e}") from None
        prune_corrupt(self.path)  # after the salvage read the new copy
        kept, _ = count_rows(self.conn())
        self.salvaged += kept
        log.error(
            "spool corrupt: set aside, readable codes kept",
            path=str(self.path),
            moved_to=moved.name,
            salvaged=kept,
            error=reason,
        )

    def _connect(self, *, check: bool = True, salvage_from: Path | None = None) -> None:
        # The sink moves the connection between its executor thread and the caller's
        # thread at close; one thread uses it at a time.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=2.0)
        self.db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
        # The WAL stays within about the reserve, which is what a full disk gets back.
        wal_pages = max(8, min(1000, self.reserve.size // page))
        db.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
        db.execute(f"PRAGMA journal_size_limit={wal_pages * page}")
        if check and (problem := quick_check(db)) is not None:
            raise _Corrupt(problem)
        version = create_schema(db)
        if salvage_from is not None:
            self._insert_salvaged(db, salvage(salvage_from))
        self.run = allocate_run(db, self.run_id, self.run)
        if version == 1:
            codes, _ = count_rows(db)
            log.info("spool upgraded", path=str(self.path), schema=2, codes=codes)
        self.opened += 1

    def _insert_salvaged(self, db: sqlite3.Connection, rows: Iterable[SalvagedRow]) -> None:
        """Stream the salvaged rows in (a disk that fills keeps the oldest part), then trim
        to the budgets keeping the newest."""
        batch: list[tuple[int, int, float, bytes]] = []
        try:
            for r in rows:
                batch.append((r.id, r.seq, r.t_submit, r.payload))
                if len(batch) == 1000:
                    _insert_rows(db, batch)
                    batch = []
            _insert_rows(db, batch)
        except sqlite3.Error as e:
            self.rollback()
            if not self.out_of_space(e):
                raise
        depth, nbytes = count_rows(db)
        db.execute("BEGIN IMMEDIATE")
        drop_oldest(db, depth - self.max_rows, nbytes - self.max_bytes)
        db.execute("COMMIT")

    def _close_quietly(self) -> None:
        db, self.db = self.db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()


def _insert_rows(db: sqlite3.Connection, batch: list[tuple[int, int, float, bytes]]) -> None:
    if not batch:
        return
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT OR IGNORE INTO spool (id, seq, t_submit, payload) VALUES (?, ?, ?, ?)", batch
    )
    db.execute("COMMIT")


def count_rows(db: sqlite3.Connection) -> tuple[int, int]:
    """(rows, bytes of rows) in the spool table."""
    depth, size = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM spool"
    ).fetchone()
    return int(depth), int(size) + ROW_OVERHEAD * int(depth)


def drop_oldest(db: sqlite3.Connection, rows: int, nbytes: int) -> tuple[int, int]:
    """Delete the oldest rows until ``rows`` rows and ``nbytes`` bytes are gone (inside the
    caller's transaction); returns how many rows and bytes went."""
    if rows <= 0 and nbytes <= 0:
        return 0, 0
    n = freed = 0
    cutoff: int | None = None
    cur = db.execute("SELECT id, length(payload) FROM spool ORDER BY id")
    for i, length in cur:
        if n >= rows and freed >= nbytes:
            break
        n += 1
        freed += int(length) + ROW_OVERHEAD
        cutoff = int(i)
    cur.close()
    if cutoff is not None:
        db.execute("DELETE FROM spool WHERE id <= ?", (cutoff,))
    return n, freed

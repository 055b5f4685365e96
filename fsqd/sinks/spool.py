"""A bounded on-disk queue of code messages the broker has not acknowledged.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit appends to the WAL file
without an fsync (the WAL is fsynced only at checkpoints), and survives a killed
process; only a power cut can take the last commits. Callers batch their writes
(one ``commit`` carries every insert and delete of about a second), which is what
keeps an SD card alive through a long outage.

Rows keep the id the sender gave them, so everything on disk is ordered before
everything still in memory and the sender can resume "after id N" across both.
The class is synchronous and owned by one thread at a time (the sink runs it in a
single-worker executor so the event loop never waits on the disk).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fsqd.errors import OutputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    t_submit REAL NOT NULL,
    payload BLOB NOT NULL
)
"""


@dataclass(frozen=True)
class SpoolRow:
    id: int
    seq: int
    t_submit: float  # UNIX epoch seconds when the code was handed to the sink
    payload: bytes


@dataclass(frozen=True)
class CommitResult:
    inserted: int
    deleted: int
    dropped: int  # oldest rows removed because the spool was full
    depth: int  # rows on disk after the commit
    oldest_t_submit: float | None
    max_id: int


class Spool:
    def __init__(self, path: Path, max_rows: int) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.path = path
        self.max_rows = max_rows
        self.commits = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The sink moves the connection between its executor thread and the
            # caller's thread at close; one thread uses it at a time.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._depth = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
        except (sqlite3.Error, OSError) as e:
            raise OutputError(f"{path}: cannot open the spool: {e}") from None

    def close(self) -> None:
        self._db.close()

    def depth(self) -> int:
        return self._depth

    def max_id(self) -> int:
        (n,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()
        return int(n)

    def oldest_t_submit(self) -> float | None:
        row = self._db.execute("SELECT t_submit FROM spool ORDER BY id LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def read(self, after_id: int, limit: int) -> list[SpoolRow]:
        """Up to ``limit`` rows with id > ``after_id``, oldest first."""
        try:
            cur = self._db.execute(
                "SELECT id, seq, t_submit, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
            return [SpoolRow(int(i), int(s), float(t), bytes(p)) for i, s, t, p in cur]
        except sqlite3.Error as e:
            raise OutputError(f"{self.path}: spool read failed: {e}") from None

    def rewrite(self, up_to_id: int, fn: Callable[[bytes], bytes]) -> int:
        """Replace each payload with id <= ``up_to_id`` by ``fn(payload)``, in one transaction.

        For a wall-clock step: codes already on disk carry times from the old mapping.
        Returns the number of rows changed.
        """
        db = self._db
        try:
            db.execute("BEGIN")
            rows = db.execute("SELECT id, payload FROM spool WHERE id <= ?", (up_to_id,))
            changed = [(new, i) for i, p in rows.fetchall() if (new := fn(bytes(p))) != p]
            if changed:
                db.executemany("UPDATE spool SET payload = ? WHERE id = ?", changed)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutputError(f"{self.path}: spool rewrite failed: {e}") from None
        self.commits += 1
        return len(changed)

    def commit(self, inserts: list[SpoolRow], deletes: list[int]) -> CommitResult:
        """One transaction: add ``inserts``, remove ``deletes``, trim to ``max_rows``."""
        db = self._db
        try:
            db.execute("BEGIN")
            depth = self._depth
            if deletes:
                cur = db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in deletes])
                depth -= cur.rowcount
            if inserts:
                # An id already on disk is the same code (a commit the sink saw cancelled).
                cur = db.executemany(
                    "INSERT OR IGNORE INTO spool (id, seq, t_submit, payload) VALUES (?, ?, ?, ?)",
                    [(r.id, r.seq, r.t_submit, r.payload) for r in inserts],
                )
                depth += cur.rowcount
            dropped = 0
            if depth > self.max_rows:
                dropped = depth - self.max_rows
                db.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                    (dropped,),
                )
                depth = self.max_rows
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutputError(f"{self.path}: spool write failed: {e}") from None
        self._depth = depth
        self.commits += 1
        return CommitResult(
            inserted=len(inserts),
            deleted=len(deletes),
            dropped=dropped,
            depth=depth,
            oldest_t_submit=self.oldest_t_submit(),
            max_id=self.max_id(),
        )

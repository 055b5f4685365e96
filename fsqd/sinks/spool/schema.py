"""The spool's tables, their versions, and row keys that two runs can never share.

Version 1 (fsqd 0.1): ``spool(id INTEGER PRIMARY KEY, seq, t_submit, payload)``, each
process numbering its rows from the largest id on disk + 1. Two processes on one file
picked the same ids, and ``INSERT OR IGNORE`` silently dropped one of the two codes.

Version 2 keeps that table (a version-1 file is read unchanged, and an older fsqd can
still read a version-2 file) and adds ``runs``: every process that opens the spool takes
the next run number in a write transaction, and its row ids are ``run << 40 | n``. Run
numbers never repeat (the next is above every run and every row on disk, both read under
the write lock), so the ids of two runs cannot collide, and ids still rise from run to run,
which keeps the oldest code first. Version-1 rows keep their ids: run 0, before any other.
"""

from __future__ import annotations

import sqlite3
import time

SCHEMA_VERSION = 2
RUN_SHIFT = 40  # 2**40 codes per run: 3,000 years at 10 codes/s

_SPOOL = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    t_submit REAL NOT NULL,
    payload BLOB NOT NULL
)
"""
_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    started REAL NOT NULL
)
"""


class SchemaError(Exception):
    """The file is a database, but not a spool this version can use."""


def create_schema(db: sqlite3.Connection) -> int:
    """Create or upgrade the tables; returns the version the file had (0: new)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    version = int(version)
    db.execute("BEGIN IMMEDIATE")
    try:
        has_spool = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spool'"
        ).fetchone()
        if has_spool and version == 0:
            version = 1  # version 1 never set user_version
        db.execute(_SPOOL)
        cols = [r[1] for r in db.execute("PRAGMA table_info(spool)")]
        if cols[:4] != ["id", "seq", "t_submit", "payload"]:
            raise SchemaError(f"table spool has columns {cols}")
        db.execute(_RUNS)
        if version < SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return version


def allocate_run(db: sqlite3.Connection, run_id: str, run: int | None = None) -> int:
    """Take a run number for this process (or record ``run``, kept across a rebuilt file);
    forget runs that have no rows left. Returns the run number."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if run is None:
            (last_run,) = db.execute("SELECT COALESCE(MAX(run), 0) FROM runs").fetchone()
            (max_id,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()
            run = max(int(last_run), int(max_id) >> RUN_SHIFT) + 1
        db.execute(
            "INSERT OR REPLACE INTO runs (run, run_id, started) VALUES (?, ?, ?)",
            (run, run_id, time.time()),
        )
        for (old,) in db.execute("SELECT run FROM runs WHERE run < ?", (run,)).fetchall():
            lo, hi = int(old) << RUN_SHIFT, (int(old) + 1) << RUN_SHIFT
            if db.execute("SELECT 1 FROM spool WHERE id >= ? AND id < ?", (lo, hi)).fetchone():
                continue
            db.execute("DELETE FROM runs WHERE run = ?", (old,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return run

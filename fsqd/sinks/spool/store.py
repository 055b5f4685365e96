"""A bounded on-disk queue of code messages the broker has not acknowledged.

SQLite in WAL mode with ``synchronous=NORMAL``: a commit appends to the WAL file
without an fsync (the WAL is fsynced only at checkpoints), and survives a killed
process; only a power cut can take the last commits. Callers batch their writes
(one ``commit`` carries every insert and delete of about a second), which is what
keeps an SD card alive through a long outage.

Rows keep the id the sender gave them, so everything on disk is ordered before
everything still in memory and the sender can resume "after id N" across both. Ids
start at ``first_id``, which no other run of the spool uses (``schema``).
The class is synchronous and owned by one thread at a time (the sink runs it in a
single-worker executor so the event loop never waits on the disk).

Bounds: at most ``max_rows`` rows and ``max_bytes`` bytes of rows (payload plus
``ROW_OVERHEAD``); past either, the oldest rows are dropped and counted. The file
holds about that, plus the WAL (kept to about the reserve's size) and the reserve
(``space``).

Faults it lives through, instead of stopping the daemon:
- A corrupt file (at open, or at any later statement): set aside, readable rows
  salvaged into a fresh file (``file``, ``repair``), and the statement run
  again on it. One ERROR line each time.
- A full filesystem: the reserve is freed so acknowledged rows can still be deleted;
  while space is short, new rows only take the room the file already has, displacing
  the oldest (counted), and what does not fit stays with the caller. One ERROR line
  when it starts, one INFO line when space is back.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import structlog

from fsqd.errors import OutputError
from fsqd.sinks.spool.file import ROW_OVERHEAD, SpoolFile, count_rows, drop_oldest
from fsqd.sinks.spool.repair import is_corruption
from fsqd.sinks.spool.rows import CommitResult, SpoolRow, chunks, chunks_by_bytes, fit
from fsqd.sinks.spool.schema import RUN_SHIFT
from fsqd.sinks.spool.space import Reserve, auto_max_bytes, free_bytes, reserve_bytes, total_bytes

log = structlog.get_logger(__name__)
T = TypeVar("T")

__all__ = ["ROW_OVERHEAD", "CommitResult", "Spool", "SpoolRow"]

_ID_CHUNK = 500  # ids per "IN (...)" statement
_VACUUM_MIN_FREE_PAGES = 64  # a drained spool gives back its free pages past this many


class _DiskFull(Exception):
    pass


class Spool:
    def __init__(
        self, path: Path, max_rows: int, max_bytes: int | None = None, *, run_id: str = ""
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.path = path
        self.max_rows = max_rows
        self.run_id = run_id
        self.commits = 0
        self.full_episodes = 0  # times the filesystem ran out of space
        self.full = False
        self._episode_dropped = 0
        self._episode_room = 0  # bytes of rows the file held room for when the disk ran full
        self._depth = 0
        self._bytes = 0
        self._opened = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.max_bytes = auto_max_bytes(path) if max_bytes is None else max_bytes
            fs_bytes = total_bytes(path.parent)
        except OSError as e:
            raise OutputError(f"{path}: cannot open the spool: {e.strerror}") from None
        reserve = path.with_name(path.name + ".reserve")
        self.reserve = Reserve(reserve, reserve_bytes(self.max_bytes, fs_bytes))
        self._file = SpoolFile(
            path, run_id=run_id, reserve=self.reserve, max_rows=max_rows, max_bytes=self.max_bytes
        )
        self._file.open()
        self._recount()
        self.reserve.ensure()

    def _conn(self) -> sqlite3.Connection:
        db = self._file.conn()
        if self._file.opened != self._opened:
            # Opened, healed or reopened since we last counted: count again.
            self._opened = self._file.opened
            self._depth, self._bytes = count_rows(db)
        return db

    @property
    def corrupt(self) -> int:
        """Corrupt files set aside."""
        return self._file.corrupt

    @property
    def salvaged(self) -> int:
        """Rows taken over from corrupt files."""
        return self._file.salvaged

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; a corrupt file is healed and ``fn`` run once more on the fresh one."""
        for attempt in (1, 2):
            try:
                return fn()
            except sqlite3.Error as e:
                self._file.rollback()
                if self._file.out_of_space(e) and what == "write":
                    raise _DiskFull(str(e)) from None
                if is_corruption(e) and attempt == 1:
                    self._file.heal(str(e))  # the next _conn() counts the fresh file
                    continue
                raise OutputError(f"{self.path}: spool {what} failed: {e}") from None
        raise AssertionError("unreachable")

    # -- the queue --

    @property
    def first_id(self) -> int:
        """The first row id this run may use: above every id any other run used."""
        assert self._file.run is not None
        return self._file.run << RUN_SHIFT

    def close(self) -> None:
        self._file.close()

    def depth(self) -> int:
        return self._depth

    def size_bytes(self) -> int:
        return self._bytes

    def max_id(self) -> int:
        def q() -> int:
            (n,) = self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()
            return int(n)

        return self._guard("read", q)

    def oldest_t_submit(self) -> float | None:
        def q() -> float | None:
            row = self._conn().execute("SELECT t_submit FROM spool ORDER BY id LIMIT 1").fetchone()
            return None if row is None else float(row[0])

        return self._guard("read", q)

    def read(self, after_id: int, limit: int) -> list[SpoolRow]:
        """Up to ``limit`` rows with id > ``after_id``, oldest first."""

        def q() -> list[SpoolRow]:
            cur = self._conn().execute(
                "SELECT id, seq, t_submit, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
            return [SpoolRow(int(i), int(s), float(t), bytes(p)) for i, s, t, p in cur]

        return self._guard("read", q)

    def rewrite(self, up_to_id: int, fn: Callable[[bytes], bytes]) -> int:
        """Replace each payload with id <= ``up_to_id`` by ``fn(payload)``, in one transaction.

        For a wall-clock step: codes already on disk carry times from the old mapping.
        Returns the number of rows changed.
        """

        def tx() -> int:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT id, payload FROM spool WHERE id <= ?", (up_to_id,))
            changed = [(new, i) for i, p in rows.fetchall() if (new := fn(bytes(p))) != p]
            if changed:
                db.executemany("UPDATE spool SET payload = ? WHERE id = ?", changed)
            db.execute("COMMIT")
            return len(changed)

        n = self._guard("rewrite", tx)
        # Lengths changed by a few bytes at most; recount so the budget stays exact.
        self._recount()
        self.commits += 1
        return n

    def commit(self, inserts: Sequence[SpoolRow], deletes: Sequence[int]) -> CommitResult:
        """Remove ``deletes``, add ``inserts``, keep within ``max_rows`` and ``max_bytes``.

        One transaction, unless the filesystem is full (then several small ones)."""
        if self.full and not self._space_back():
            inserted, deleted, dropped, accepted = self._commit_when_full(inserts, deletes)
        else:
            try:
                inserted, deleted, dropped = self._guard(
                    "write", lambda: self._write(inserts, deletes, self.max_rows, self.max_bytes)
                )
                accepted = len(inserts)
                self.reserve.ensure()  # missing when the disk had no room for it at start
            except _DiskFull:
                inserted, deleted, dropped, accepted = self._commit_when_full(inserts, deletes)
        self.commits += 1
        self._give_back_free_pages()
        return CommitResult(
            inserted=inserted,
            deleted=deleted,
            dropped=dropped,
            depth=self._depth,
            oldest_t_submit=self.oldest_t_submit(),
            max_id=self.max_id(),
            accepted=accepted,
            bytes=self._bytes,
        )

    def _write(
        self, inserts: Sequence[SpoolRow], deletes: Sequence[int], cap_rows: int, cap_bytes: int
    ) -> tuple[int, int, int]:
        """One transaction: delete, make room by dropping the oldest, insert.
        Returns (inserted, deleted, dropped)."""
        db = self._conn()
        take, skipped = fit(inserts, cap_rows, cap_bytes)
        depth, nbytes = self._depth, self._bytes
        db.execute("BEGIN IMMEDIATE")
        deleted = 0
        for chunk in chunks(deletes, _ID_CHUNK):
            marks = ",".join("?" * len(chunk))
            n, size = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM spool "
                f"WHERE id IN ({marks})",
                chunk,
            ).fetchone()
            db.execute(f"DELETE FROM spool WHERE id IN ({marks})", chunk)
            deleted += int(n)
            depth -= int(n)
            nbytes -= int(size) + ROW_OVERHEAD * int(n)
        # Room first, rows second: pages freed here are reused by the inserts below,
        # so a spool at its bound does not grow.
        add_bytes = sum(r.size for r in take)
        trimmed, freed = drop_oldest(
            db, depth + len(take) - cap_rows, nbytes + add_bytes - cap_bytes
        )
        depth -= trimmed
        nbytes -= freed
        inserted = 0
        if take:
            cur = db.executemany(
                "INSERT OR IGNORE INTO spool (id, seq, t_submit, payload) VALUES (?, ?, ?, ?)",
                [(r.id, r.seq, r.t_submit, r.payload) for r in take],
            )
            # An id already on disk is the same code (a commit the sink saw cancelled).
            inserted = cur.rowcount
        db.execute("COMMIT")
        if inserted == len(take):
            self._depth, self._bytes = depth + inserted, nbytes + add_bytes
        else:
            self._recount()
        return inserted, deleted, skipped + trimmed

    def _recount(self) -> None:
        self._depth, self._bytes = self._guard("read", lambda: count_rows(self._conn()))

    # -- a full filesystem --

    def _commit_when_full(
        self, inserts: Sequence[SpoolRow], deletes: Sequence[int]
    ) -> tuple[int, int, int, int]:
        """Small transactions, each checkpointed so the WAL gives its space back: the
        deletes first, then inserts into the room the file already has."""
        if not self.full:
            self.full = True
            self.full_episodes += 1
            self._episode_dropped = 0
            log.error(
                "spool: no space left on the state directory's filesystem; deleting delivered "
                "codes from the reserve, dropping the oldest until space returns",
                path=str(self.path),
                reserve_bytes=self.reserve.size,
                codes=self._depth,
            )
        self.reserve.release()
        self._checkpoint()
        if not self._episode_room:
            # Fixed for the episode: a room that followed the file would creep up a page
            # at a time into the freed reserve.
            self._episode_room = self._file_room()
        deleted = 0
        for ids in chunks(deletes, 100):
            write = functools.partial(self._write, [], ids, self.max_rows, self.max_bytes)
            try:
                deleted += self._guard("write", write)[1]
            except _DiskFull:
                raise OutputError(
                    f"{self.path}: spool write failed: no space left even to delete"
                ) from None
            self._checkpoint()
        room = min(self.max_bytes, self._episode_room)
        take, dropped = fit(inserts, self.max_rows, room)
        accepted, inserted = dropped, 0
        for rows in chunks_by_bytes(take, max(4096, self.reserve.size // 4)):
            write = functools.partial(self._write, rows, [], self.max_rows, room)
            try:
                got, _, lost = self._guard("write", write)
            except _DiskFull:
                break  # the rest stays with the caller
            inserted += got
            dropped += lost
            accepted += len(rows)
            self._checkpoint()
        self._episode_dropped += dropped
        return inserted, deleted, dropped, accepted

    def _file_room(self) -> int:
        """Bytes of rows the file can hold without growing (with a margin for the b-tree)."""
        db = self._conn()
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        return int(pages * page * 0.8)

    def _space_back(self) -> bool:
        """While full: space has returned when the filesystem has room for the reserve and
        three times as much again. Right after an episode starts it has about two reserves
        (the freed reserve and the truncated WAL, which is kept to about that size), so
        only space that someone else gave back, or that a drained spool gave back, ends
        it: no flapping between full and not."""
        try:
            room = free_bytes(self.path.parent)
        except OSError:
            return False
        if room < 4 * self.reserve.size or not self.reserve.ensure():
            return False
        self.full = False
        self._episode_room = 0
        log.info(
            "spool: space is back on the state directory's filesystem",
            path=str(self.path),
            dropped=self._episode_dropped,
            codes=self._depth,
        )
        return True

    def _checkpoint(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _give_back_free_pages(self) -> None:
        """A drained spool returns an outage's worth of free pages to the filesystem.

        VACUUM of an empty table copies next to nothing. (auto_vacuum would keep the file
        small all along, but its pointer-map pages cost ~18 % more writes per outage.)"""
        if self._depth or self._file.db is None:
            return
        with contextlib.suppress(sqlite3.Error):
            db = self._file.db
            (free,) = db.execute("PRAGMA freelist_count").fetchone()
            if int(free) < _VACUUM_MIN_FREE_PAGES:
                return
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

"""The collector's store: Parquet by table, node and UTC date, each message stored once.

``STORE/<table>/<node>/<YYYY-MM-DD>/<collector>-<n>.parquet``, plus ``gaps.parquet`` and
``_collect/`` (the lock and one checkpoint per collector).

Exactly once: every commit of a collector, under one lock the collectors of a store share
(``flock`` on ``_collect/lock``), first reads the keys of the partition's files it has not
seen yet, drops the rows already stored, then renames its new files in. Whoever commits
first keeps a message; a redelivered copy that reached another collector is dropped
there. File names are never content-derived: each collector numbers its own files (the
number survives restarts in its checkpoint), so no two writers ever race for one name.
Small files are merged by compaction under the same lock when a partition has many.

The checkpoint (``_collect/<collector>.json``) names the temporary files of the commit in
progress and the compaction in progress, so a restart after a crash removes the one or
finishes the other; and it says until when the collector has committed everything it
received (``received_until``), which is what lets a hole be confirmed (``gaps``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fsqd.fleet.files import (
    atomic_json,
    parquet_files,
    quarantine,
    read_json,
    read_keys,
    sync_filesystem,
    write_parquet,
)
from fsqd.fleet.gaps import GapLedger
from fsqd.fleet.rows import TABLES, Row
from fsqd.fleet.seqset import SeqSet

__all__ = ["CommitResult", "Store"]

log = logging.getLogger("fsqd.fleet")
PartKey = tuple[str, str, str]  # table, node, date
CONTROL = "_collect"


@dataclass
class _Partition:
    files: set[str] = field(default_factory=set)
    runs: dict[str, SeqSet] = field(default_factory=dict)
    used: float = 0.0


@dataclass
class CommitResult:
    rows: int = 0  # rows stored
    duplicates: int = 0  # rows dropped as already stored (or twice in the batch)
    files: int = 0
    gaps_suspected: int = 0
    gaps_confirmed: int = 0
    gaps_closed_late: int = 0
    quarantined: int = 0
    compactions: int = 0


class Store:
    def __init__(
        self,
        root: Path,
        collector: str,
        *,
        compact_files: int = 16,
        idle_s: float = 900.0,
        live_s: float = 120.0,
        gap_grace_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.collector = collector
        self.compact_files = compact_files
        self.idle_s = idle_s
        self.live_s = live_s
        self.gap_grace_s = gap_grace_s
        self.clock = clock
        self._parts: dict[PartKey, _Partition] = {}
        self._control = root / CONTROL
        self._checkpoint = self._control / f"{collector}.json"
        self._counter = 0
        self._received_until = 0.0
        self._lock_fd = -1
        self.quarantined = 0

    # -- start and stop --

    def open(self) -> None:
        self._control.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._control / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        with self._locked():
            self._recover()

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _recover(self) -> None:
        cp = read_json(self._checkpoint) or {}
        self._counter = int(cp.get("counter", 0))
        for rel in cp.get("writing", []):
            tmp = self.root / rel
            if tmp.exists():
                tmp.unlink()
                log.warning("removed %s, a commit cut short by a crash", tmp)
        compacting = cp.get("compacting")
        if compacting and (self.root / compacting["out"]).exists():
            for rel in compacting["inputs"]:
                (self.root / rel).unlink(missing_ok=True)
            log.warning("finished a compaction cut short by a crash: %s", compacting["out"])
        elif compacting:
            (self.root / compacting["tmp"]).unlink(missing_ok=True)
        self._save_checkpoint([])

    def _save_checkpoint(
        self, writing: list[str], compacting: Mapping[str, object] | None = None
    ) -> None:
        atomic_json(
            self._checkpoint,
            {
                "collector": self.collector,
                "counter": self._counter,
                "writing": writing,
                "compacting": compacting,
                "received_until": self._received_until,
                "updated": self.clock(),
            },
        )

    def heartbeat(self, received_until: float) -> None:
        """Say this collector is alive and has committed all it received before then."""
        self._received_until = received_until
        self._save_checkpoint([])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- the index --

    def _dir(self, key: PartKey) -> Path:
        table, node, date = key
        return self.root / table / node / date

    def _partition(self, key: PartKey, *, may_quarantine: bool) -> tuple[_Partition, int]:
        """The partition's index, brought up to date with the files on disk now."""
        part = self._parts.setdefault(key, _Partition())
        part.used = self.clock()
        key_column = TABLES[key[0]].key_column
        on_disk = {p.name: p for p in parquet_files(self._dir(key))}
        part.files &= set(on_disk)  # merged away by a compaction
        bad = 0
        for name, path in on_disk.items():
            if name in part.files:
                continue
            try:
                keys = read_keys(path, key_column)
            except (OSError, pa.ArrowException) as e:
                if may_quarantine:
                    quarantine(self.root, path, str(e)[:200])
                    bad += 1
                continue
            for run, seqs in keys.items():
                part.runs.setdefault(run, SeqSet()).update(seqs)
            part.files.add(name)
        self.quarantined += bad
        return part, bad

    def is_duplicate(self, row: Row) -> bool:
        """Already stored, as far as this collector knows now: a partition not loaded yet
        is not read here (this runs on the event loop); the commit reads it."""
        part = self._parts.get((row.table, row.node, row.date))
        if part is None:
            return False
        seqs = part.runs.get(row.run)
        return seqs is not None and row.key in seqs

    def evict_idle(self) -> int:
        cutoff = self.clock() - self.idle_s
        idle = [k for k, p in self._parts.items() if p.used < cutoff]
        for k in idle:
            del self._parts[k]
        return len(idle)

    # -- commits --

    def commit(self, rows: list[Row], received_until: float) -> CommitResult:
        """Store ``rows`` (any order, duplicates allowed); durable when this returns."""
        result = CommitResult()
        batches: dict[PartKey, list[Row]] = defaultdict(list)
        for row in rows:
            batches[(row.table, row.node, row.date)].append(row)
        writing: list[tuple[PartKey, Path, Path, pa.Table]] = []
        names: list[str] = []
        for key, batch in sorted(batches.items()):
            fresh = self._unseen(key, batch)
            result.duplicates += len(batch) - len(fresh)
            if not fresh:
                continue
            self._counter += 1
            name = f"{self.collector}-{self._counter:010d}.parquet"
            d = self._dir(key)
            tmp, final = d / f".{name}.tmp", d / name
            names.append(str(tmp.relative_to(self.root)))
            writing.append((key, tmp, final, _to_table(key[0], fresh)))
        self._save_checkpoint(names)
        for _, tmp, _, table in writing:
            write_parquet(table, tmp, sync=False)
        if writing:
            sync_filesystem(self.root)  # every new file's data, before any is renamed in
        with self._locked():
            for key, tmp, final, table in writing:
                part, bad = self._partition(key, may_quarantine=True)
                result.quarantined += bad
                table = self._drop_stored(key[0], part, table)
                dropped = self._rows_in(tmp) - table.num_rows
                result.duplicates += dropped
                if table.num_rows == 0:
                    tmp.unlink()
                    continue
                if dropped:
                    write_parquet(table, tmp)
                tmp.replace(final)
                _add_keys(part, key[0], table)
                part.files.add(final.name)
                result.rows += table.num_rows
                result.files += 1
            if writing:
                sync_filesystem(self.root)  # the renames, before the messages are acknowledged
            self._received_until = received_until
            self._save_checkpoint([])
            self._track_gaps({k for k, *_ in writing if k[0] == "codes"}, result)
            for key, *_ in writing:
                result.compactions += self._maybe_compact(key)
        return result

    def _unseen(self, key: PartKey, batch: list[Row]) -> list[Row]:
        part = self._parts.get(key)
        if part is None:
            part, _ = self._partition(key, may_quarantine=False)
        part.used = self.clock()
        seen: dict[str, SeqSet] = {}
        out = []
        for row in batch:
            stored = part.runs.get(row.run)
            if stored is not None and row.key in stored:
                continue
            if seen.setdefault(row.run, SeqSet()).add(row.key):
                out.append(row)
        return out

    @staticmethod
    def _rows_in(tmp: Path) -> int:
        return int(pq.ParquetFile(tmp).metadata.num_rows)

    @staticmethod
    def _drop_stored(table_name: str, part: _Partition, table: pa.Table) -> pa.Table:
        key_column = TABLES[table_name].key_column
        runs = table.column("run").to_pylist()
        keys = table.column(key_column).to_pylist()
        keep = [
            not (part.runs.get(r) is not None and k in part.runs[r])
            for r, k in zip(runs, keys, strict=True)
        ]
        return table if all(keep) else table.filter(pa.array(keep))

    # -- gaps --

    def _track_gaps(self, touched: set[PartKey], result: CommitResult) -> None:
        ledger = GapLedger(self.root)
        ledger.load()
        now = self.clock()
        for key in touched:
            part = self._parts[key]
            for run, seqs in part.runs.items():
                result.gaps_suspected += ledger.observe(key[1], key[2], run, seqs, now)
        keys_of: dict[tuple[str, str, str], SeqSet] = {}
        for node, date, run in ledger.open_partitions():
            part, _ = self._partition(("codes", node, date), may_quarantine=False)
            if run in part.runs:
                keys_of[(node, date, run)] = part.runs[run]
        confirmed, closed = ledger.settle(
            keys_of, self._all_committed_before(now), now, self.gap_grace_s
        )
        result.gaps_confirmed += confirmed
        result.gaps_closed_late += closed
        ledger.save()

    def _all_committed_before(self, now: float) -> float:
        """The time before which every live collector has committed all it received."""
        until = self._received_until
        for path in self._control.glob("*.json"):
            cp = read_json(path)
            if not isinstance(cp, dict) or cp.get("collector") == self.collector:
                continue
            if now - float(cp.get("updated", 0)) <= self.live_s:
                until = min(until, float(cp.get("received_until", 0)))
        return until

    # -- compaction --

    def _maybe_compact(self, key: PartKey) -> int:
        """Merge ``compact_files`` files of one level into one file of the next (``.cN``):
        a row is rewritten once per level, a few times in its life, never once per commit."""
        d = self._dir(key)
        levels: dict[int, list[Path]] = defaultdict(list)
        for p in parquet_files(d):
            levels[_level(p.name)].append(p)
        full = [n for n, files in sorted(levels.items()) if len(files) >= self.compact_files]
        if not full:
            return 0
        level = full[0]
        small = levels[level]
        table = pa.concat_tables(pq.read_table(p) for p in small)
        key_column = TABLES[key[0]].key_column
        table = table.take(
            pc.sort_indices(table, [("run", "ascending"), (key_column, "ascending")])
        )
        self._counter += 1
        name = f"{self.collector}-{self._counter:010d}.c{level + 1}.parquet"
        tmp, out = d / f".{name}.tmp", d / name
        inputs = [str(p.relative_to(self.root)) for p in small]
        plan = {
            "out": str(out.relative_to(self.root)),
            "tmp": str(tmp.relative_to(self.root)),
            "inputs": inputs,
        }
        self._save_checkpoint([], plan)
        write_parquet(table, tmp)
        tmp.replace(out)
        for p in small:
            p.unlink()
        sync_filesystem(d)
        self._save_checkpoint([])
        part = self._parts[key]
        part.files -= {p.name for p in small}
        part.files.add(name)
        return 1


def _level(name: str) -> int:
    """A file's compaction level: 0 as committed, N after N merges (``<name>.cN.parquet``)."""
    stem = name.removesuffix(".parquet")
    _, dot, tail = stem.rpartition(".c")
    return int(tail) if dot and tail.isdigit() else 0


def _to_table(name: str, rows: list[Row]) -> pa.Table:
    spec = TABLES[name]
    cols: dict[str, list[object]] = {f.name: [] for f in spec.schema}
    for row in rows:
        cols["node"].append(row.node)
        cols["run"].append(row.run)
        for k, v in row.values.items():
            cols[k].append(v)
    return pa.table(cols, schema=spec.schema)


def _add_keys(part: _Partition, table_name: str, table: pa.Table) -> None:
    key_column = TABLES[table_name].key_column
    for run, k in zip(
        table.column("run").to_pylist(), table.column(key_column).to_pylist(), strict=True
    ):
        part.runs.setdefault(run, SeqSet()).add(k)

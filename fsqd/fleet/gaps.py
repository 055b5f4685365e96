"""The gaps table: windows a node coded and the store never received, per (node, run).

A hole is a run of ``seq`` values missing between two that were stored (a run's first
and last windows bound what can be known: windows lost after the last one received are
not seen until a later one arrives). Several collectors share the load, so a hole in
what one collector has committed may be a window another one holds and has not
committed yet: a hole is first *suspected* (``confirmed`` false), and confirmed once
every live collector has committed all it received before the hole was first seen.
A suspected hole that fills was in flight and is deleted; a confirmed one that fills is
kept, closed, with ``closed_by_late_arrival`` true.

The table is one small Parquet file (``gaps.parquet``) rewritten whole, atomically,
under the store's lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fsqd.fleet.files import fsync_dir, write_parquet
from fsqd.fleet.seqset import SeqSet

__all__ = ["GAPS_FILE", "GAPS_SCHEMA", "Gap", "GapLedger"]

GAPS_FILE = "gaps.parquet"
GAPS_SCHEMA = pa.schema(
    [
        pa.field("node", pa.string(), nullable=False),
        pa.field("run", pa.string(), nullable=False),
        pa.field("date", pa.string(), nullable=False),  # the partition the hole was seen in
        pa.field("from_seq", pa.int64(), nullable=False),
        pa.field("to_seq", pa.int64(), nullable=False),
        pa.field("first_seen", pa.float64(), nullable=False),
        pa.field("confirmed", pa.bool_(), nullable=False),
        pa.field("closed_at", pa.float64()),
        pa.field("closed_by_late_arrival", pa.bool_(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Gap:
    node: str
    run: str
    date: str
    from_seq: int
    to_seq: int
    first_seen: float
    confirmed: bool = False
    closed_at: float | None = None
    closed_by_late_arrival: bool = False

    @property
    def open(self) -> bool:
        return self.closed_at is None


class GapLedger:
    """The gaps table in memory while the store's lock is held."""

    def __init__(self, root: Path) -> None:
        self.path = root / GAPS_FILE
        self.gaps: list[Gap] = []
        self.changed = False

    def load(self) -> None:
        self.changed = False
        if not self.path.exists():
            self.gaps = []
            return
        rows = pq.read_table(self.path).to_pylist()
        self.gaps = [Gap(**r) for r in rows]

    def save(self) -> None:
        if not self.changed:
            return
        table = pa.Table.from_pylist([g.__dict__ for g in self.gaps], schema=GAPS_SCHEMA)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        write_parquet(table, tmp)
        tmp.replace(self.path)
        fsync_dir(self.path.parent)
        self.changed = False

    def observe(self, node: str, date: str, run: str, keys: SeqSet, now: float) -> int:
        """Record the holes of ``keys`` not in the table yet (suspected); how many."""
        mine = [g for g in self.gaps if (g.node, g.run, g.date) == (node, run, date)]
        known = {(g.from_seq, g.to_seq) for g in mine}
        covered = SeqSet()
        for g in mine:
            if g.open:
                covered.add_range(g.from_seq, g.to_seq)
        new = 0
        for lo, hi in keys.holes():
            if (lo, hi) in known or _covers(covered, lo, hi):
                continue
            self.gaps.append(Gap(node, run, date, lo, hi, now))
            new += 1
        self.changed |= new > 0
        return new

    def settle(
        self,
        keys_of: dict[tuple[str, str, str], SeqSet],
        all_committed_before: float,
        now: float,
        grace_s: float = 0.0,
    ) -> tuple[int, int]:
        """Shrink suspected holes to what is still missing (deleting filled ones), close
        filled confirmed ones (a partly filled one is closed and its missing parts stay
        open), and confirm suspected ones at least ``grace_s`` old that every live
        collector has committed past; (confirmed now, closed by late arrival).

        The grace covers messages still waiting on the broker: a collector has committed
        all it *received*, but under back-pressure the broker may still hold some."""
        confirmed = closed = 0
        kept: list[Gap] = []
        for g in self.gaps:
            keys = keys_of.get((g.node, g.date, g.run))
            if g.open and keys is not None:
                missing = _missing(keys, g.from_seq, g.to_seq)
                if missing and missing != [(g.from_seq, g.to_seq)]:
                    self.changed = True
                    if g.confirmed:  # partly filled late: the record stays, closed
                        kept.append(replace(g, closed_at=now, closed_by_late_arrival=True))
                        closed += 1
                    # What is still missing: suspected parts were in flight elsewhere.
                    kept += [replace(g, from_seq=a, to_seq=b) for a, b in missing]
                    continue
            filled = keys is not None and _covers(keys, g.from_seq, g.to_seq)
            if g.open and filled and not g.confirmed:
                self.changed = True
                continue  # it was in flight at another collector, never lost
            if g.open and filled:
                g = replace(g, closed_at=now, closed_by_late_arrival=True)
                closed += 1
                self.changed = True
            elif (
                g.open
                and not g.confirmed
                and g.first_seen <= all_committed_before
                and now - g.first_seen >= grace_s
            ):
                g = replace(g, confirmed=True)
                confirmed += 1
                self.changed = True
            kept.append(g)
        self.gaps = kept
        return confirmed, closed

    def open_partitions(self) -> set[tuple[str, str, str]]:
        """(node, date, run) of every open hole: what ``settle`` needs the keys of."""
        return {(g.node, g.date, g.run) for g in self.gaps if g.open}


def _missing(keys: SeqSet, lo: int, hi: int) -> list[tuple[int, int]]:
    """The sub-ranges of ``[lo, hi]`` not in ``keys``."""
    out = []
    at = lo
    for a, b in keys.intervals():
        if b < at:
            continue
        if a > hi:
            break
        if a > at:
            out.append((at, a - 1))
        at = b + 1
        if at > hi:
            break
    if at <= hi:
        out.append((at, hi))
    return out


def _covers(keys: SeqSet, lo: int, hi: int) -> bool:
    return any(a <= lo and hi <= b for a, b in keys.intervals())

"""Reading the store back: which node-days there are, and one node-day's tables, each row once.

Rows are read per partition directory (``<table>/<node>/<date>/``) and de-duplicated on
their key again: the store holds each message once, but a reader that lists a partition
while a compaction swaps its files can meet the same rows in the merged file and in an
input that is about to be deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fsqd.fleet.files import parquet_files
from fsqd.fleet.gaps import GAPS_FILE, GAPS_SCHEMA
from fsqd.fleet.rows import TABLES

__all__ = ["NodeDay", "gaps_table", "node_days", "read_partition"]


@dataclass(frozen=True, order=True)
class NodeDay:
    node: str
    date: str  # UTC YYYY-MM-DD


def _dirs(path: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(path) if not n.startswith((".", "_")))
    except FileNotFoundError:
        return []


def node_days(
    store: Path, nodes: tuple[str, ...] = (), first: str | None = None, last: str | None = None
) -> list[NodeDay]:
    """Every (node, date) with codes or events in the store, within the filters given."""
    found: set[NodeDay] = set()
    for table in ("codes", "events"):
        for node in _dirs(store / table):
            if nodes and node not in nodes:
                continue
            for date in _dirs(store / table / node):
                if (first is None or date >= first) and (last is None or date <= last):
                    found.add(NodeDay(node, date))
    return sorted(found)


def read_partition(store: Path, table: str, node: str, date: str) -> pa.Table:
    """One node-day of ``table``, sorted by run and key, each key once."""
    spec = TABLES[table]
    files = parquet_files(store / table / node / date)
    parts = []
    for f in files:
        try:
            parts.append(pq.read_table(f, schema=spec.schema))
        except FileNotFoundError:
            continue  # merged away by a compaction while we listed
    if not parts:
        return spec.schema.empty_table()
    t = pa.concat_tables(parts)
    t = t.take(pc.sort_indices(t, [("run", "ascending"), (spec.key_column, "ascending")]))
    if t.num_rows < 2:
        return t
    runs = t.column("run")
    key = t.column(spec.key_column)
    same = pc.and_(
        pc.equal(runs.slice(1), runs.slice(0, t.num_rows - 1)),
        pc.equal(key.slice(1), key.slice(0, t.num_rows - 1)),
    )
    keep = pa.concat_arrays([pa.array([True]), pc.invert(same.combine_chunks())])
    return t.filter(keep)


def gaps_table(store: Path) -> pa.Table:
    path = store / GAPS_FILE
    return pq.read_table(path) if path.exists() else GAPS_SCHEMA.empty_table()

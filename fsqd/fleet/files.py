"""Parquet files of the store: written whole then renamed, read back for their keys, set aside
when unreadable.

A file is written under a hidden temporary name in its partition's directory, flushed to
disk, and only then renamed to its final ``.parquet`` name (and the directory synced), so
a reader or a restarted collector never meets a half-written file under a final name. A
final file that still cannot be read (a disk fault, a copy cut short) is moved to
``_quarantine/`` with its path kept, counted and logged, and never stops the store.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fsqd.fleet.seqset import SeqSet

__all__ = [
    "QUARANTINE",
    "atomic_json",
    "fsync_dir",
    "parquet_files",
    "quarantine",
    "read_json",
    "read_keys",
    "sync_filesystem",
    "write_parquet",
]

log = logging.getLogger("fsqd.fleet")
QUARANTINE = "_quarantine"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(
    table: pa.Table, tmp: Path, *, row_group_rows: int = 65536, sync: bool = True
) -> None:
    """``table`` into ``tmp`` (the caller renames it), flushed to the disk unless ``sync`` is
    false (the caller then syncs the file system once for many files: ``sync_filesystem``)."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("wb") as f:
        pq.write_table(table, f, row_group_size=row_group_rows, compression="zstd")
        f.flush()
        if sync:
            os.fsync(f.fileno())


_libc = ctypes.CDLL(None, use_errno=True)


def sync_filesystem(path: Path) -> None:
    """Everything written to ``path``'s file system, on the disk: file data, renames.

    One ``syncfs(2)`` for a commit's hundreds of files (one per node touched) instead of
    an ``fsync`` per file and per directory: a commit of 5,000 codes from 200 nodes took
    1.8 s with those, most of it in fsync."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def read_keys(path: Path, key_column: str) -> dict[str, SeqSet]:
    """The keys of one file by run (raises what pyarrow raises on an unreadable file)."""
    t = pq.read_table(path, columns=["run", key_column])
    return keys_by_run(t.column("run").to_pylist(), t.column(key_column).to_numpy())


def keys_by_run(runs: list[str], keys: np.ndarray[Any, Any]) -> dict[str, SeqSet]:
    out: dict[str, SeqSet] = {}
    if not runs:
        return out
    order = np.lexsort((keys, np.asarray(runs, dtype=object).astype(str)))
    runs_sorted = [runs[i] for i in order]
    keys_sorted = keys[order]
    start = 0
    for i in range(1, len(runs_sorted) + 1):
        if i == len(runs_sorted) or runs_sorted[i] != runs_sorted[start]:
            out.setdefault(runs_sorted[start], SeqSet()).update(
                SeqSet.from_sorted(keys_sorted[start:i])
            )
            start = i
    return out


def quarantine(root: Path, path: Path, why: str) -> Path:
    """Move an unreadable file out of the store's tables (its relative path kept)."""
    dest = root / QUARANTINE / path.relative_to(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    log.warning("set aside unreadable file %s -> %s: %s", path, dest, why)
    return dest


def atomic_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def parquet_files(directory: Path) -> Iterable[Path]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [
        directory / n for n in sorted(names) if n.endswith(".parquet") and not n.startswith(".")
    ]

"""What the spool stores and answers: rows, commit results, and how rows are batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from fsqd.sinks.spool.file import ROW_OVERHEAD

__all__ = ["CommitResult", "SpoolRow", "chunks", "chunks_by_bytes", "fit"]

T = TypeVar("T")


@dataclass(frozen=True)
class SpoolRow:
    id: int
    seq: int
    t_submit: float  # UNIX epoch seconds when the code was handed to the sink
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.payload) + ROW_OVERHEAD


@dataclass(frozen=True)
class CommitResult:
    inserted: int  # rows written
    deleted: int
    dropped: int  # oldest rows removed (or never written) because the spool was full
    depth: int  # rows on disk after the commit
    oldest_t_submit: float | None
    max_id: int
    # The first ``accepted`` inserts are the spool's now (written or dropped as oldest);
    # the rest did not fit on a full disk and stay with the caller.
    accepted: int = 0
    bytes: int = 0  # bytes of rows on disk after the commit


def fit(rows: Sequence[SpoolRow], cap_rows: int, cap_bytes: int) -> tuple[list[SpoolRow], int]:
    """The newest of ``rows`` that fit the caps on their own, and how many older ones do not."""
    total = sum(r.size for r in rows)
    if len(rows) <= cap_rows and total <= cap_bytes:
        return list(rows), 0
    start, n, size = len(rows), 0, 0
    while start > 0 and n < cap_rows and size + rows[start - 1].size <= cap_bytes:
        start -= 1
        n += 1
        size += rows[start].size
    return list(rows[start:]), start


def chunks(items: Sequence[T], n: int) -> list[Sequence[T]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def chunks_by_bytes(rows: Sequence[SpoolRow], limit: int) -> list[Sequence[SpoolRow]]:
    out: list[Sequence[SpoolRow]] = []
    start, size = 0, 0
    for i, r in enumerate(rows):
        if i > start and size + r.size > limit:
            out.append(rows[start:i])
            start, size = i, 0
        size += r.size
    if start < len(rows):
        out.append(rows[start:])
    return out

"""The MQTT sink's codes in memory: not yet acknowledged, not (yet) on disk, oldest first.

Bounded like the spool, in rows and in bytes (payload plus the spool's per-row overhead),
and in bytes also by ``MEMORY_MAX_BYTES``: when the spool cannot take codes (a full
disk), they wait here, and past the bound the oldest that are not on disk are dropped
and counted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from fsqd.sinks.spool.file import ROW_OVERHEAD

MEMORY_MAX_BYTES = 16 * 1024 * 1024  # ~55,000 codes: an hour and a half at 10 codes/s


@dataclass
class QueuedCode:
    id: int
    seq: int
    payload: bytes
    t_wall: float  # UNIX time of submit_code
    t_mono: float | None  # None for codes spooled by an earlier process
    persisting: bool = False  # in a commit that has not returned yet
    on_disk: bool = False

    @property
    def size(self) -> int:
        return len(self.payload) + ROW_OVERHEAD


class Backlog:
    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max_rows
        self.max_bytes = min(max_bytes, MEMORY_MAX_BYTES)
        self._items: OrderedDict[int, QueuedCode] = OrderedDict()
        self.bytes = 0
        self.dropped = 0  # codes dropped here that were nowhere else

    def add(self, item: QueuedCode) -> int:
        """Queue ``item``; returns how many of the oldest codes were dropped to make room."""
        self._items[item.id] = item
        self.bytes += item.size
        dropped = 0
        while len(self._items) > self.max_rows or self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.size
            if not old.persisting and not old.on_disk:
                dropped += 1  # a code in a commit reaches the disk anyway
        self.dropped += dropped
        return dropped

    def pop(self, item_id: int) -> QueuedCode | None:
        item = self._items.pop(item_id, None)
        if item is not None:
            self.bytes -= item.size
        return item

    def get(self, item_id: int) -> QueuedCode | None:
        return self._items.get(item_id)

    def recount(self) -> None:
        """After payloads changed in place (a clock step re-mapped their times)."""
        self.bytes = sum(i.size for i in self._items.values())

    def first(self) -> QueuedCode | None:
        return next(iter(self._items.values()), None)

    def values(self) -> Iterator[QueuedCode]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

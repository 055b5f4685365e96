"""The MQTT sink's memory backlog: bounded in rows and bytes, drops counted once."""

from __future__ import annotations

from fsqd.sinks.spool import ROW_OVERHEAD
from fsqd.sinks.spool.backlog import MEMORY_MAX_BYTES, Backlog, QueuedCode


def item(i: int, size: int = 100) -> QueuedCode:
    return QueuedCode(i, i, b"x" * (size - ROW_OVERHEAD), 1.7e9 + i, float(i))


def test_rows_bound_drops_the_oldest_and_counts() -> None:
    b = Backlog(max_rows=3, max_bytes=1 << 30)
    assert [b.add(item(i)) for i in range(5)] == [0, 0, 0, 1, 1]
    assert [x.id for x in b.values()] == [2, 3, 4]
    assert (b.dropped, b.bytes, len(b)) == (2, 300, 3)


def test_bytes_bound_drops_the_oldest_and_counts() -> None:
    b = Backlog(max_rows=1000, max_bytes=1000)
    for i in range(10):
        b.add(item(i, 250))
    assert [x.id for x in b.values()] == [6, 7, 8, 9]
    assert (b.dropped, b.bytes) == (6, 1000)


def test_codes_on_disk_or_being_written_are_not_counted_as_dropped() -> None:
    b = Backlog(max_rows=2, max_bytes=1 << 30)
    first, second = item(0), item(1)
    first.on_disk = True
    second.persisting = True
    b.add(first)
    b.add(second)
    assert b.add(item(2)) == 0 and b.add(item(3)) == 0  # both live on elsewhere
    assert b.add(item(4)) == 1


def test_memory_has_its_own_ceiling_below_a_large_spool_budget() -> None:
    assert Backlog(10, 1 << 40).max_bytes == MEMORY_MAX_BYTES


def test_pop_and_recount_keep_the_bytes_right() -> None:
    b = Backlog(100, 1 << 30)
    for i in range(3):
        b.add(item(i))
    assert b.pop(1) is not None and b.pop(1) is None
    assert b.bytes == 200
    first = b.first()
    assert first is not None and first.id == 0
    first.payload += b"yy"  # a clock step re-mapped its times
    b.recount()
    assert b.bytes == 202

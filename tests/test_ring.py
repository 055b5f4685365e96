"""The sample ring: order, wrap-around, segment marks, counted overruns, two threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fsqd.imu.acquire.ring import SampleRing


def rows(start: int, n: int, width: int = 3) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(start, start + n, dtype=np.float64)
    return k, np.repeat(k[:, None], width, axis=1).astype(np.float32)


def test_reads_everything_in_order_across_the_wrap() -> None:
    ring = SampleRing(10, 3)
    got = []
    for start in range(0, 60, 7):
        ring.write(*rows(start, 7), new_segment=start == 0)
        for c in ring.read():
            got.append(c)
    t = np.concatenate([c.t for c in got])
    np.testing.assert_array_equal(t, np.arange(63))
    np.testing.assert_array_equal(np.concatenate([c.x for c in got])[:, 2], np.arange(63))
    assert [c.new_segment for c in got].count(True) == 1
    assert ring.overruns == 0 and ring.read() == []


def test_segment_marks_split_chunks() -> None:
    ring = SampleRing(100, 1)
    ring.write(*rows(0, 5, 1), new_segment=True)
    ring.write(*rows(5, 5, 1), new_segment=False)
    ring.write(*rows(20, 5, 1), new_segment=True)
    chunks = ring.read()
    assert [(len(c), c.new_segment) for c in chunks] == [(10, True), (5, True)]


def test_a_slow_reader_is_a_counted_overrun_and_a_new_segment() -> None:
    ring = SampleRing(10, 1)
    ring.write(*rows(0, 4, 1), new_segment=True)
    assert len(ring.read()[0]) == 4
    for start in range(4, 40, 4):  # 36 more samples, reader asleep
        ring.write(*rows(start, 4, 1), new_segment=False)
    chunks = ring.read()
    assert ring.overruns == 1 and ring.overrun_samples == 26
    assert chunks[0].new_segment and chunks[0].t[0] == 30 and chunks[-1].t[-1] == 39
    assert sum(len(c) for c in chunks) == 10


def test_a_burst_larger_than_the_ring_keeps_the_newest() -> None:
    ring = SampleRing(8, 1)
    ring.write(*rows(0, 20, 1), new_segment=False)
    chunks = ring.read()
    assert chunks[0].new_segment and list(chunks[0].t) == list(range(12, 20))
    assert ring.overrun_samples == 12


def test_writer_never_waits_for_the_reader_and_nothing_is_silently_lost() -> None:
    ring = SampleRing(256, 2)
    total = 200_000
    got: list[np.ndarray] = []
    breaks = []
    done = threading.Event()

    def writer() -> None:
        for start in range(0, total, 50):
            ring.write(*rows(start, 50, 2), new_segment=start == 0)
        done.set()

    th = threading.Thread(target=writer)
    th.start()
    while not done.is_set() or ring.read_seq < ring.written:
        for c in ring.read():
            got.append(c.t)
            breaks.append(c.new_segment)
    th.join()
    t = np.concatenate(got)
    # Every sample read is in order; every jump is a marked, counted overrun.
    steps = np.diff(t)
    assert np.all(steps >= 1)
    assert len(t) + ring.overrun_samples == total
    assert (steps > 1).sum() <= ring.overruns
    # The stream's start is a segment start (unless an overrun already marked it).
    assert breaks[0] and breaks.count(True) in (ring.overruns, ring.overruns + 1)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError):
        SampleRing(0, 9)

"""Prefetch: the producer thread starts at once, errors cross over, close() stops it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fsqd.prefetch import prefetch


def test_producing_starts_before_the_first_next() -> None:
    started = threading.Event()

    def items() -> Iterator[int]:
        started.set()
        yield from range(10)

    ahead = prefetch(items(), depth=2)
    assert started.wait(5)  # parsing runs while the caller builds its sessions
    assert list(ahead) == list(range(10))


def test_errors_reach_the_consumer_in_order() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("bad row")

    ahead = prefetch(items())
    got = []
    with pytest.raises(ValueError, match="bad row"):
        for i in ahead:
            got.append(i)
    assert got == [1]


def test_close_stops_a_producer_blocked_on_a_full_queue() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    ahead = prefetch(items(), depth=2)
    with ahead:
        pass
    assert not ahead._worker.is_alive() and len(produced) < 10

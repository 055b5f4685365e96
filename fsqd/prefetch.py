"""Run an iterator in a background thread, a few items ahead of its consumer.

Used where the producer is Python/numpy work (parsing, windowing) and the consumer
spends its time in native code that releases the GIL (onnxruntime), so both progress
at once. The thread starts at once (not at the first ``next()``), so parsing runs while
the caller is still building its inference sessions. Exceptions cross to the consumer;
``close()`` (or leaving a ``with`` block, or a consumer that stops early) stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        self._q: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._items = items
        self._worker = threading.Thread(target=self._run, name="fsqd-prefetch", daemon=True)
        self._worker.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._put(_Failure(e))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._q.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=5)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prefetch(items: Iterator[T], depth: int = 2) -> Prefetch[T]:
    """Start producing ``items`` in a thread now; iterate the result to consume them."""
    return Prefetch(items, depth)

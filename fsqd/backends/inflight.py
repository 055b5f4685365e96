"""Keep a few batches started ahead of the one being read, results in submission order.

With two onnxruntime sessions (``OnnxEncoder``) or the NPU (``HailoEncoder``), the encoder
works on the next batch while the caller finishes the last one (FSQ, head, output): one
batch in flight leaves a session idle for exactly that time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from fsqd.backends.base import AsyncEncoder, Encoder

T = TypeVar("T")
Array = npt.NDArray[np.float32]


class _Started(Generic[T]):
    __slots__ = ("future", "item", "t0", "t1")

    def __init__(self, future: Future[Array], item: T, t0: int) -> None:
        self.future, self.item, self.t0 = future, item, t0
        self.t1 = t0
        future.add_done_callback(self._done)

    def _done(self, _: Future[Array]) -> None:
        self.t1 = time.perf_counter_ns()

    def result(self) -> tuple[Array, T, int]:
        """(output, item, when it was done)."""
        y = self.future.result()
        # result() can return before the done callback has run.
        t1 = self.t1 if self.t1 != self.t0 else time.perf_counter_ns()
        return y, self.item, t1


def encode_ahead(
    encoder: Encoder, items: Iterable[T], x_of: Callable[[T], Array], depth: int = 2
) -> Iterator[tuple[Array, T, int]]:
    """``(encoder output, item, ns from start to done)`` for each item, in order.

    Up to ``depth`` items are being encoded at once; an encoder without ``submit`` runs
    each one in the caller's thread. ``x_of(item)`` must stay unchanged until the item
    comes back. Leaving early waits for the batches already started (their inputs may be
    buffers the caller reuses).

    An encoder's ``lanes`` (default 1) are its workers, taking submissions in turn, each in
    order: with more items in flight than lanes, an item waits for the one ``lanes`` before
    it, and its time starts when that one is done, not when it was handed over.
    """
    if not isinstance(encoder, AsyncEncoder) or depth < 2:
        for item in items:
            t0 = time.perf_counter_ns()
            y = encoder(x_of(item))
            yield y, item, time.perf_counter_ns() - t0
        return
    lanes = max(1, int(getattr(encoder, "lanes", 1)))
    done: deque[int] = deque([0] * lanes, maxlen=lanes)  # each lane's last finish
    started: deque[_Started[T]] = deque()
    try:
        for item in items:
            started.append(_Started(encoder.submit(x_of(item)), item, time.perf_counter_ns()))
            if len(started) >= depth:
                yield _next(started, done)
        while started:
            yield _next(started, done)
    finally:
        for s in started:
            s.future.cancel()
        for s in started:
            if not s.future.cancelled():
                s.future.exception()  # wait; its error, if any, is not the one to report


def _next(started: deque[_Started[T]], done: deque[int]) -> tuple[Array, T, int]:
    """The oldest item's result, timed from when its lane was free for it (the lanes go in
    turn: ``done[0]`` is the finish of the item ``lanes`` before it)."""
    first = started.popleft()
    y, item, t1 = first.result()
    # An encoder with more lanes than it says can finish an item before the one taken as
    # its lane's last: that item is timed from its hand-over.
    ready = done[0] if done[0] <= t1 else first.t0
    ns = t1 - max(first.t0, ready)
    done.append(t1)
    return y, item, ns

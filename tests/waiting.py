"""Waiting on a condition with a deadline, never for a fixed time.

A test waits for what it needs to have happened (N lines written, a log event, a
counter reached); the deadline is only a timeout, generous so that a loaded machine
is slow, never red.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

DEADLINE_S = 60.0


def wait_until(
    cond: Callable[[], object], timeout_s: float = DEADLINE_S, what: str = "condition"
) -> None:
    """Poll ``cond`` until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s:.0f} s")
        time.sleep(0.02)


async def until(
    cond: Callable[[], object], timeout_s: float = DEADLINE_S, what: str = "condition"
) -> None:
    """``wait_until`` inside an event loop: polls without blocking the loop."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s:.0f} s")
        await asyncio.sleep(0.02)


class PipeLines:
    """A child's text pipe read line by line in a thread, so a test can wait on what it
    has written so far and still get all of it after the child exits."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None, "the child's stream is not a pipe"
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._lock:
                self.lines.append(line)
        pipe.close()

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_for(
        self, cond: Callable[[list[str]], object], timeout_s: float = DEADLINE_S, what: str = ""
    ) -> None:
        wait_until(lambda: cond(self.snapshot()), timeout_s, what or "output")

    def text(self, timeout_s: float = DEADLINE_S) -> str:
        """Everything, once the child closed the pipe (it exited)."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the child's pipe is still open"
        return "".join(self.lines)


def finish(proc: subprocess.Popen[str], *pipes: PipeLines, timeout_s: float = 30.0) -> None:
    """Wait for the child to exit and its pipes to be read to the end."""
    proc.wait(timeout=timeout_s)
    for p in pipes:
        p.text()

"""JSON lines to a text stream (stdout or a file)."""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TextIO

from fsqd.errors import OutputError
from fsqd.outfile import text_output
from fsqd.sinks.base import PublishedCallback


def write_lines(out: TextIO, text: str) -> None:
    """Write formatted lines; a full disk or closed file is a one-line OutputError.

    A closed pipe stays a BrokenPipeError: the reader left (``| head``), which the
    command line treats as a normal end rather than a failure.
    """
    try:
        out.write(text)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(f"cannot write output: {e.strerror}") from None


class Output:
    """stdout, or a file written through ``fsqd.outfile.text_output`` (a regular file is
    replaced only once complete; a FIFO or device is written in place)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: AbstractContextManager[TextIO] | None = None
        self.stream: TextIO = sys.stdout

    def __enter__(self) -> TextIO:
        if self.path is not None:
            self._file = text_output(self.path)
            self.stream = self._file.__enter__()
        return self.stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is None:
            self.stream.flush()
            return
        self._file.__exit__(exc_type, exc, tb)


class JsonLinesSink:
    """Codes as JSON lines on a text stream (the terminal, a pipe); a Sink.

    Stats, info and health go to ``meta`` when given (else nowhere: the daemon logs a summary).
    Stats, info, the behaviour state and events go to ``meta`` when given (else nowhere:
    the daemon logs a summary; ``fsqd replay --segments`` writes the segments).
    A line counts as delivered once written and flushed.
    """

    def __init__(self, out: TextIO, *, meta: TextIO | None = None) -> None:
        self.out = out
        self.meta = meta
        self.on_published: PublishedCallback | None = None
        self.published = 0

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to connect: idle until cancelled

    def submit_code(self, payload: bytes, seq: int) -> None:
        t0 = time.perf_counter()
        write_lines(self.out, payload.decode() + "\n")
        self.out.flush()
        self.published += 1
        if self.on_published is not None:
            self.on_published(seq, time.perf_counter() - t0)

    def publish_stats(self, payload: bytes) -> None:
        if self.meta is not None:
            write_lines(self.meta, payload.decode() + "\n")
            self.meta.flush()

    def publish_info(self, payload: bytes) -> None:
        self.publish_stats(payload)

    def publish_health(self, payload: bytes) -> None:
        self.publish_stats(payload)

    def publish_state(self, payload: bytes) -> None:
        self.publish_stats(payload)

    def publish_event(self, payload: bytes) -> None:
        self.publish_stats(payload)

    def counters(self) -> dict[str, int | float]:
        return {"published": self.published}

    async def aclose(self, timeout_s: float) -> None:
        self.out.flush()

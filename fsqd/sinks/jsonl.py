"""JSON lines to a text stream (stdout or a file)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from fsqd.console import note
from fsqd.errors import FsqdError, OutputError
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
    """stdout or a file (written to a temporary name and renamed when complete)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._tmp = None if path is None else path.with_name(f".{path.name}.partial")
        self.stream: TextIO = sys.stdout

    def __enter__(self) -> TextIO:
        if self.path is not None and self.path.is_dir():
            raise OutputError(f"{self.path}: is a directory; --out takes a file name")
        if self._tmp is not None:
            try:
                self.stream = self._tmp.open("w", encoding="utf-8")
            except OSError as e:
                raise OutputError(f"{self.path}: cannot write: {e.strerror}") from None
        return self.stream

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._tmp is None or self.path is None:
            self.stream.flush()
            return
        self.stream.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        elif isinstance(exc, FsqdError):
            # Keep what was written, and say where, on the error's own line.
            exc.args = (f"{exc} (partial output kept in {self._tmp})",)
        else:
            note(f"partial output kept in {self._tmp}")


class JsonLinesSink:
    """Codes as JSON lines on a text stream (the terminal, a pipe); a Sink.

    Stats and info go to ``meta`` when given (else nowhere: the daemon logs a summary).
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

    def counters(self) -> dict[str, int | float]:
        return {"published": self.published}

    async def aclose(self, timeout_s: float) -> None:
        self.out.flush()

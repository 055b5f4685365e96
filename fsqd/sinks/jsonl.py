"""JSON lines to a text stream (stdout or a file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from fsqd.console import note
from fsqd.errors import FsqdError, OutputError


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

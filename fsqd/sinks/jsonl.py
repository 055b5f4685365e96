"""JSON lines to a text stream (stdout or a file)."""

from __future__ import annotations

from typing import TextIO

from fsqd.errors import OutputError


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

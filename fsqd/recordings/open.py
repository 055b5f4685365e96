"""One entry for every recorded-file format: ``open_recording(path, options)``."""

from __future__ import annotations

from pathlib import Path

from fsqd.errors import NoInputError
from fsqd.recordings.arrays import ArrayRecording
from fsqd.recordings.base import ReadOptions, Recording
from fsqd.recordings.csvfile import CsvRecording
from fsqd.recordings.fsqr import NativeRecording
from fsqd.safefile import regular_file


def open_recording(path: str | Path, options: ReadOptions) -> Recording:
    """Open ``path`` (.npy, .npz, .fsqr by suffix, anything else as CSV), check its columns."""
    p = Path(path)
    # Read in bounded chunks, so no size cap; but never a FIFO or a device (no end).
    regular_file(p, what="a recording")
    try:
        with p.open("rb") as fh:
            fh.read(1)
    except OSError as e:
        raise NoInputError(f"{p}: cannot read: {e.strerror or e}") from None
    if p.suffix.lower() in (".npy", ".npz"):
        return ArrayRecording(p, options)
    if p.suffix.lower() == ".fsqr":  # fsqd record's native format
        return NativeRecording(p, options)
    return CsvRecording(p, options)


__all__ = ["open_recording"]

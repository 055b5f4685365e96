"""Writers for ``fsqd record``: the native ``.fsqr`` format, or CSV for other tools.

Both take ``SampleChunk``s and end at a whole block (``.fsqr``) or a whole line (CSV)
when the disk refuses a write; ``recording_header`` describes a session for either.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.errors import OutputError
from fsqd.outfile import Appender, output_target
from fsqd.recordings.fsqr import (
    KIND_HEADER,
    KIND_STATUS,
    MAGIC,
    VERSION,
    block_bytes,
    encode_samples,
    scan,
    valid_end,
)
from fsqd.units import CHANNEL_UNITS, CHANNELS, column_names


class NativeWriter:
    """Appends one recording session to a ``.fsqr`` file, a block per ``block_s``."""

    def __init__(
        self,
        path: str | Path,
        header: dict[str, Any],
        *,
        block_s: float = 1.0,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.channels = list(header["channels"])
        self.width = len(self.channels)
        self.block_s = block_s
        self.fsync = fsync
        self.blocks = 0
        self.samples = 0
        self._t: list[npt.NDArray[np.float64]] = []
        self._x: list[npt.NDArray[np.float32]] = []
        self._segment = False
        self.failed = False  # a write failed: the file ends at the last whole block
        self._out = self._open(header)
        self._write_block(bytes([KIND_HEADER]) + json.dumps(header).encode())

    def _open(self, header: dict[str, Any]) -> Appender:
        """Append to a recording that is there (a regular file), else start one; a FIFO
        or a device is written in place, never replaced (``fsqd.outfile``)."""
        target = output_target(self.path)
        if target.exists and not target.special and target.path.stat().st_size > 0:
            try:
                self._check_compatible(header)
                end = valid_end(target.path)
            except OSError as e:
                raise OutputError(f"{self.path}: cannot read: {e.strerror or e}") from None
            return Appender(target, keep=end)  # a torn block from a power cut goes
        out = Appender(target)
        self._write(out, MAGIC + struct.pack("<H", VERSION))
        return out

    def _check_compatible(self, header: dict[str, Any]) -> None:
        with self.path.open("rb") as fh:
            for b in scan(fh, self.path):
                if b.kind == KIND_HEADER:
                    old = json.loads(b.body)
                    had, want = old.get("channels"), header["channels"]
                    if had != want:
                        raise OutputError(
                            f"{self.path}: cannot append: it records channels {had}, "
                            f"this session {want}"
                        )
                    return
        raise OutputError(f"{self.path}: exists but holds no recording header; not appending")

    def _write(self, out: Appender, data: bytes) -> None:
        try:
            out.write(data)  # whole, or cut back to where it began
        except OutputError:
            self._failed(out)
            raise

    def _failed(self, out: Appender) -> None:
        """The disk refused a write or a sync: write nothing more to it."""
        self.failed = True
        out.close()

    def _write_block(self, payload: bytes) -> None:
        self._write(self._out, block_bytes(payload))
        if self.fsync:
            try:
                self._out.sync()
            except OutputError:
                self._failed(self._out)
                raise
        self.blocks += 1

    def write(self, chunk: SampleChunk) -> None:
        if not len(chunk):
            return
        if chunk.x.shape[1] != self.width:
            raise ValueError(f"chunk has {chunk.x.shape[1]} columns, recording has {self.width}")
        if chunk.new_segment:
            self.flush()
            self._segment = True
        self._t.append(chunk.t)
        self._x.append(chunk.x)
        if self._t[-1][-1] - self._t[0][0] >= self.block_s:
            self.flush()

    def flush(self) -> None:
        if not self._t:
            return
        t = np.concatenate(self._t)
        x = np.concatenate(self._x)
        self._t, self._x = [], []
        self._write_block(encode_samples(t, x, self._segment))
        self._segment = False
        self.samples += len(t)

    def close(self, status: list[dict[str, Any]] | None = None) -> None:
        """Write what is buffered and the status block, then close (after a failed write
        it is closed already: the file ends at its last whole block)."""
        if self._out.closed:
            return
        try:
            self.flush()
            if status is not None:
                self._write_block(bytes([KIND_STATUS]) + json.dumps(status).encode())
        finally:
            self._out.close()


class CsvWriter:
    """``t`` (UNIX seconds) and the channel columns ``fsqd replay`` expects."""

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.width = len(header["channels"])
        self.samples = 0
        self.failed = False  # a write failed: the file ends at the last whole line
        self._fmt = "%.6f," + ",".join(["%.9g"] * self.width)
        self._out = Appender(self.path)  # started empty; a FIFO or device written in place
        self._write((",".join(["t", *header["channels"]]) + "\n").encode())

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)  # whole lines, or cut back to the last whole line
        except OutputError:
            self.failed = True
            raise

    def write(self, chunk: SampleChunk) -> None:
        if not len(chunk):
            return
        rows = np.column_stack([chunk.t, chunk.x.astype(np.float64)])
        text = io.StringIO()
        np.savetxt(text, rows, fmt=self._fmt)
        self._write(text.getvalue().encode())
        self.samples += len(chunk)

    def flush(self) -> None:
        pass  # every write went to the kernel whole

    def close(self, status: list[dict[str, Any]] | None = None) -> None:
        self._out.close()


def recording_header(
    devices: int, nominal_rate_hz: float, sensors: Sequence[dict[str, Any]], started: str
) -> dict[str, Any]:
    return {
        "channels": column_names(CHANNELS, devices),
        "devices": devices,
        "units": list(CHANNEL_UNITS) * devices,
        "nominal_rate_hz": nominal_rate_hz,
        "sensors": list(sensors),
        "started": started,
    }


__all__ = ["CsvWriter", "NativeWriter", "recording_header"]

"""The native recording format (``.fsqr``): appendable, checksummed, power-cut safe.

Layout (all integers little-endian)::

    file    = magic block*
    magic   = b"FSQR" version:u16 (= 1)
    block   = length:u32 crc32:u32 payload[length]      # crc32 (zlib) of the payload
    payload = kind:u8 body
    kind 1  = header: UTF-8 JSON {"channels": [...], "devices": D, "units": [...],
              "nominal_rate_hz": f, "sensors": [{"name", "driver", ...}], "started": ISO}
    kind 2  = samples: flags:u8 n:u32 t0:f64 dt_us:i32[n] x:f32[n * 9D]
              flags bit 0: the first sample starts a segment (a gap or overflow before it)
              t[i] = t0 + dt_us[i] / 1e6 (UNIX seconds, 1 us resolution); x row-major,
              columns in channel order, device-major (ax ay az gx gy gz mx my mz per device)
    kind 3  = status: UTF-8 JSON, the sensors' counters when the session ended

Every recording session (a ``fsqd record`` run) starts with a header block; appending
to an existing file checks that its channels match. Blocks are written whole and
fsync'ed (one block per second of samples): a power cut loses at most the block being
written, and a torn block at the end is detected by its length or checksum, ignored by
the reader and cut off before the next append.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError, NoInputError, OutputError
from fsqd.outfile import Appender, output_target
from fsqd.sensors.files import ABSOLUTE_AFTER, ReadOptions, Recording
from fsqd.stream.chunk import SampleChunk
from fsqd.units import CHANNEL_UNITS, CHANNELS, column_names

MAGIC = b"FSQR"
VERSION = 1
SUFFIX = ".fsqr"
KIND_HEADER, KIND_SAMPLES, KIND_STATUS = 1, 2, 3
_BLOCK = struct.Struct("<II")  # length, crc32
_SAMPLES = struct.Struct("<BId")  # flags, n, t0
MAX_BLOCK = 64 << 20  # no sane block is larger: a bigger length is corruption
MAX_SPAN_S = 2000.0  # dt_us must fit an i32


@dataclass(frozen=True)
class Block:
    kind: int
    body: bytes
    offset: int  # where the block starts in the file


def scan(fh: BinaryIO, path: Path) -> Iterator[Block]:
    """Valid blocks from after the magic; stops at the first torn or corrupt one."""
    head = fh.read(6)
    if len(head) < 6 or head[:4] != MAGIC:
        raise DataError(f"{path}: not an fsqd recording (no FSQR magic)")
    (version,) = struct.unpack("<H", head[4:])
    if version != VERSION:
        raise DataError(f"{path}: recording format version {version}, this fsqd reads {VERSION}")
    offset = 6
    while True:
        prefix = fh.read(_BLOCK.size)
        if len(prefix) < _BLOCK.size:
            return
        length, crc = _BLOCK.unpack(prefix)
        if length == 0 or length > MAX_BLOCK:
            return
        payload = fh.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        yield Block(payload[0], payload[1:], offset)
        offset += _BLOCK.size + length


def valid_end(path: Path) -> int:
    """Byte offset just after the last valid block (where an append must start)."""
    end = 6
    with path.open("rb") as fh:
        for b in scan(fh, path):
            end = b.offset + _BLOCK.size + 1 + len(b.body)
    return end


def encode_samples(
    t: npt.NDArray[np.float64], x: npt.NDArray[np.float32], new_segment: bool
) -> bytes:
    t0 = float(t[0])
    dt = np.round((t - t0) * 1e6)
    if dt[-1] > np.iinfo(np.int32).max:
        raise ValueError("a block spans more than 2147 s")
    return (
        bytes([KIND_SAMPLES])
        + _SAMPLES.pack(1 if new_segment else 0, len(t), t0)
        + dt.astype("<i4").tobytes()
        + np.ascontiguousarray(x, "<f4").tobytes()
    )


def decode_samples(
    body: bytes, width: int, path: Path
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], bool]:
    flags, n, t0 = _SAMPLES.unpack_from(body)
    need = _SAMPLES.size + 4 * n + 4 * n * width
    if len(body) != need:
        raise DataError(f"{path}: a sample block holds {len(body)} bytes, expected {need}")
    dt = np.frombuffer(body, "<i4", n, _SAMPLES.size)
    x = np.frombuffer(body, "<f4", n * width, _SAMPLES.size + 4 * n).reshape(n, width)
    return t0 + dt.astype(np.float64) / 1e6, x.astype(np.float32), bool(flags & 1)


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
        self._write(self._out, _BLOCK.pack(len(payload), zlib.crc32(payload)) + payload)
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


class NativeRecording(Recording):
    """A ``.fsqr`` file read for replay: chunks per block, segments as recorded."""

    def __init__(self, path: Path, options: ReadOptions) -> None:
        super().__init__(path, options)
        try:
            self.torn_bytes = path.stat().st_size - valid_end(path)  # a power cut's leftovers
            with path.open("rb") as fh:
                header = next((b for b in scan(fh, path) if b.kind == KIND_HEADER), None)
        except OSError as e:
            raise NoInputError(f"{path}: cannot read: {e.strerror or e}") from None
        if header is None:
            raise DataError(f"{path}: no recording header block")
        meta = json.loads(header.body)
        self.meta = meta
        names: list[str] = list(meta["channels"])
        self.width = len(names)
        lower = {n.lower(): i for i, n in enumerate(names)}
        picked = self._pick_names(lower)
        missing = [n for n in picked if n.lower() not in lower]
        if missing:
            raise DataError(f"{path}: no channel {missing[0]!r}; the file has: {', '.join(names)}")
        self._device_count(len(picked), str(path))
        self._index = np.array([lower[n.lower()] for n in picked])
        self.columns = tuple(names[i] for i in self._index)

    def chunks(self) -> Iterator[SampleChunk]:
        finish = self._finisher()
        last: float | None = None
        with self.path.open("rb") as fh:
            for b in scan(fh, self.path):
                if b.kind == KIND_HEADER:
                    if json.loads(b.body).get("channels") != self.meta["channels"]:
                        raise DataError(f"{self.path}: a later session records other channels")
                    continue
                if b.kind != KIND_SAMPLES:
                    continue
                t, x, segment = decode_samples(b.body, self.width, self.path)
                t, x64 = self._check_rows(
                    t, x[:, self._index].astype(np.float64), _at_block(self.path, b.offset), last
                )
                if not len(t):
                    continue
                if last is None:
                    self.absolute_time = float(t[0]) > ABSOLUTE_AFTER
                yield SampleChunk(t, finish(x64), new_segment=segment or last is None)
                last = float(t[-1])
        if last is None:
            raise DataError(f"{self.path}: no samples")


def _at_block(path: Path, offset: int) -> Callable[[int], str]:
    return lambda k: f"{path}: block at byte {offset}, row {k}"


__all__ = [
    "MAGIC",
    "SUFFIX",
    "CsvWriter",
    "NativeRecording",
    "NativeWriter",
    "recording_header",
    "scan",
    "valid_end",
]

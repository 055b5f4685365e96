"""The native recording format (``.fsqr``) and its reader: appendable, checksummed, power-cut safe.

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

import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, NoInputError
from fsqd.recordings.base import ABSOLUTE_AFTER, ReadOptions, Recording

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


def block_bytes(payload: bytes) -> bytes:
    """One block as it is written: length, crc32, payload."""
    return _BLOCK.pack(len(payload), zlib.crc32(payload)) + payload


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
    "KIND_HEADER",
    "KIND_SAMPLES",
    "KIND_STATUS",
    "MAGIC",
    "SUFFIX",
    "VERSION",
    "Block",
    "NativeRecording",
    "block_bytes",
    "decode_samples",
    "encode_samples",
    "scan",
    "valid_end",
]

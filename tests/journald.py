"""A stand-in for journald's native socket: a real AF_UNIX datagram socket and a parser.

The parser follows https://systemd.io/JOURNAL_NATIVE_PROTOCOL/ and journald's own
reader: a line with '=' is ``NAME=value``; a line without is ``NAME`` followed by a
64-bit little-endian length, that many bytes, and a newline. An empty datagram
carrying one file descriptor means the entry is in that (sealed) memfd.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

_VALID_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def parse_native(data: bytes) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = nl + 1
        else:
            name = line
            (size,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 1 + 8
            value = data[start : start + size]
            if len(value) != size or data[start + size : start + size + 1] != b"\n":
                raise ValueError(f"binary field {name!r} is truncated or unterminated")
            i = start + size + 1
        text = name.decode("ascii")
        if not _VALID_NAME.fullmatch(text):
            raise ValueError(f"journald would refuse the field name {text!r}")
        fields.append((text, value.decode("utf-8")))
    return fields


@dataclass(frozen=True)
class Entry:
    fields: list[tuple[str, str]]
    raw: bytes
    via_memfd: bool
    seals: int = 0

    def __getitem__(self, name: str) -> str:
        values = [v for k, v in self.fields if k == name]
        if len(values) != 1:
            raise KeyError(f"{name}: {len(values)} values in {self.fields}")
        return values[0]

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.fields if k == name]
        return values[0] if values else None

    @property
    def names(self) -> list[str]:
        return [k for k, _ in self.fields]


class JournaldStandIn:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(str(path))

    def close(self) -> None:
        self.sock.close()

    def receive(self, timeout: float = 2.0) -> Entry | None:
        self.sock.settimeout(timeout)
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, 4)
        except (TimeoutError, BlockingIOError):
            return None
        if not fds:
            return Entry(parse_native(data), data, via_memfd=False)
        if data or len(fds) != 1:
            raise ValueError("journald accepts either a payload or exactly one fd, not both")
        fd = fds[0]
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            size = os.fstat(fd).st_size
            raw = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        return Entry(parse_native(raw), raw, via_memfd=True, seals=seals)

    def receive_all(self) -> list[Entry]:
        out = []
        while (entry := self.receive(0.05)) is not None:
            out.append(entry)
        return out

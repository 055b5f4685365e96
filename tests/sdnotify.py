"""A stand-in for systemd's side of sd_notify: a real AF_UNIX datagram socket.

It receives what a service sends to ``$NOTIFY_SOCKET`` together with the sender's
credentials (SO_PASSCRED, as systemd's manager uses them for NotifyAccess=main),
and parses each datagram into its ``KEY=VALUE`` lines.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

_UCRED = struct.Struct("iII")  # pid_t pid; uid_t uid; gid_t gid


@dataclass(frozen=True)
class Notification:
    fields: dict[str, str]
    pid: int | None
    at: float  # time.monotonic() when received
    raw: bytes = field(repr=False)


class NotifyListener:
    """Bind to a path or, with ``abstract=True``, to an abstract name; ``env`` is the value
    to export as NOTIFY_SOCKET."""

    def __init__(self, where: Path | str, *, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            name = str(where)
            self.sock.bind(b"\0" + name.encode())
            self.env = "@" + name
        else:
            self.sock.bind(str(where))
            self.env = str(where)
        self.received: list[Notification] = []

    def close(self) -> None:
        self.sock.close()

    def receive(self, timeout: float) -> Notification | None:
        """The next datagram, or None after ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(_UCRED.size))
        except (TimeoutError, BlockingIOError):
            return None
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = _UCRED.unpack(payload[: _UCRED.size])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        note = Notification(fields=fields, pid=pid, at=time.monotonic(), raw=data)
        self.received.append(note)
        return note

    def wait_for(self, key: str, timeout: float, value: str | None = None) -> Notification:
        """Receive until a datagram has ``key`` (= ``value`` if given), else AssertionError."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            note = self.receive(left)
            if note is None or key not in note.fields:
                continue
            if value is None or note.fields[key] == value:
                return note
        seen = [n.fields for n in self.received[-10:]]
        raise AssertionError(f"no {key}={value or '*'} within {timeout}s; last seen: {seen}")

    def drain(self) -> list[Notification]:
        """Everything already queued, without waiting."""
        out = []
        while (note := self.receive(0)) is not None:
            out.append(note)
        return out


def unique_name(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"

"""Journal entries: structured fields, journald's native protocol, and the handler.

Each log record is one journal entry: ``sensor="collar"`` becomes ``SENSOR=collar``, the
level a PRIORITY, plus MESSAGE, CODE_FILE/CODE_LINE/CODE_FUNC and SYSLOG_IDENTIFIER=fsqd.
It is sent with systemd-python's ``journal.send`` when importable and otherwise with the
native datagram protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/); when the journal
cannot take an entry the line goes to stderr with a ``<N>`` priority prefix, which
journald's stream reader understands. ``fsqd.daemon.logging`` chooses this format.
"""

from __future__ import annotations

import array
import errno
import fcntl
import importlib
import json
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor

__all__ = [
    "JOURNAL_SOCKET",
    "JournalHandler",
    "JournalSend",
    "NativeJournal",
    "encode_native",
    "journal_field_name",
    "journal_fields",
    "journal_stream_matches",
    "libsystemd_journal",
]

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "fsqd"

Fields = list[tuple[str, str]]
JournalSend = Callable[[Fields], None]


def journal_stream_matches(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``$JOURNAL_STREAM`` ("device:inode") is the file behind ``stream``.

    systemd sets it for StandardError=journal; a child whose stderr was redirected
    elsewhere inherits the variable but not the stream, hence the inode check.
    """
    value = environ.get("JOURNAL_STREAM", "")
    dev_text, sep, ino_text = value.partition(":")
    if not sep:
        return False
    try:
        dev, ino = int(dev_text), int(ino_text)
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


# -- journal fields --

_NOT_FIELD_CHAR = re.compile(r"[^A-Z0-9_]")
# Fields this module sets itself; a user key of the same name gets a prefix
# instead of silently replacing them.
_OWN_FIELDS = frozenset(
    {
        "MESSAGE",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
        "LOGGER",
        "THREAD_NAME",
        "EXCEPTION",
    }
)
# Keys of the event dict that are rendered into the fields above, not copied.
_META_KEYS = frozenset(
    {
        "event",
        "level",
        "logger",
        "timestamp",
        "exc_info",
        "exception",
        "pathname",
        "lineno",
        "func_name",
        "thread_name",
        "_record",
        "_from_structlog",
    }
)


def journal_field_name(key: str) -> str | None:
    """The journal field for an event-dict key, or None if nothing valid remains.

    journald accepts names of upper-case ASCII letters, digits and '_', at most 64
    characters, not starting with '_' (trusted fields) or a digit.
    """
    name = _NOT_FIELD_CHAR.sub("_", key.upper()).lstrip("_")
    if not name:
        return None
    if name[0].isdigit():
        name = "F_" + name
    if name in _OWN_FIELDS:
        name = "FSQD_" + name
    return name[:64]


def _field_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _logfmt(value: str) -> str:
    if value and not any(c in value for c in ' ="\n'):
        return value
    return json.dumps(value)


def _priority(levelno: int) -> int:
    """syslog priority for a logging level (sparse levels round up, as python-systemd does)."""
    if levelno <= logging.DEBUG:
        return 7
    if levelno <= logging.INFO:
        return 6
    if levelno <= logging.WARNING:
        return 4
    if levelno <= logging.ERROR:
        return 3
    if levelno <= logging.CRITICAL:
        return 2
    return 1


def journal_fields(event_dict: EventDict, levelno: int) -> Fields:
    """The journal entry for one event: MESSAGE first, then the fixed fields, then the user's.

    MESSAGE carries the event plus its key=value pairs (what ``journalctl`` shows by
    default), and the traceback when there is one; every key is also its own field.
    """
    user: Fields = []
    pairs: list[str] = []
    for key, value in event_dict.items():
        if key in _META_KEYS:
            continue
        text = _field_value(value)
        if text is None:
            continue
        pairs.append(f"{key}={_logfmt(text)}")
        name = journal_field_name(key)
        if name is not None:
            user.append((name, text))
    message = str(event_dict.get("event", ""))
    if pairs:
        message = " ".join([message, *pairs])
    exception = event_dict.get("exception")
    fields: Fields = []
    if isinstance(exception, str) and exception:
        message = f"{message}\n{exception}"
        lines = exception.rstrip().splitlines()
        fields.append(("EXCEPTION", lines[-1] if lines else exception))
    fields[:0] = [
        ("MESSAGE", message),
        ("PRIORITY", str(_priority(levelno))),
        ("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER),
    ]
    if "logger" in event_dict:
        fields.append(("LOGGER", str(event_dict["logger"])))
    for key, field in (
        ("pathname", "CODE_FILE"),
        ("lineno", "CODE_LINE"),
        ("func_name", "CODE_FUNC"),
    ):
        if event_dict.get(key) is not None:
            fields.append((field, str(event_dict[key])))
    if event_dict.get("thread_name") is not None:
        fields.append(("THREAD_NAME", str(event_dict["thread_name"])))
    return fields + user


# -- sending to journald --


def encode_native(fields: Sequence[tuple[str, str]]) -> bytes:
    """One entry in the journal's native protocol.

    ``NAME=value\\n`` for plain values; a value containing a newline is sent as
    ``NAME\\n`` + its length as 64-bit little-endian + the bytes + ``\\n``.
    """
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class NativeJournal:
    """Client side of journald's native protocol on an AF_UNIX datagram socket.

    An entry too large for one datagram goes, as sd_journal_sendv(3) does it, in a
    sealed memfd passed with SCM_RIGHTS and an empty payload. Sends never block:
    a full queue raises, and the handler falls back to stderr.
    """

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def __call__(self, fields: Fields) -> None:
        data = encode_native(fields)
        try:
            self._sock.sendto(data, socket.MSG_DONTWAIT, self.path)
        except OSError as e:
            if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        fd = os.memfd_create("fsqd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            # Not socket.send_fds: it drops its flags and address arguments (3.11).
            rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))
            self._sock.sendmsg([], [rights], socket.MSG_DONTWAIT, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._sock.close()


def libsystemd_journal() -> JournalSend | None:
    """systemd-python's ``journal.send`` wrapped to take our field list, if importable."""
    try:
        journal = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    send = getattr(journal, "send", None)
    if send is None:
        return None

    def emit(fields: Fields) -> None:
        kw: dict[str, Any] = dict(fields)
        message = kw.pop("MESSAGE")
        # journal.send formats CODE_LINE with {:d}; without any CODE_* it would
        # look up its own caller instead, so always hand it CODE_FILE.
        kw["CODE_LINE"] = int(kw["CODE_LINE"]) if "CODE_LINE" in kw else None
        kw.setdefault("CODE_FILE", "?")
        send(message, **kw)

    return emit


# -- the handler --


class JournalHandler(logging.Handler):
    """A logging handler that turns structlog events and stdlib records into journal entries.

    Records made by structlog carry their event dict (``ProcessorFormatter.
    wrap_for_formatter``); records from plain ``logging`` are lifted into one and run
    through ``pre_chain``, the same processors structlog's own events went through.
    """

    def __init__(
        self,
        send: JournalSend,
        *,
        pre_chain: Sequence[Processor] = (),
        fallback: TextIO | None = None,
        fallback_prefix: bool = True,
    ) -> None:
        super().__init__()
        self._send = send
        self._pre_chain = tuple(pre_chain)
        self._exc = structlog.processors.ExceptionRenderer()
        self._fallback = fallback if fallback is not None else sys.stderr
        self._fallback_prefix = fallback_prefix
        self.fallbacks = 0

    def event_dict(self, record: logging.LogRecord) -> EventDict:
        if isinstance(record.msg, dict) and hasattr(record, "_logger"):
            ed: EventDict = dict(record.msg)
            ed["_record"] = record
            ed["_from_structlog"] = True
        else:
            ed = {"event": record.getMessage(), "_record": record, "_from_structlog": False}
            if record.exc_info:
                ed["exc_info"] = record.exc_info
            logger, name = logging.getLogger(record.name), record.levelname.lower()
            for proc in self._pre_chain:
                ed = cast(EventDict, proc(logger, name, ed))
        return self._exc(None, record.levelname.lower(), ed)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = journal_fields(self.event_dict(record), record.levelno)
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(fields)
        except OSError:
            self.fallbacks += 1
            self._write_fallback(fields)

    def _write_fallback(self, fields: Fields) -> None:
        message, priority = fields[0][1], fields[1][1]
        prefix = f"<{priority}>" if self._fallback_prefix else ""
        try:
            self._fallback.write("".join(f"{prefix}{line}\n" for line in message.splitlines()))
            self._fallback.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say it; never take the daemon down over a log line

"""One place that decides where log records go and how they look.

Everything logs through ``structlog.get_logger(__name__)``; libraries that use the
standard ``logging`` module (onnxruntime, aiomqtt, paho) and ``warnings`` are routed
to the same single handler, so there is one output whatever the source.

Formats:

- ``console``: structlog's ``ConsoleRenderer`` (colours on a TTY) for people at a shell.
- ``json``: one JSON object per line on stderr, for everything that is not a person.
- ``journal``: each record is one journal entry with structured fields
  (``sensor="collar"`` becomes ``SENSOR=collar``), a PRIORITY from the level,
  MESSAGE, CODE_FILE/CODE_LINE/CODE_FUNC and SYSLOG_IDENTIFIER=fsqd, sent with
  systemd-python's ``journal.send`` when importable and otherwise with the journal's
  native datagram protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/) on
  ``/run/systemd/journal/socket``. If the journal cannot take an entry (journald
  restarting, its queue full), the line goes to stderr with a ``<N>`` priority
  prefix instead, which journald's stream reader understands.
- ``auto``: ``journal`` when ``$JOURNAL_STREAM`` names our stderr (systemd.exec(5):
  "device:inode" of the stream it connected), else ``console`` on a TTY, else ``json``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

import structlog
from structlog.typing import Processor

from fsqd.daemon.journal import (
    JOURNAL_SOCKET,
    JournalHandler,
    JournalSend,
    NativeJournal,
    journal_stream_matches,
    libsystemd_journal,
)
from fsqd.errors import UsageError

__all__ = ["FORMATS", "LEVELS", "configure_logging", "resolve_format"]

FORMATS = ("auto", "console", "json", "journal")
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


# -- choosing the format --


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False


def resolve_format(fmt: str, *, environ: Mapping[str, str], stream: TextIO) -> str:
    """Turn ``auto`` into the concrete format for this process; check the others."""
    if fmt not in FORMATS:
        raise UsageError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    if journal_stream_matches(environ, stream):
        return "journal"
    return "console" if _isatty(stream) else "json"


# -- configuration --

_OUR_HANDLER = "_fsqd_handler"


def _shared_processors(callsite: bool) -> list[Processor]:
    procs: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if callsite:
        procs.append(
            structlog.processors.CallsiteParameterAdder(
                [
                    structlog.processors.CallsiteParameter.PATHNAME,
                    structlog.processors.CallsiteParameter.LINENO,
                    structlog.processors.CallsiteParameter.FUNC_NAME,
                    structlog.processors.CallsiteParameter.THREAD_NAME,
                ]
            )
        )
    return procs


def _stream_handler(fmt: str, stream: TextIO, pre_chain: list[Processor]) -> logging.Handler:
    tail: list[Processor]
    if fmt == "console":
        tail = [structlog.dev.ConsoleRenderer(colors=_isatty(stream))]
    else:
        tail = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
            foreign_pre_chain=pre_chain,
        )
    )
    return handler


def configure_logging(
    fmt: str = "auto",
    level: str = "info",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    journal_socket: str | None = None,
) -> str:
    """Route structlog and stdlib logging to one handler; returns the format chosen.

    ``stream`` (default stderr) is where console/JSON lines go and the journal's
    fallback. ``journal_socket`` forces the native protocol to that path (tests);
    by default systemd-python is used when importable. Safe to call again (a SIGHUP
    reload changing the level): the previous fsqd handler is replaced, other
    handlers (pytest's capture, say) are left alone.
    """
    if level not in LEVELS:
        raise UsageError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    levelno = LEVELS[level]
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    resolved = resolve_format(fmt, environ=env, stream=out)

    pre_chain = _shared_processors(callsite=resolved == "journal")
    handler: logging.Handler
    if resolved == "journal":
        send: JournalSend | None = None
        if journal_socket is None:
            send = libsystemd_journal()
        if send is None:
            send = NativeJournal(journal_socket or JOURNAL_SOCKET)
        handler = JournalHandler(
            send,
            pre_chain=pre_chain,
            fallback=out,
            fallback_prefix=journal_stream_matches(env, out),
        )
    else:
        handler = _stream_handler(resolved, out, pre_chain)
    setattr(handler, _OUR_HANDLER, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OUR_HANDLER, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    logging.captureWarnings(True)

    structlog.configure(
        processors=[*pre_chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        # Not cached: a reload may change the level, and module-level loggers
        # must follow it.
        cache_logger_on_first_use=False,
    )
    return resolved

"""The error types of fsqd: one root, each child carrying a sysexits-style exit code.

Children also subclass the matching builtin so callers that only know Python's
own exceptions still catch them (``except ValueError`` catches bad data).
"""

from __future__ import annotations

EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78


class FsqdError(Exception):
    """Root of every error fsqd raises on purpose; ``str(e)`` is one line for the user."""

    exit_code = EX_SOFTWARE


class UsageError(FsqdError, ValueError):
    """The command line asks for something that cannot be done."""

    exit_code = EX_USAGE


class DataError(FsqdError, ValueError):
    """Input data is malformed: wrong shape, dtype, NaN/inf, bad rows, bad timestamps."""

    exit_code = EX_DATAERR


class NoInputError(FsqdError, FileNotFoundError):
    """A file that must exist does not (or cannot be read)."""

    exit_code = EX_NOINPUT


class ConfigError(FsqdError, ValueError):
    """A model card, package or configuration is inconsistent with itself or its ONNX."""

    exit_code = EX_CONFIG


class ModelError(ConfigError):
    """A model file is missing, unreadable, or does not match its card."""


class OutputError(FsqdError, OSError):
    """Writing results failed (disk full, closed pipe, permissions)."""

    exit_code = EX_IOERR


class BusyError(FsqdError, BlockingIOError):
    """Something another process holds (the state directory of a running ``fsqd run``);
    trying again later may work."""

    exit_code = EX_TEMPFAIL

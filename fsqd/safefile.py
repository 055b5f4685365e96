"""Read a file named by the user without hanging on it or running out of memory.

Every file fsqd reads by name (config, credentials, certificates, model files,
recordings) goes through here first: it must be a regular file (a FIFO would block the
reader for ever, ``/dev/zero`` never ends) no larger than a cap that suits what it is.
Files read whole are opened with ``O_NONBLOCK`` (so a FIFO swapped in after the check
still cannot block), checked again on the open descriptor, and read up to the cap.
Every problem is one line naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fsqd.errors import NoInputError

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
# What each kind of file may weigh at most; far above any real one.
CONFIG_MAX = 1 * MIB  # TOML configs, model cards, JSON normalisation files
SECRET_MAX = 64 * KIB  # a password or username file: one line
CERT_MAX = 1 * MIB  # a PEM bundle of CA certificates, a client certificate or key
MODEL_MAX = 2 * GIB  # an ONNX graph (protobuf's own limit) or a HEF
ARRAY_MAX = 2 * GIB  # a .npy array loaded whole (memory-mapped ones need no cap)

_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileProblem(NoInputError):
    """A named file that cannot be read as one: missing, not a regular file, too big."""


def kind_of(mode: int) -> str:
    """What a file is, for a message ("a FIFO", "a character device")."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _size(n: int) -> str:
    for unit, div in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= div:
            return f"{n / div:g} {unit}"
    return f"{n} bytes"


def _checked(path: Path, st: os.stat_result, limit: int | None, what: str) -> os.stat_result:
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(f"{path}: is {kind_of(st.st_mode)}, not a regular file ({what})")
    if limit is not None and st.st_size > limit:
        raise FileProblem(
            f"{path}: {_size(st.st_size)} is too large for {what} (at most {_size(limit)})"
        )
    return st


def regular_file(path: Path, *, what: str = "a file", limit: int | None = None) -> os.stat_result:
    """``path``'s stat when it is a regular file of at most ``limit`` bytes (symlinks
    followed); FileProblem otherwise. For files a library opens by name afterwards."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileProblem(f"{path}: no such file") from None
    except (OSError, ValueError) as e:  # ValueError: an embedded NUL
        raise FileProblem(f"{path}: cannot read: {_reason(e)}") from None
    return _checked(path, st, limit, what)


def read_bytes(path: Path, *, limit: int, what: str = "a file") -> bytes:
    """The whole of a regular file of at most ``limit`` bytes."""
    regular_file(path, what=what, limit=limit)  # refuse a device before opening it
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError) as e:
        raise FileProblem(f"{path}: cannot read: {_reason(e)}") from None
    try:
        _checked(path, os.fstat(fd), limit, what)  # the file opened is the file checked
        parts: list[bytes] = []
        left = limit + 1  # one byte more tells a file that grew past the cap
        while left > 0:
            piece = os.read(fd, min(left, MIB))
            if not piece:
                break
            parts.append(piece)
            left -= len(piece)
    except FileProblem:
        raise  # an OSError too: worded already
    except OSError as e:
        raise FileProblem(f"{path}: cannot read: {_reason(e)}") from None
    finally:
        os.close(fd)
    data = b"".join(parts)
    if len(data) > limit:
        raise FileProblem(f"{path}: grew past {_size(limit)} while read ({what})")
    return data


def read_text(path: Path, *, limit: int, what: str = "a file") -> str:
    """``read_bytes`` decoded as UTF-8 (a leading byte-order mark is dropped)."""
    data = read_bytes(path, limit=limit, what=what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileProblem(f"{path}: not UTF-8 text ({what})") from None


def _reason(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return "embedded NUL character" if "null" in str(e) else str(e)


__all__ = [
    "ARRAY_MAX",
    "CERT_MAX",
    "CONFIG_MAX",
    "MODEL_MAX",
    "SECRET_MAX",
    "FileProblem",
    "kind_of",
    "read_bytes",
    "read_text",
    "regular_file",
]

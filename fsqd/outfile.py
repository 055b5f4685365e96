"""Write a file named by the user (``--out``) without clobbering what is there.

Every command that writes a file goes through here. What the name points at decides how:

- a regular file, or nothing yet: written atomically. The bytes go to ``.NAME.partial``
  beside it and are renamed over NAME once complete and fsync'ed, so NAME is either the
  old file or the whole new one (an existing file keeps its permission bits).
- a FIFO or a device (``/dev/null``, a pipe to another program): opened and written in
  place, never replaced. A FIFO blocks until a reader opens it, as the shell's ``>`` does.
- a symlink: followed. The file it points to is written as above (atomically when it is
  a regular file), and the link stays a link, pointing where it did.
- a directory or a socket: refused in one line.

``Appender`` is the in-place writer for outputs that grow while fsqd runs (recordings):
each ``write`` lands whole or, on a failed write (a full disk, an I/O error), is cut off
again, so the file always ends at the last complete block or line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast

from fsqd.console import note
from fsqd.errors import FsqdError, OutputError
from fsqd.safefile import kind_of

PARTIAL = ".{}.partial"


@dataclass(frozen=True)
class Target:
    """Where an output's bytes go."""

    given: Path  # the name on the command line, for messages
    path: Path  # the file written: ``given`` with symlinks resolved
    exists: bool
    special: bool  # an existing FIFO or device: written in place, never replaced
    mode: int | None = None  # permission bits of an existing regular file

    @property
    def partial(self) -> Path:
        return self.path.with_name(PARTIAL.format(self.path.name))


def resolved(path: str | Path) -> Path:
    """``path`` with every symlink on the way followed: what is written, so that writing
    through a link never replaces the link (a dangling link names the file to create)."""
    return Path(os.path.realpath(path))


def output_target(path: str | Path) -> Target:
    """What writing ``path`` means (see the module's docstring); OutputError if it cannot
    be written at all."""
    given = Path(path)
    try:
        real = resolved(given)
        st = os.stat(real)
    except FileNotFoundError:
        return Target(given, real, exists=False, special=False)
    except (OSError, ValueError) as e:
        raise OutputError(f"{given}: cannot write: {_reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{given}: is a directory; --out takes a file name")
    if stat.S_ISSOCK(st.st_mode):
        raise OutputError(f"{given}: is {kind_of(st.st_mode)}; fsqd writes files, FIFOs, devices")
    if stat.S_ISREG(st.st_mode):
        return Target(given, real, exists=True, special=False, mode=stat.S_IMODE(st.st_mode))
    return Target(given, real, exists=True, special=True)


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return "embedded NUL character" if "null" in str(e) else str(e)


def _fail(t: Target, e: BaseException) -> OutputError:
    return OutputError(f"{t.given}: cannot write: {_reason(e)}")


def _open_special(t: Target) -> int:
    # No O_CREAT, no O_TRUNC: the node is there and stays what it is.
    return os.open(t.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)


def _open_partial(t: Target, make_parents: bool) -> int:
    if make_parents:
        t.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = t.partial
    # A leftover (or a planted symlink) goes first: O_EXCL then creates a fresh file.
    with suppress(FileNotFoundError):
        os.unlink(tmp)
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)


def _sync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not every filesystem lets a directory sync)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _output(
    path: str | Path, *, binary: bool, make_parents: bool, mode_bits: int | None
) -> Iterator[IO[Any]]:
    t = output_target(path)
    try:
        fd = _open_special(t) if t.special else _open_partial(t, make_parents)
    except OSError as e:
        raise _fail(t, e) from None
    fh: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
    try:
        yield fh
    except BaseException as e:
        _close_quietly(fh)
        if not t.special:
            if isinstance(e, FsqdError):
                # Keep what was written, and say where, on the error's own line.
                e.args = (f"{e} (partial output kept in {t.partial})",)
            elif not isinstance(e, BrokenPipeError):
                note(f"partial output kept in {t.partial}")
        raise
    try:
        fh.flush()
        if not t.special:
            os.fsync(fh.fileno())
            bits = mode_bits if mode_bits is not None else t.mode
            if bits is not None:
                os.fchmod(fh.fileno(), bits)
        fh.close()
        if not t.special:
            os.replace(t.partial, t.path)
            _sync_dir(t.path.parent)
    except OSError as e:
        _close_quietly(fh)
        kept = "" if t.special else f" (partial output kept in {t.partial})"
        raise OutputError(f"{t.given}: cannot write: {_reason(e)}{kept}") from None


def _close_quietly(fh: IO[Any]) -> None:
    # What could not be flushed is lost with the error already being reported; drop it
    # so the file object does not try again when it is collected.
    with suppress(OSError):
        fh.close()


def text_output(
    path: str | Path, *, make_parents: bool = False, mode_bits: int | None = None
) -> AbstractContextManager[TextIO]:
    """A UTF-8 text stream that becomes ``path`` when the block ends without an error.

    ``mode_bits`` sets the permission bits of a regular file written (e.g. 0o755 for a
    script); by default a replaced file keeps its own, a new one gets 0666 & ~umask.
    """
    return cast(
        AbstractContextManager[TextIO],
        _output(path, binary=False, make_parents=make_parents, mode_bits=mode_bits),
    )


def binary_output(
    path: str | Path, *, make_parents: bool = False, mode_bits: int | None = None
) -> AbstractContextManager[BinaryIO]:
    """``text_output`` for bytes."""
    return cast(
        AbstractContextManager[BinaryIO],
        _output(path, binary=True, make_parents=make_parents, mode_bits=mode_bits),
    )


# The system calls every Appender write and sync go through (tests inject I/O errors here).
_write: Callable[[int, bytes], int] = os.write
_fsync: Callable[[int], None] = os.fsync


class Appender:
    """An output written in place while it grows (a recording), one whole write at a time.

    A regular file is opened at ``keep`` bytes (cut there first: 0 starts it empty); a
    failed write (ENOSPC, EIO) cuts the file back to where that write began, so what is
    on disk always ends with a complete block. ``sync`` fsyncs a regular file; FIFOs and
    devices take the bytes as they come (no cut, no sync).
    """

    def __init__(
        self, path: str | Path | Target, *, keep: int = 0, make_parents: bool = True
    ) -> None:
        self.target = t = path if isinstance(path, Target) else output_target(path)
        self.regular = not t.special
        try:
            if t.special:
                self._fd = _open_special(t)
                self.offset = 0
            else:
                if make_parents:
                    t.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(t.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
                os.ftruncate(self._fd, keep)
                self.offset = os.lseek(self._fd, keep, os.SEEK_SET)
        except OSError as e:
            raise _fail(t, e) from None
        self.closed = False

    @property
    def path(self) -> Path:
        return self.target.given

    def write(self, data: bytes) -> None:
        done = 0
        try:
            while done < len(data):
                done += _write(self._fd, data[done:])  # data[0:] is data itself: no copy
        except OSError as e:
            if self.regular:
                self._cut_back()
            raise _fail(self.target, e) from None
        self.offset += done

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._fd, self.offset)
            os.lseek(self._fd, self.offset, os.SEEK_SET)
        except OSError:
            pass  # the reader stops at the torn block or line in any case

    def sync(self) -> None:
        if not self.regular:
            return
        try:
            _fsync(self._fd)
        except OSError as e:
            raise _fail(self.target, e) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        os.close(self._fd)  # nothing is buffered here: every write went to the kernel


__all__ = [
    "Appender",
    "Target",
    "binary_output",
    "output_target",
    "resolved",
    "text_output",
]

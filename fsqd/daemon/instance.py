"""One ``fsqd run`` per state directory: an exclusive ``flock`` on ``<state_dir>/fsqd.lock``.

Two daemons on one state directory would share the spool and the broker client id: each
kicks the other off the broker and their spool rows mix. The lock is taken before
anything else the run opens and held (through the open file) until the process ends; the
kernel releases it when the process dies, even by SIGKILL, so a stale file never blocks a
restart. The file holds the holder's pid, so the second instance can name it.

Commands that only read (``record``, ``replay``, ``tail``) never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from fsqd.errors import BusyError, OutputError

LOCK_FILE = "fsqd.lock"


class StateDirLock:
    """``with StateDirLock(state_dir):`` holds the lock for the block; BusyError (exit 75)
    naming the holder's pid when another process has it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot open the lock file: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = (
                f"pid {holder}"
                if holder is not None
                else "a process that has not written its pid yet"
            )
            raise BusyError(
                f"{self.state_dir}: another fsqd run ({who}) uses this state directory; "
                "one instance per state directory"
            ) from None
        except OSError as e:
            os.close(fd)
            raise OutputError(f"{self.path}: cannot lock: {e.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the pid goes unnamed
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale pid for the next reader
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

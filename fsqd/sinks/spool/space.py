"""How much disk the spool may use, and the reserve that keeps it able to delete.

The byte budget (``[mqtt] spool_max_bytes``) defaults to a share of the space the spool
could have at start: the free space of the state directory's filesystem plus what the
spool's own files already hold (so a restart during an outage does not shrink it).

SQLite in WAL mode needs free disk to *delete*: a delete appends pages to the WAL. A
filesystem filled by someone else (logs, another program) would leave acknowledged rows
on disk, to be sent again after every restart. The reserve is a preallocated file beside
the spool; when a write fails for lack of space, the spool frees it, which gives SQLite
room to delete, checkpoint and truncate the WAL. It is made again once space returns.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from fsqd.config.mqtt import SPOOL_MIN_BYTES

AUTO_SHARE = 0.25  # of (free space + the spool's own files) at start
AUTO_MAX_BYTES = 256 * 1024 * 1024
RESERVE_MIN_BYTES = 128 * 1024
RESERVE_FLOOR_BYTES = 32 * 1024  # on a filesystem too small for the minimum
RESERVE_MAX_BYTES = 8 * 1024 * 1024

_SQLITE_FULL = 13
_SQLITE_IOERR = 10


def own_files(path: Path) -> list[Path]:
    """The spool's files: the database, its WAL and shared-memory index, the reserve."""
    return [path.with_name(path.name + s) for s in ("", "-wal", "-shm", ".reserve")]


def files_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += p.stat().st_blocks * 512  # what the files take, holes not counted
    return total


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer can still use on ``directory``'s filesystem."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def auto_max_bytes(path: Path) -> int:
    """The default byte budget for a spool at ``path`` (its directory must exist)."""
    room = free_bytes(path.parent) + files_bytes(own_files(path))
    return int(min(AUTO_MAX_BYTES, max(SPOOL_MIN_BYTES, room * AUTO_SHARE)))


def total_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_blocks * st.f_frsize


def reserve_bytes(max_bytes: int, fs_bytes: int) -> int:
    """An eighth of the budget within bounds, and never over an eighth of the filesystem."""
    size = min(RESERVE_MAX_BYTES, max(RESERVE_MIN_BYTES, max_bytes // 8))
    return max(RESERVE_FLOOR_BYTES, min(size, fs_bytes // 8))


def is_disk_full(e: sqlite3.Error, directory: Path, margin: int) -> bool:
    """SQLite ran out of disk: SQLITE_FULL (what ENOSPC on a write becomes), or an I/O
    error while the filesystem has less than ``margin`` bytes free (growing the -shm
    index on a full disk is SQLITE_IOERR_SHMSIZE, not SQLITE_FULL)."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return True
    if code != _SQLITE_IOERR:
        return False
    try:
        return free_bytes(directory) < margin
    except OSError:
        return False


class Reserve:
    """A preallocated file of ``size`` bytes that is freed when the disk is full."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def present(self) -> bool:
        try:
            return self.path.stat().st_blocks * 512 >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Make the reserve if it is missing; False when there is no room for it now."""
        if self.present():
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            # Real blocks, not a sparse file: the point is to hold space.
            os.posix_fallocate(fd, 0, self.size)
            return True
        except OSError:
            os.close(fd)
            fd = -1
            self.release()
            return False
        finally:
            if fd >= 0:
                os.close(fd)

    def release(self) -> bool:
        """Free the reserve; True when there was one."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True

"""Small and full filesystems: a state directory or an output on a disk that ran out.

``tmpfs(where, options)`` mounts a tmpfs for a test (root only: the test is skipped, saying
why, where mounting is not allowed); the ``small_fs`` fixture (conftest.py) is a 1 MiB one.
``fill_up`` takes what is left of a filesystem, as a growing log file of another program would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (created) with mount ``options`` ("size=64k", "ro,...")."""
    where.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs ({options}) needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "fsqd-test", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}): {r.stderr.strip() or r.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def fill_up(directory: Path) -> Path:
    """Take every free byte of ``directory``'s filesystem with one file; returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = b"\0" * 4096
    try:
        while True:
            os.write(fd, block)
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)
    assert free_bytes(directory) == 0
    return filler

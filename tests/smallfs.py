"""A filesystem that is full: for the state directory of a node whose disk ran out.

The ``small_fs`` fixture (conftest.py) mounts a 1 MiB tmpfs; ``fill_up`` takes what is
left of it, as a growing log file of another program would.
"""

from __future__ import annotations

import os
from pathlib import Path


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

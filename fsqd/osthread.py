"""Native thread names: a Python thread's name in /proc/PID/task/*/comm (top -H, ps -L).

CPython (before 3.14) names only its ``threading.Thread`` objects; the kernel sees every
thread of the process as ``python``. Naming the long-lived ones lets their CPU be told
apart from /proc (``tools/bench_live.py``) and in ``top -H`` on a device.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from functools import partial

PR_SET_NAME = 15  # prctl(2)
MAX_NAME = 15  # bytes the kernel keeps


def name_os_thread(name: str) -> None:
    """Name the calling thread for the kernel. Linux only; elsewhere nothing happens."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:MAX_NAME], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def named_executor(name: str, workers: int = 1) -> ThreadPoolExecutor:
    """A thread pool whose threads carry ``name`` for the kernel as well as for Python."""
    return ThreadPoolExecutor(
        workers, thread_name_prefix=name, initializer=partial(name_os_thread, name)
    )


__all__ = ["name_os_thread", "named_executor"]

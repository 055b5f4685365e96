"""Cost of one log record through configure_logging's outputs (JSON lines, journal).

    PYTHONPATH=. python tools/bench_logging.py [--records N]

The journal is a local AF_UNIX datagram socket drained by a thread (the native protocol,
as without systemd-python); JSON goes to an in-memory stream. Also the cost of a call
below the configured level, which is what a DEBUG line in a hot path costs at INFO.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import socket
import tempfile
import threading
import time
from pathlib import Path

import structlog

from fsqd.daemon.logging import configure_logging


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    n = ap.parse_args().records

    path = Path(tempfile.mkdtemp()) / "journal.socket"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sink.settimeout(0.2)
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                sink.recv(1 << 20)

    threading.Thread(target=drain, daemon=True).start()
    log = structlog.get_logger("bench")
    cases = [
        ("json", "info", {}),
        ("journal", "info", {"journal_socket": str(path)}),
        ("json", "warning", {}),
    ]
    for fmt, level, kw in cases:
        configure_logging(fmt, level, stream=io.StringIO(), environ={}, **kw)
        t0 = time.perf_counter()
        for i in range(n):
            log.info("stats", sensor="collar", seq=i, latency_ms=3.25, backend="onnx")
        per = (time.perf_counter() - t0) / n * 1e6
        what = f"{fmt} at {level}" + (" (filtered out)" if level != "info" else "")
        print(f"{what:32s} {per:7.2f} us/record")
    done.set()


if __name__ == "__main__":
    main()

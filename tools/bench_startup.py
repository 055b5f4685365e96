"""Start-up cost of the command line: `fsqd run` until its first code, and `fsqd check-config`.

Each run is a fresh interpreter (``python -m fsqd``), as systemd starts the daemon:
  run           seconds from spawn to the first JSON line on stdout (the first code),
                and the process's peak RSS (``wait4``'s ru_maxrss), with
                ``run --config CFG --duration 5s --stdout``
  check-config  seconds from spawn to exit, and peak RSS

Prints min and median of each over ``--runs`` runs. The code measured is whatever
``python -c 'import fsqd'`` finds (set PYTHONPATH to measure another checkout).

  python tools/bench_startup.py [--config configs/demo.toml] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Exit status and peak RSS in KiB of a child (its own rusage, not all children's)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss


def run_once(config: Path, duration: str) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "fsqd", "run", "--config", str(config)]
    cmd += ["--duration", duration, "--stdout"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    t_first = time.perf_counter() - t0
    proc.stdout.read()  # drain until it exits
    code, rss = _wait(proc)
    if code != 0 or not first:
        raise SystemExit(f"fsqd run failed (exit {code}): {' '.join(cmd)}")
    return t_first, rss


def check_once(config: Path) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "fsqd", "check-config", str(config)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    code, rss = _wait(proc)
    took = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"fsqd check-config failed (exit {code}): {' '.join(cmd)}")
    return took, rss


def _summary(name: str, samples: list[tuple[float, int]]) -> str:
    secs = [s for s, _ in samples]
    rss = [r / 1024 for _, r in samples]
    return (
        f"{name:<13} time min {min(secs):.3f} s, median {statistics.median(secs):.3f} s; "
        f"peak RSS min {min(rss):.1f} MiB, median {statistics.median(rss):.1f} MiB "
        f"({len(samples)} runs)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.toml")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", default="5s", help="fsqd run --duration (default 5s)")
    args = p.parse_args()
    import fsqd

    print(f"fsqd from {Path(fsqd.__file__).parent}, config {args.config}")
    checks = [check_once(args.config) for _ in range(args.runs)]
    runs = [run_once(args.config, args.duration) for _ in range(args.runs)]
    print(_summary("check-config", checks))
    print(_summary("run (1st code)", runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

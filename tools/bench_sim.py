"""Benchmark the IMU simulator: `fsqd simulate` for 1 h and 24 h, and the per-sample cost
of ``Simulator.read(n)`` at the start versus after a simulated day.

Each `fsqd simulate` runs as its own process (launch to exit, as a user sees it); peak RSS
is that process's ru_maxrss. The CSV goes to /dev/null unless ``--dir`` is given (24 h at
100 Hz is about 1 GB of text).

    PYTHONPATH=$PWD .venv/bin/python tools/bench_sim.py [--durations 1h,24h] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fsqd.sim import SimConfig, Simulator


def run_simulate(duration: str, out: str, rate: float) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one `fsqd simulate` process."""
    cmd = [sys.executable, "-m", "fsqd", "simulate", "--duration", duration, "--out", out]
    cmd += ["--rate", f"{rate:g}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"fsqd simulate --duration {duration} failed: {err.strip()}")
    return wall, usage.ru_maxrss / 1024  # Linux reports kB


def per_sample_us(sim: Simulator, n: int, reads: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reads):
        sim.read(n)
    return (time.perf_counter() - t0) / (n * reads) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--durations", default="1h,24h", help="comma-separated, e.g. 1h,24h")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--dir", type=Path, default=None, help="write the CSVs here, not /dev/null")
    ap.add_argument("--skip-cli", action="store_true", help="only the Simulator.read costs")
    args = ap.parse_args()

    if not args.skip_cli:
        for d in args.durations.split(","):
            out = "/dev/null" if args.dir is None else str(args.dir / f"sim_{d}.csv")
            wall, rss = run_simulate(d, out, args.rate)
            what = f"fsqd simulate --duration {d} at {args.rate:g} Hz"
            print(f"{what}: {wall:.1f} s, peak RSS {rss:.0f} MB")

    sim = Simulator(SimConfig(rate_hz=args.rate, seed=0))
    day = round(86400 * args.rate)
    for label, n, reads in (
        ("read(1)", 1, 2000),
        ("read(100)", 100, 200),
        ("read(4096)", 4096, 20),
    ):
        fresh = Simulator(SimConfig(rate_hz=args.rate, seed=0))
        start = per_sample_us(fresh, n, reads)
        # Fast-forward the shared simulator to one simulated day, then measure the same read.
        left = day - sim.samples_read
        while left > 0:
            left -= len(sim.read(min(65536, left)).t)
        late = per_sample_us(sim, n, reads)
        print(
            f"Simulator.{label}: {start:.2f} us/sample at the start, {late:.2f} us/sample after "
            f"a simulated day ({sim.bouts_held} bouts held)"
        )


if __name__ == "__main__":
    main()

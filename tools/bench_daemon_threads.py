"""Where the daemon's CPU goes, per thread: event loop, acquisition, inference.

Runs the daemon in this process (JSON lines to nowhere) with the register-level
emulated LSM6DSOX + LIS3MDL (``--source emulated``, the emulator runs inside the
acquisition thread) or the simulator fed directly (``--source sim``, a cheap stand-in
for a real I2C bus), and reads each thread's user+system time from /proc.

    PYTHONPATH=$PWD python tools/bench_daemon_threads.py --source emulated --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from fsqd.clock import SystemClock
from fsqd.config import load_config
from fsqd.daemon import Acquisition, Daemon, open_source
from fsqd.daemon.clock import WallClock
from fsqd.sinks.jsonl import JsonLinesSink
from fsqd.testing import SimulatedAcquisition


def thread_cpu(tid: int) -> float:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", choices=["emulated", "sim"], default="emulated")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    ap.add_argument("--hop", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "fsqd.toml"
        cfg_path.write_text(
            f"[window]\nhop = {args.hop}\n[logging]\nlevel = 'warning'\n"
            '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
        )
        config = load_config(cfg_path)
    clock = SystemClock()
    acq: Acquisition = (
        open_source(config, clock) if args.source == "emulated" else SimulatedAcquisition(chunk=2)
    )
    warmup = 3.0
    daemon = Daemon(
        config,
        acquisition=acq,
        clock=WallClock(base=clock.epoch_offset),
        sinks=[JsonLinesSink(io.StringIO())],
        duration_s=warmup + args.duration + 1,
        handle_signals=False,
    )
    shares: dict[str, float] = {}

    def measure() -> None:
        time.sleep(warmup)
        me = threading.current_thread()
        start = {
            t.name: (t.native_id, thread_cpu(t.native_id))
            for t in threading.enumerate()
            if t.native_id is not None and t is not me
        }
        time.sleep(args.duration)
        for name, (tid, c0) in start.items():
            shares[name] = 100 * (thread_cpu(tid) - c0) / args.duration

    sampler = threading.Thread(target=measure, name="sampler")
    sampler.start()
    asyncio.run(daemon.run())
    sampler.join()
    print(f"source {args.source}, hop {args.hop}, {args.duration:g} s, {os.cpu_count()} cores")
    names = {"MainThread": "event loop (windows, payloads, sinks)"}
    for name, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {pct:5.1f} % of one core  {names.get(name, name)}")
    print(f"  {sum(shares.values()):5.1f} % total; {daemon.seq} codes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The daemon's memory over a long run: RSS every 30 s, broker outages, a fitted slope.

Runs ``python -m fsqd run`` (emulated LSM6DSOX at 104 Hz -> 100 Hz, hop 10) against a
Mosquitto this script starts on a free loopback port, for ``--minutes``, with a subscriber
on the codes. Phases: the broker up; from each ``--outage-at`` minute (repeat the option
for several) for ``--outage-min`` minutes the broker stopped (codes go to the spool,
paho's queue and the reconnect loop run), then up again (the spool drains). The stats
period is ``--stats-s``. Every ``--every`` seconds it samples VmRSS, VmHWM, threads and
open fds from /proc and prints a line; at the end, the least-squares slope of RSS in
MB/hour over the samples after ``--settle-min``.

``--tracemalloc N``: the daemon runs with tracemalloc (N frames) and writes the top
differences between a snapshot at ``--settle-min`` and one at the end to
``--trace-out`` (tracemalloc sees Python allocations only: onnxruntime's and glibc's own
arenas show in RSS, not there). The environment passes through, e.g. ``MALLOC_ARENA_MAX=2``.

    PYTHONPATH=$PWD python tools/bench_memory.py --minutes 20 --outage-at 12 --outage-min 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_daemon import ROOT, config_text, start_mosquitto
from bench_live import Subscriber

# Run the daemon with tracemalloc on; at SIGUSR1 take a snapshot, at SIGUSR2 write the
# top differences from the first snapshot.
TRACED = """
import signal, sys, tracemalloc
tracemalloc.start(int(sys.argv.pop(1)))
out = sys.argv.pop(1)
first = []
def snap(*_):
    first[:] = [tracemalloc.take_snapshot()]
def diff(*_):
    now = tracemalloc.take_snapshot()
    stats = now.compare_to(first[0], "traceback")[:25] if first else now.statistics("lineno")[:25]
    with open(out, "w") as f:
        f.write(f"traced now {tracemalloc.get_traced_memory()[0] / 1e6:.1f} MB\\n")
        for s in stats:
            f.write(f"{s.size_diff / 1e6:+.2f} MB ({s.count_diff:+d}) {s.size / 1e6:.2f} MB\\n")
            for line in s.traceback.format()[-8:]:
                f.write("    " + line + "\\n")
signal.signal(signal.SIGUSR1, snap)
signal.signal(signal.SIGUSR2, diff)
from fsqd.cli import main
sys.exit(main(sys.argv[1:]))
"""


def proc_status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
        elif key == "Threads":
            out[key] = int(value)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--settle-min", type=float, default=10.0, help="slope from here on")
    ap.add_argument(
        "--outage-at", type=float, action="append", default=[], help="minute the broker stops"
    )
    ap.add_argument("--outage-min", type=float, default=2.0)
    ap.add_argument("--stats-s", type=float, default=10.0, help="[stats] interval_s")
    ap.add_argument("--tracemalloc", type=int, default=0, help="frames (0: off)")
    ap.add_argument("--trace-out", type=Path, default=Path("tracemalloc-diff.txt"))
    ap.add_argument("--root", type=Path, default=ROOT, help="the fsqd tree to measure")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fsqd-bench-mem-") as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        sub = Subscriber(port)
        sub.connected.wait(10)
        cfg = work / "bench.toml"
        text = config_text(port, work / "state", 10, 100.0, None, "lsm6dsox")
        cfg.write_text(text.replace("interval_s = 10", f"interval_s = {args.stats_s:g}"))
        env = {**os.environ, "PYTHONPATH": str(args.root)}
        run = ["run", "--config", str(cfg), "--duration", f"{args.minutes * 60 + 30:g}s"]
        if args.tracemalloc:
            cmd = [sys.executable, "-c", TRACED, str(args.tracemalloc)]
            cmd += [str(args.trace_out.resolve()), *run]
        else:
            cmd = [sys.executable, "-m", "fsqd", *run]
        daemon = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work
        )
        threading.Thread(target=lambda: [None for _ in daemon.stderr], daemon=True).start()  # type: ignore[union-attr]
        t0 = time.monotonic()
        samples: list[tuple[float, float]] = []
        phase = "up"
        print("  min  phase   RSS MB  peak MB  threads  fds  codes")
        snapped = False
        outages, back_at = sorted(args.outage_at), 0.0
        while (m := (time.monotonic() - t0) / 60) < args.minutes and daemon.poll() is None:
            if phase != "outage" and outages and m >= outages[0]:
                broker.terminate()
                broker.wait()
                phase, back_at = "outage", outages.pop(0) + args.outage_min
            elif phase == "outage" and m >= back_at:
                broker = restart_broker(work, port)
                phase = "up again"
            if args.tracemalloc and not snapped and m >= args.settle_min:
                daemon.send_signal(10)  # SIGUSR1: the reference snapshot
                snapped = True
            s = proc_status(daemon.pid)
            samples.append((m, s["VmRSS"]))
            print(
                f"{m:5.1f}  {phase:<8} {s['VmRSS']:7.1f}  {s['VmHWM']:7.1f}  "
                f"{s['Threads']:7.0f}  {s['fds']:3.0f}  {len(sub.latency):5d}",
                flush=True,
            )
            time.sleep(args.every)
        if args.tracemalloc:
            daemon.send_signal(12)  # SIGUSR2: the difference
            time.sleep(5)
        daemon.terminate()
        daemon.wait(timeout=60)
        sub.close()
        broker.terminate()
        broker.wait()
    late = np.array([(m, r) for m, r in samples if m >= args.settle_min])
    if len(late) >= 3:
        slope = np.polyfit(late[:, 0] / 60, late[:, 1], 1)[0]
        print(
            f"RSS slope after minute {args.settle_min:g}: {slope:+.2f} MB/hour "
            f"({len(late)} samples, {late[0, 1]:.1f} -> {late[-1, 1]:.1f} MB)"
        )
    print(f"peak RSS {max(r for _, r in samples):.1f} MB (sampled)")
    return 0


def restart_broker(work: Path, port: int) -> subprocess.Popen[bytes]:
    """Mosquitto again on the same port (the daemon reconnects to it)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(work / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


if __name__ == "__main__":
    sys.exit(main())

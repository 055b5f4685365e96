"""The live path, several runs: `fsqd run` on an emulated chip, a local broker, a subscriber.

Each run starts Mosquitto on a free loopback port, subscribes to the node's ``codes`` and
``stats`` topics, and runs ``python -m fsqd run`` (emulated LSM6DSOX, 104 Hz resampled to
the bundled model's 100 Hz, hop 10 unless told otherwise) for ``--duration`` seconds after a
warm-up. Per run it prints:

- end-to-end latency as a subscriber sees it (receive time - the message's ``t_end``, the
  wall time of the window's last sample): p50 / p99 / max;
- the daemon's CPU in % of one core (user + system from /proc/PID/stat, after warm-up),
  split by thread name (/proc/PID/task/*/comm): ``fsqd-emulator`` (the emulated chip's
  simulation, ahead of time), ``fsqd-acquire`` (the acquisition thread, with the register
  emulator's answers to its transfers inside), and the rest (the daemon proper: event loop,
  inference, MQTT);
- peak RSS (VmHWM) and steady RSS (median VmRSS over the second half of the run);
- the daemon's own stage histograms (its ``stats`` messages every 10 s, those inside the
  measured span): median p50 / worst p99 / max per stage, which say where a run's p99 went.

Then the ranges over the runs. The machine is shared: compare ranges, not single runs.

    PYTHONPATH=$PWD python tools/bench_live.py --runs 5 --duration 60
    PYTHONPATH=$PWD python tools/bench_live.py --runs 3 --duration 60 --poll-ms 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_daemon import ROOT, config_text, cpu_seconds, peak_rss_mb, start_mosquitto

CLK_TCK = os.sysconf("SC_CLK_TCK")
STAGES = ("acquire", "resample", "window_ready", "infer", "publish", "e2e")


class Subscriber:
    """paho subscriber: receive time - t_end per code; the last stats message."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.latency: list[float] = []
        self.stats: list[dict[str, Any]] = []
        self.connected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fsqd-bench-live")

        def on_connect(cl: Any, *_: Any) -> None:
            cl.subscribe([("fsqd/bench/codes", 1), ("fsqd/bench/stats", 1)])
            self.connected.set()

        c.on_connect = on_connect
        c.on_message = self._message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _message(self, client: object, userdata: object, msg: Any) -> None:
        now = time.time()
        m = json.loads(msg.payload)
        if msg.topic.endswith("/codes"):
            self.latency.append(now - m["t_end"])
        else:
            self.stats.append(m)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (threads of one name summed)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended between the listing and the read
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Run:
    p50: float
    p99: float
    max: float
    codes: int
    cpu: float
    acquire_cpu: float
    emulator_cpu: float
    peak_rss: float
    steady_rss: float
    stages: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def proper(self) -> float:
        """The daemon without the emulated chip and the acquisition thread."""
        return self.cpu - self.acquire_cpu - self.emulator_cpu


def one_run(args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory(prefix="fsqd-bench-live-") as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        sub = Subscriber(port)
        try:
            if not sub.connected.wait(10):
                raise SystemExit("subscriber did not connect")
            cfg = work / "bench.toml"
            cfg.write_text(
                config_text(port, work / "state", args.hop, args.rate, args.poll_ms, args.driver)
            )
            env = {**os.environ, "PYTHONPATH": str(args.root)}
            cmd = [sys.executable, "-m", "fsqd", "run", "--config", str(cfg)]
            cmd += ["--duration", f"{args.duration + args.warmup + 8:g}s"]
            if args.py_spy:  # sampled from its start; CPU and RSS are py-spy's child's
                spy = [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--gil",
                    "--nonblocking",  # sampled without stopping the daemon: its CPU stays its own
                    "--rate",
                    str(args.py_spy_rate),
                    *(["--format", "raw"] if args.py_spy.suffix == ".txt" else []),
                ]
                cmd = [*spy, "-o", str(args.py_spy.resolve()), "--", *cmd]
            daemon = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work
            )
            err: list[bytes] = []
            threading.Thread(target=lambda: err.extend(daemon.stderr), daemon=True).start()  # type: ignore[arg-type]
            t0 = time.monotonic()
            while not sub.latency and time.monotonic() - t0 < 60 and daemon.poll() is None:
                time.sleep(0.05)
            if not sub.latency:
                daemon.kill()
                sys.stderr.write(b"".join(err).decode(errors="replace")[-3000:])
                raise SystemExit("no codes arrived")
            time.sleep(args.warmup)
            pid = daemon.pid
            if args.py_spy:  # measure the daemon, not py-spy
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                pid = int(children[0])
            first = len(sub.latency)
            cpu0, threads0, w0 = cpu_seconds(pid), thread_cpu(pid), time.monotonic()
            wall0 = time.time()
            rss: list[float] = []
            while time.monotonic() - w0 < args.duration:
                rss.append(rss_mb(pid))
                time.sleep(1.0)
            cpu1, threads1, w1 = cpu_seconds(pid), thread_cpu(pid), time.monotonic()
            wall1 = time.time()
            peak = peak_rss_mb(pid)
            last = len(sub.latency)
            daemon.wait(timeout=60)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                s.get("uptime_s", 0) > args.duration for s in sub.stats
            ):
                time.sleep(0.05)
        finally:
            sub.close()
            broker.terminate()
            broker.wait()
    lat = np.array(sub.latency[first:last]) * 1000
    acq = threads1.get("fsqd-acquire", 0.0) - threads0.get("fsqd-acquire", 0.0)
    emu = threads1.get("fsqd-emulator", 0.0) - threads0.get("fsqd-emulator", 0.0)
    # The stats periods (10 s) inside the measured span: where each stage's time went.
    periods = [
        m["latency_us"]
        for m in sub.stats
        if m["t"] - m["interval_s"] >= wall0 - 1 and m["t"] <= wall1 + 1
    ]
    return Run(
        p50=float(np.percentile(lat, 50)),
        p99=float(np.percentile(lat, 99)),
        max=float(lat.max()),
        codes=len(lat),
        cpu=100 * (cpu1 - cpu0) / (w1 - w0),
        acquire_cpu=100 * acq / (w1 - w0),
        emulator_cpu=100 * emu / (w1 - w0),
        peak_rss=peak,
        steady_rss=statistics.median(rss[len(rss) // 2 :]),
        stages={
            k: {
                "p50": statistics.median(p[k]["p50"] for p in periods),
                "p99": max(p[k]["p99"] for p in periods),
                "max": max(p[k]["max"] for p in periods),
            }
            for k in STAGES
            if periods and all(k in p for p in periods)
        },
    )


def span(values: list[float], fmt: str = ".1f") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}" if lo == hi else f"{lo:{fmt}}-{hi:{fmt}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds measured per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after the first code")
    ap.add_argument("--hop", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0, help="the sensor's rate_hz")
    ap.add_argument(
        "--poll-ms", type=float, default=None, help="the sensor's poll_ms (default: unset)"
    )
    ap.add_argument("--driver", default="lsm6dsox")
    ap.add_argument("--root", type=Path, default=ROOT, help="the fsqd tree to measure")
    ap.add_argument("--json", type=Path, help="also write the runs here")
    ap.add_argument("--py-spy-rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument(
        "--py-spy",
        type=Path,
        help="record a flame graph of the daemon, threads holding the GIL (SVG; .txt: "
        "collapsed stacks)",
    )
    args = ap.parse_args()

    poll = "unset" if args.poll_ms is None else f"{args.poll_ms:g} ms"
    print(
        f"fsqd run, mqtt, emulated {args.driver} rate_hz {args.rate:g}, hop {args.hop}, "
        f"poll_ms {poll}, {args.runs} x {args.duration:g} s, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    runs: list[Run] = []
    for i in range(args.runs):
        r = one_run(args)
        runs.append(r)
        print(
            f"run {i + 1}: {r.codes} codes, e2e p50 {r.p50:.1f} p99 {r.p99:.1f} "
            f"max {r.max:.1f} ms; "
            f"CPU {r.cpu:.2f} % (emulator {r.emulator_cpu:.2f}, acquisition {r.acquire_cpu:.2f}, "
            f"daemon proper {r.proper:.2f} %); RSS peak {r.peak_rss:.0f} steady "
            f"{r.steady_rss:.0f} MB; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print(
            "  stages (10 s periods: median p50 / worst p99 / max, ms): "
            + ", ".join(
                f"{k} {s['p50'] / 1000:.1f}/{s['p99'] / 1000:.1f}/{s['max'] / 1000:.1f}"
                for k, s in r.stages.items()
            ),
            flush=True,
        )
    print(
        f"ranges over {len(runs)} runs: e2e p50 {span([r.p50 for r in runs])}, "
        f"p99 {span([r.p99 for r in runs])}, max {span([r.max for r in runs])} ms; "
        f"CPU {span([r.cpu for r in runs], '.2f')} % "
        f"(emulator {span([r.emulator_cpu for r in runs], '.2f')}, "
        f"acquisition {span([r.acquire_cpu for r in runs], '.2f')}, "
        f"daemon proper {span([r.proper for r in runs], '.2f')} %); "
        f"RSS peak {span([r.peak_rss for r in runs], '.0f')}, "
        f"steady {span([r.steady_rss for r in runs], '.0f')} MB"
    )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

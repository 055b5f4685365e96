"""Benchmark `fsqd run` as a user runs it: emulated sensor at 100 Hz, hop 10, a local broker.

Starts Mosquitto on a free loopback port, subscribes to the node's ``codes`` topic,
runs ``python -m fsqd run`` for ``--duration`` seconds, and reports:

- end-to-end latency as a subscriber sees it: receive time minus the message's ``t_end``
  (the wall-clock time of the window's last sample), p50 / p99 / max;
- the daemon's CPU use in % of one core (user + system, from /proc, after start-up);
- its peak RSS (VmHWM).

``--transport stdout`` measures the same through the JSON-lines sink (no broker).
Targets on a 2-core x86 machine: p99 < 30 ms, CPU < 5 %, RSS < 150 MB.

    PYTHONPATH=$PWD python tools/bench_daemon.py --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_mosquitto(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def config_text(
    port: int | None,
    state: Path,
    hop: int,
    rate: float,
    poll_ms: float | None,
    driver: str = "lsm6dsox",
) -> str:
    """The benchmarks' daemon config (no [mqtt] without a port; ``poll_ms`` None: the
    driver's default poll)."""
    mqtt = "" if port is None else f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
    poll = "" if poll_ms is None else f"poll_ms = {poll_ms:g}\n"
    return f"""
[window]
hop = {hop}
[service]
node_id = "bench"
state_dir = "{state}"
[stats]
interval_s = 10
[logging]
format = "json"
{mqtt}
[[sensor]]
name = "bench"
driver = "{driver}"
bus = "emulated"
rate_hz = {rate:g}
{poll}"""


class Subscriber:
    """paho subscriber on fsqd/bench/codes: receive time - t_end per message."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.latency: list[float] = []
        self.seqs: list[int] = []
        self.connected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fsqd-bench-sub")
        c.on_connect = lambda cl, *_: (
            cl.subscribe("fsqd/bench/codes", qos=1),
            self.connected.set(),
        )
        c.on_message = self._message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _message(self, client: object, userdata: object, msg: object) -> None:
        now = time.time()
        m = json.loads(msg.payload)  # type: ignore[attr-defined]
        self.latency.append(now - m["t_end"])
        self.seqs.append(m["seq"])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    ap.add_argument("--hop", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--poll-ms", type=float, default=20.0, help="sensor FIFO burst period")
    ap.add_argument(
        "--driver",
        default="lsm6dsox",
        help="emulated chip: lsm6dsox (104 Hz, resampled to the model's 100 Hz), "
        "mpu6500 or icm20948 (100 Hz, no resampling)",
    )
    ap.add_argument("--transport", choices=["mqtt", "stdout"], default="mqtt")
    ap.add_argument(
        "--sim-source",
        action="store_true",
        help="feed the simulator directly (tests/sim_daemon.py) instead of the emulated I2C chip",
    )
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds after the first code")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fsqd-bench-") as tmp:
        work = Path(tmp)
        broker = sub = None
        port = None
        if args.transport == "mqtt":
            broker, port = start_mosquitto(work)
            sub = Subscriber(port)
            sub.connected.wait(10)
        cfg = work / "bench.toml"
        text = config_text(port, work / "state", args.hop, args.rate, args.poll_ms, args.driver)
        cfg.write_text(text)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        entry = [str(ROOT / "tests" / "sim_daemon.py")] if args.sim_source else ["-m", "fsqd"]
        run = [sys.executable, *entry, "run", "--config", str(cfg)]
        run += ["--duration", f"{args.duration + args.warmup + 5:g}s"]
        if args.transport == "stdout":
            run.append("--stdout")
        daemon = subprocess.Popen(
            run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=work
        )
        lat_stdout: list[float] = []
        err_lines: list[bytes] = []
        threading.Thread(target=lambda: err_lines.extend(daemon.stderr), daemon=True).start()  # type: ignore[arg-type]

        def read_stdout() -> None:
            for line in daemon.stdout:  # type: ignore[union-attr]
                now = time.time()
                lat_stdout.append(now - json.loads(line)["t_end"])

        threading.Thread(target=read_stdout, daemon=True).start()
        latencies = lat_stdout if sub is None else sub.latency
        t0 = time.monotonic()
        while not latencies and time.monotonic() - t0 < 60 and daemon.poll() is None:
            time.sleep(0.05)
        if not latencies:
            daemon.kill()
            sys.stderr.write(b"".join(err_lines).decode(errors="replace")[-3000:])
            raise SystemExit("no codes arrived")
        time.sleep(args.warmup)
        first = len(latencies)
        cpu0, w0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.duration)
        cpu1, w1 = cpu_seconds(daemon.pid), time.monotonic()
        rss = peak_rss_mb(daemon.pid)
        last = len(latencies)
        daemon.wait(timeout=60)
        if sub is not None:
            sub.close()
        if broker is not None:
            broker.terminate()
            broker.wait()
        lat = np.array(latencies[first:last]) * 1000
        cpu = 100 * (cpu1 - cpu0) / (w1 - w0)
        source = "simulator source" if args.sim_source else f"emulated sensor {args.rate:g} Hz"
        print(
            f"fsqd run, {args.transport}, {source}, hop {args.hop}, "
            f"poll {args.poll_ms:g} ms, {args.driver}, {os.cpu_count()} cores"
        )
        print(f"measured {w1 - w0:.1f} s after {args.warmup:g} s warm-up: {len(lat)} codes")
        print(
            f"end-to-end (receive - t_end): p50 {np.percentile(lat, 50):.1f} ms, "
            f"p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms"
        )
        print(f"daemon CPU {cpu:.2f} % of one core, peak RSS {rss:.0f} MB")
        print(f"daemon exit code {daemon.returncode}")
        return 0


if __name__ == "__main__":
    sys.exit(main())

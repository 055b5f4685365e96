"""Measure `fsqd collect` at fleet scale, and prove exactly-once storage from what was sent.

A load generator plays N nodes (default 200) at R codes/s each (default 10: 2,000 msg/s)
into a local Mosquitto for D seconds (default 300), with realistic payloads
(``fsqd.fleet.loadgen``: codes, segment events, stats with HdrHistogram blobs), a few
duplicates re-sent (at-least-once), a few holes (windows coded and never sent) and a few
nodes restarting with a new run id. Two `fsqd collect` processes share the load in one
MQTT 5 share group; the first is killed with SIGKILL at mid-run and started again
after ``--down`` seconds.

Prints: messages/s sustained (sent; stored per second), CPU and peak RSS of each
collector, end-to-end lag (window end -> collector) p50/p99/max, and the proof: rows in
Parquet = distinct (node, run, seq) sent, which is every window coded minus the holes;
zero duplicates; every injected hole in the gaps table.

    PYTHONPATH=$PWD python tools/bench_fleet.py [--nodes 200] [--rate 10] [--duration 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "max_queued_messages 10000000",  # a dead collector's share waits for its session
        "max_inflight_messages 1000",
        f"log_dest file {work / 'mosquitto.log'}",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


# -- the load generator (its own process) --


def generate(args: argparse.Namespace) -> None:
    import paho.mqtt.client as mqtt

    from fsqd.fleet.loadgen import NodeSim

    rng = random.Random(args.seed)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-loadgen")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    step = 1.0 / args.rate
    nodes = [
        NodeSim(f"dog{i:04d}", seed=args.seed * 100_000 + i, step_s=step) for i in range(args.nodes)
    ]
    restart_at = {
        i: rng.uniform(0.2, 0.8) * args.duration for i in rng.sample(range(args.nodes), 5)
    }
    sent: set[tuple[str, str, int]] = set()
    holes: list[tuple[str, str, int, int]] = []
    skip: dict[int, int] = {}  # node -> windows still to hold back
    recent: list[tuple[str, bytes]] = []
    published = duplicates = 0
    t_start = time.time()
    next_stats = t_start + 60
    tick = 0
    while (now := time.time()) - t_start < args.duration:
        elapsed = now - t_start
        late = elapsed > args.duration - 10  # no hole or restart this close to the end
        for i, sim in enumerate(nodes):
            if i in restart_at and elapsed >= restart_at[i]:
                del restart_at[i]
                skip.pop(i, None)
                sim.new_run()
            for m in sim.windows(now, 1):
                if m.seq is not None and i in skip:
                    if skip[i] == args.hole_len:
                        holes.append((sim.node, sim.run, m.seq, m.seq + args.hole_len - 1))
                    skip[i] -= 1
                    if skip[i] == 0:
                        del skip[i]
                    continue
                client.publish(m.topic, m.payload, qos=1)
                published += 1
                if m.seq is not None:
                    sent.add((sim.node, sim.run, m.seq))
                    if rng.random() < args.dup_share:
                        recent.append((m.topic, m.payload))
            if not late and i not in skip and rng.random() < args.hole_rate / args.rate:
                skip[i] = args.hole_len
        if recent and tick % 10 == 0:  # re-sent a little later, as a reconnecting node does
            for topic, payload in recent:
                client.publish(topic, payload, qos=1)
            duplicates += len(recent)
            published += len(recent)
            recent.clear()
        if now >= next_stats:
            for sim in nodes:
                client.publish(sim.stats(now).topic, sim.stats(now).payload, qos=1)
            next_stats += 60
        tick += 1
        time.sleep(max(0.0, t_start + tick * step - time.time()))
    while client.want_write() or len(client._out_messages) > 0:  # until every PUBACK
        time.sleep(0.1)
    client.loop_stop()
    elapsed = time.time() - t_start
    ledger = {
        "sent": sorted(sent), "holes": holes, "published": published,
        "duplicates_sent": duplicates, "elapsed_s": elapsed,
    }  # fmt: skip
    Path(args.ledger).write_text(json.dumps(ledger))


# -- the collectors, watched --


def collector(
    work: Path, store: Path, port: int, name: str, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    cfg = work / f"{name}.toml"
    cfg.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[collect]\nstore = "{store}"\ncollector_id = "{name}"\ngroup = "bench"\n'
        f"stats_interval = 30\nmax_unacked = {args.max_unacked}\n"
        f"flush_interval = {args.flush_interval}\n"
    )
    log = (work / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "fsqd", "collect", "--config", str(cfg)], stderr=log, stdout=log
    )


class Usage:
    """CPU seconds and peak RSS of a process, read from /proc while it runs."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.rss_peak = 0
        self._last: dict[int, float] = {}

    def sample(self, pid: int) -> None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        cpu = (int(stat[11]) + int(stat[12])) / TICK
        self.cpu_s += cpu - self._last.get(pid, 0.0)
        self._last[pid] = cpu
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        self.rss_peak = max(self.rss_peak, rss * 1024)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10.0, help="codes/s per node")
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument(
        "--down", type=float, default=10.0, help="seconds the killed collector stays down"
    )
    ap.add_argument("--dup-share", type=float, default=0.002, help="share of codes sent twice")
    ap.add_argument("--hole-rate", type=float, default=0.002, help="holes per node per second")
    ap.add_argument("--hole-len", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--max-unacked", type=int, default=20000, help="[collect] max_unacked (flush at half)"
    )
    ap.add_argument("--flush-interval", type=float, default=10.0, help="[collect] flush_interval")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ledger", default="")
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, help="keep the store here")
    args = ap.parse_args()
    if args.generate:
        generate(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = args.keep or work / "store"
        port = free_port()
        broker = start_broker(work, port)
        usage = {"a": Usage(), "b": Usage()}
        procs = {
            "a": collector(work, store, port, "a", args),
            "b": collector(work, store, port, "b", args),
        }
        try:
            time.sleep(3)  # both subscribed (their sessions exist from now on)
            ledger = work / "ledger.json"
            gen_cmd = [
                sys.executable,
                __file__,
                "--generate",
                "--port",
                str(port),
                "--ledger",
                str(ledger),
            ]
            for flag in ("nodes", "rate", "duration", "dup_share", "hole_rate", "hole_len", "seed"):
                gen_cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            gen = subprocess.Popen(gen_cmd)
            gen_usage, broker_usage = Usage(), Usage()
            t0 = time.monotonic()
            wall0 = time.time()
            killed_at = restarted_at = None
            while gen.poll() is None:
                for name, p in procs.items():
                    usage[name].sample(p.pid)
                gen_usage.sample(gen.pid)
                broker_usage.sample(broker.pid)
                now = time.monotonic() - t0
                if killed_at is None and now >= args.duration / 2:
                    procs["a"].send_signal(signal.SIGKILL)
                    procs["a"].wait()
                    killed_at = now
                if killed_at is not None and restarted_at is None and now >= killed_at + args.down:
                    procs["a"] = collector(work, store, port, "a", args)
                    restarted_at = now
                time.sleep(0.5)
            if gen.returncode:
                raise SystemExit("the load generator failed")
            sent_info = json.loads(ledger.read_text())
            wait_for_store(store, sent_info, usage, procs)
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(60)
            proof = check_store(store, sent_info)  # the store at rest: no compaction under way
            for name in procs:
                lines = (work / f"{name}.log").read_text().splitlines()
                last = [line for line in lines if " stats " in line][-1:]
                print(f"collector {name}'s last stats line: {last[0] if last else '-'}")
            assert killed_at is not None and restarted_at is not None
            outage = (wall0 + killed_at, wall0 + restarted_at + 5)
            usage["load generator"] = gen_usage
            usage["mosquitto"] = broker_usage
            report(args, sent_info, proof, usage, killed_at, restarted_at, store, outage)
            return 0 if proof["ok"] else 1
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            broker.terminate()
            broker.wait()


def stored(store: Path) -> tuple[list[tuple[str, str, int]], list[float], list[float]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((store / "codes").rglob("*.parquet"))
    t = pa.concat_tables(
        pq.read_table(f, columns=["node", "run", "seq", "t_end", "received_at"]) for f in files
    )
    keys = list(zip(t["node"].to_pylist(), t["run"].to_pylist(), t["seq"].to_pylist(), strict=True))
    return keys, t["t_end"].to_pylist(), t["received_at"].to_pylist()


def wait_for_store(
    store: Path,
    sent_info: dict[str, Any],
    usage: dict[str, Usage],
    procs: dict[str, subprocess.Popen[bytes]],
) -> None:
    """Until every sent window is stored and every hole confirmed (or 180 s)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for name, p in procs.items():
            usage[name].sample(p.pid)
        try:
            if check_store(store, sent_info)["ok"]:
                return
        except FileNotFoundError:
            pass  # a compaction swapped files while we read: look again
        time.sleep(10)  # reading the store takes CPU the collectors need


def check_store(store: Path, sent_info: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    sent = {tuple(k) for k in sent_info["sent"]}
    holes = {tuple(h) for h in sent_info["holes"]}
    keys, t_end, received = stored(store)
    gaps_path = store / "gaps.parquet"
    gaps = pq.read_table(gaps_path).to_pylist() if gaps_path.exists() else []
    open_confirmed = {
        (g["node"], g["run"], g["from_seq"], g["to_seq"])
        for g in gaps
        if g["confirmed"] and g["closed_at"] is None
    }
    distinct = set(keys)
    lags = sorted(r - t for r, t in zip(received, t_end, strict=True))
    return {
        "pairs": list(zip(t_end, received, strict=True)),
        "rows": len(keys), "distinct": len(distinct), "sent": len(sent),
        "holes": len(holes), "hole_windows": sum(h[3] - h[2] + 1 for h in holes),
        "missing": len(sent - distinct), "unexpected": len(distinct - sent),
        "holes_in_gaps": len(holes & open_confirmed),
        "other_gaps": len(open_confirmed - holes),
        "closed_late": sum(1 for g in gaps if g["closed_by_late_arrival"]),
        "lags": lags, "received": received,
        "ok": len(keys) == len(distinct) and distinct == sent and holes <= open_confirmed,
    }  # fmt: skip


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


def report(
    args: argparse.Namespace, sent_info: dict[str, Any], p: dict[str, Any],
    usage: dict[str, Usage], killed_at: float, restarted_at: float, store: Path,
    outage: tuple[float, float],
) -> None:  # fmt: skip
    elapsed = float(sent_info["elapsed_s"])
    published = int(sent_info["published"])
    per_s: dict[int, int] = {}
    for r in p["received"]:
        per_s[int(r)] = per_s.get(int(r), 0) + 1
    cut = len(per_s) // 10
    steady = sorted(per_s.values())[cut : len(per_s) - cut] or [0]
    lags: list[float] = p["lags"]
    calm = sorted(r - t for t, r in p["pairs"] if not outage[0] - 5 <= t <= outage[1])
    files = sum(1 for _ in (store / "codes").rglob("*.parquet"))
    size = sum(f.stat().st_size for f in store.rglob("*.parquet"))
    nan = float("nan")
    print(
        f"load: {args.nodes} nodes x {args.rate:g} codes/s for {elapsed:.0f} s; published "
        f"{published} messages ({published / elapsed:.0f}/s, "
        f"{sent_info['duplicates_sent']} re-sent copies)"
    )
    print(
        f"stored codes per second of arrival (middle 80 % of seconds): min {steady[0]}, "
        f"median {steady[len(steady) // 2]}, max {steady[-1]}"
    )
    for name, u in usage.items():
        print(
            f"{name}: CPU {u.cpu_s:.1f} s ({u.cpu_s / elapsed:.0%} of one core), "
            f"peak RSS {u.rss_peak / 2**20:.0f} MiB"
        )
    print(f"collector a SIGKILLed at {killed_at:.0f} s, restarted at {restarted_at:.0f} s")
    print(
        f"lag (window end -> collector): p50 {pct(lags, 50) * 1000:.0f} ms, "
        f"p99 {pct(lags, 99) * 1000:.0f} ms, max {lags[-1] if lags else nan:.1f} s"
    )
    print(
        f"lag of windows outside the outage (+-5 s): p50 {pct(calm, 50) * 1000:.0f} ms, "
        f"p99 {pct(calm, 99) * 1000:.0f} ms, max {calm[-1] if calm else nan:.1f} s"
    )
    print(f"store: {files} codes files, {size / 2**20:.1f} MiB of Parquet")
    print(
        f"exactly-once: rows {p['rows']}, distinct {p['distinct']}, "
        f"duplicates {p['rows'] - p['distinct']}; distinct sent {p['sent']} "
        f"(= coded - {p['hole_windows']} windows in {p['holes']} holes); "
        f"missing {p['missing']}, unexpected {p['unexpected']}"
    )
    print(
        f"gaps: {p['holes_in_gaps']} of {p['holes']} injected holes open and confirmed in "
        f"gaps.parquet; {p['other_gaps']} other open gaps; {p['closed_late']} closed by late "
        "arrival"
    )
    print("PROOF OK" if p["ok"] else "PROOF FAILED")


if __name__ == "__main__":
    sys.exit(main())

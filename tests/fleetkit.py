"""Fleet test helpers: code payloads as a node sends them, a publisher, the store read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiomqtt
import pyarrow as pa
import pyarrow.parquet as pq
from mosquitto import Mosquitto

T0 = 1_780_000_000.0  # 2026-05-28 UTC, a fixed day


def code(run: str, seq: int, *, t0: float = T0, label: str = "rest", step: float = 0.5) -> bytes:
    t = t0 + seq * step
    return json.dumps(
        {
            "v": 1, "run": run, "seq": seq, "t_start": t - 1.0, "t_end": t, "code": seq % 240,
            "digits": [1, 2, 3, 4, 5], "label": label, "p": 0.9, "model": "m",
            "clock_synced": True, "latency_ms": 12.5,
        }
    ).encode()  # fmt: skip


async def publish(broker: Mosquitto, items: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client(broker.host, broker.port, max_inflight_messages=100) as c:
        for topic, payload in items:
            await c.publish(topic, payload, qos=1)


def read_table(store: Path, table: str = "codes") -> pa.Table:
    files = sorted((store / table).rglob("*.parquet"))
    if not files:
        return pa.table({"node": [], "run": [], "seq": []})
    return pa.concat_tables(pq.read_table(f) for f in files)


def keys(store: Path) -> list[tuple[str, str, int]]:
    t = read_table(store)
    return list(zip(t["node"].to_pylist(), t["run"].to_pylist(), t["seq"].to_pylist(), strict=True))


def gaps(store: Path) -> list[dict[str, Any]]:
    path = store / "gaps.parquet"
    return pq.read_table(path).to_pylist() if path.exists() else []


def make_store(root: Path, *, nodes: int = 3, hours: float = 24.0, step_s: float = 5.0) -> Path:
    """A collected day of ``nodes`` dogs: node 0 lost windows 2000-2299, node 1 restarted at
    noon (a new run), node 2 sent no events (its timeline comes from the codes' labels)."""
    from fsqd.fleet.loadgen import NodeSim
    from fsqd.fleet.rows import parse_message
    from fsqd.fleet.store import Store

    day0 = 1_780_012_801.0  # 2026-05-29 00:00:01 UTC: the first window starts that day
    store = Store(root, "fixture")
    store.open()
    n_windows = int(hours * 3600 / step_s)
    for i in range(nodes):
        sim = NodeSim(f"dog{i}", seed=i, step_s=step_s)
        rows = []
        half = n_windows // 2
        msgs = list(sim.windows(day0, half))
        if i == 1:
            sim.new_run()
        msgs += list(sim.windows(day0 + half * step_s, n_windows - half))
        msgs += [sim.stats(day0 + h * 3600 + 3599) for h in range(int(hours))]
        for m in msgs:
            kind = m.topic.rsplit("/", 1)[1]
            if (i == 0 and m.seq is not None and 2000 <= m.seq < 2300) or (
                i == 2 and kind == "events"
            ):
                continue
            rows.append(parse_message(m.topic, m.payload, m.t + 0.05))
        store.commit(rows, day0 + 86400)
    store.close()
    return root

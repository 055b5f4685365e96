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

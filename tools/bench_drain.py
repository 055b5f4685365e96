"""How fast a full spool drains when the broker comes back.

Starts MqttSink with the broker down, spools ``--codes`` code messages (216 bytes,
shaped like real ones), starts Mosquitto (the test fixture's, on a free loopback
port), and reports the time until every code is acknowledged, and whether a
subscriber saw them all in order without duplicates:

    PYTHONPATH=$PWD python tools/bench_drain.py --codes 36000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mosquitto import Collector, Mosquitto

from fsqd.sinks.mqtt import MqttSettings, MqttSink

PAYLOAD = (
    b'{"v":1,"run":"3f9c2a71d0e4","seq":%d,"t_start":1790000000.133000,'
    b'"t_end":1790000001.123000,"code":1506,"digits":[2,2,1,1,1],"label":"behaviour_3",'
    b'"p":0.8731,"model":"default@1.0.0","clock_synced":true,"latency_ms":4.200}'
)


async def drain(n: int, inflight: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="fsqd-drain-"))
    broker = Mosquitto(work / "broker")
    settings = MqttSettings(
        host=broker.host,
        port=broker.port,
        node_id="drain",
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
        max_inflight=inflight,
    )
    sink = MqttSink(settings, work / "spool.sqlite")
    task = asyncio.create_task(sink.run())
    for i in range(n):
        sink.submit_code(PAYLOAD % i, i)
    while sink.counters()["spool_depth"] < n:
        await asyncio.sleep(0.2)
    broker.start()
    try:
        async with Collector(broker, "fsqd/drain/codes") as c:
            t0 = time.monotonic()
            while sink.counters()["published"] < n:
                await asyncio.sleep(0.02)
            dt = time.monotonic() - t0
            await c.wait_for(lambda c: len(c.messages) >= n, 120)
            seqs = [json.loads(p)["seq"] for p in c.payloads("fsqd/drain/codes")]
        await sink.aclose(5)
        await task
    finally:
        broker.stop()
    print(f"{n} spooled codes acknowledged in {dt:.1f} s ({n / dt:.0f} codes/s)")
    print(f"subscriber: in order {seqs == list(range(n))}, duplicates {len(seqs) - len(set(seqs))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codes", type=int, default=36_000, help="default: 1 h at 10 codes/s")
    ap.add_argument("--max-inflight", type=int, default=20)
    args = ap.parse_args()
    asyncio.run(drain(args.codes, args.max_inflight))


if __name__ == "__main__":
    main()

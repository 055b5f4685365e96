"""A small process that publishes codes through MqttSink, for the kill tests.

``python tests/mqtt_child.py PORT SPOOL NODE FIRST COUNT``: submits codes with seq
FIRST..FIRST+COUNT-1 at 50 per second, prints ``submitted`` when done, then prints
the sink's counters every 0.1 s until it is killed (SIGKILL) or sees stdin close,
when it stops cleanly.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from fsqd.sinks.mqtt import MqttSettings, MqttSink


async def main(port: int, spool: Path, node: str, first: int, count: int) -> None:
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        node_id=node,
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
        spool_commit_s=0.2,
        spool_after_s=0.5,
    )
    sink = MqttSink(settings, spool)
    task = asyncio.create_task(sink.run())
    for seq in range(first, first + count):
        sink.submit_code(json.dumps({"seq": seq}).encode(), seq)
        await asyncio.sleep(0.02)
    print("submitted", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    read = asyncio.create_task(reader.read())
    while not read.done():
        print(json.dumps(sink.counters()), flush=True)
        await asyncio.wait([read], timeout=0.1)
    await sink.aclose(5.0)
    await task


if __name__ == "__main__":
    port, spool, node, first, count = sys.argv[1:6]
    asyncio.run(main(int(port), Path(spool), node, int(first), int(count)))

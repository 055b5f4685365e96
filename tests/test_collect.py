"""``fsqd collect`` on a real Mosquitto: MQTT 5 shared subscription, exactly once in storage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import aiomqtt
import pyarrow as pa
import pytest
from fleetkit import code, gaps, keys, publish, read_table
from mosquitto import Mosquitto
from waiting import until

from fsqd.fleet.collector import Broker, CollectOptions, Collector
from fsqd.fleet.rows import Row
from fsqd.fleet.store import CommitResult, Store


def options(store: Path, ident: str = "c1", **kw: object) -> CollectOptions:
    base: dict[str, object] = {
        "flush_interval_s": 0.2,
        "stats_interval_s": 3600.0,
        "gap_grace_s": 0.0,
    }
    return CollectOptions(store=store, collector_id=ident, **{**base, **kw})  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(broker: Mosquitto, opts: CollectOptions):  # type: ignore[no-untyped-def]
    c = Collector(opts, Broker(broker.host, broker.port))
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await asyncio.wait_for(c.connected.wait(), 30)
    try:
        yield c
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def test_duplicates_holes_late_arrivals_and_malformed(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fsqd.collect")
    store = tmp_path / "store"
    sent = [s for s in range(100) if not 40 <= s <= 44]
    dupes = list(range(10, 20))

    async def main() -> None:
        async with running(broker, options(store)) as c:
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in sent + dupes])
            await publish(broker, [
                ("fsqd/n1/codes", b"not json"),
                ("fsqd/n1/codes", b'{"v":1,"run":"r1"}'),
                ("fsqd/n1/status", b"maybe"),
            ])  # fmt: skip
            await until(lambda: c.stats.stored == 95 and c.stats.malformed == 3)
            await until(lambda: any(g["confirmed"] for g in gaps(store)), what="gap confirmed")
            (g,) = gaps(store)
            assert (g["node"], g["run"], g["from_seq"], g["to_seq"]) == ("n1", "r1", 40, 44)
            assert g["closed_at"] is None
            # The hole's windows arrive late (a node's spool draining): stored, hole closed.
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in (44, 42, 40, 43, 41)])
            await until(lambda: c.stats.stored == 100)
            await until(lambda: gaps(store)[0]["closed_at"] is not None, what="gap closed")
            assert c.stats.duplicates == 10
            await until(lambda: c.stats.acked == c.stats.received, what="all acknowledged")
            line = c.stats.line(0, 0)
            assert "stored=100 duplicates=10 malformed=3" in line and "lag_p99_ms=" in line

    run(main())
    assert sorted(keys(store)) == [("n1", "r1", s) for s in range(100)]
    (g,) = gaps(store)
    assert g["closed_by_late_arrival"] and g["confirmed"]
    skipped = [m for r in caplog.records if (m := r.getMessage()).startswith("malformed")]
    assert len(skipped) == 3 and "not JSON" in skipped[0] and "no 'seq'" in skipped[1]
    t = read_table(store)
    assert t.schema.field("digits").type == pa.list_(pa.int32())
    assert set(t["label"].to_pylist()) == {"rest"}


def test_qos0_messages_are_stored_and_never_acknowledged(broker: Mosquitto, tmp_path: Path) -> None:
    store = tmp_path / "store"

    async def main() -> None:
        async with running(broker, options(store)) as c:
            async with aiomqtt.Client(broker.host, broker.port) as pub:
                for s in range(20):
                    await pub.publish("fsqd/n1/codes", code("r1", s), qos=0)
                await pub.publish("fsqd/n1/codes", code("r1", 20), qos=1)
            await until(lambda: c.stats.stored == 21)
            await until(lambda: c.stats.acked == 1)
            assert c.stats.disconnects == 0 and c.connected.is_set()

    run(main())
    assert len(keys(store)) == 21


def test_a_restart_loses_nothing_the_broker_held_and_stores_nothing_twice(
    broker: Mosquitto, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    opts = options(store)

    async def main() -> None:
        async with running(broker, opts) as c:
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in range(200)])
            await until(lambda: c.stats.stored == 200)
        # Down: the persistent session keeps what arrives meanwhile, and a node resends
        # some of what was already stored (at-least-once).
        await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in range(150, 400)])
        async with running(broker, opts) as c:
            await until(lambda: c.stats.received == 250)
            await until(lambda: c.stats.stored == 200 and c.stats.duplicates == 50)

    run(main())
    got = keys(store)
    assert len(got) == len(set(got)) == 400


def test_two_collectors_in_one_group_split_the_load(broker: Mosquitto, tmp_path: Path) -> None:
    store = tmp_path / "store"

    async def main() -> None:
        async with (
            running(broker, options(store, "a")) as a,
            running(broker, options(store, "b")) as b,
        ):
            items = [(f"fsqd/n{n}/codes", code("r", s)) for s in range(150) for n in range(4)]
            await publish(broker, items)
            # Each node resends a stretch (a reconnect): copies reach either collector.
            again = [(f"fsqd/n{n}/codes", code("r", s)) for s in range(100, 150) for n in range(4)]
            await publish(broker, again)
            await until(lambda: a.stats.received + b.stats.received == 800)
            await until(lambda: a.stats.duplicates + b.stats.duplicates == 200)
            assert a.stats.stored + b.stats.stored == 600
            assert a.stats.received > 100 and b.stats.received > 100  # both took a share

    run(main())
    got = keys(store)
    assert len(got) == len(set(got)) == 600
    assert gaps(store) == []  # one collector's holes were the other's rows, never lost


def test_a_corrupt_file_is_set_aside_and_a_cut_commit_removed(
    broker: Mosquitto, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    opts = options(store)

    async def first() -> None:
        async with running(broker, opts) as c:
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in range(50)])
            await until(lambda: c.stats.stored == 50)

    run(first())
    (good,) = sorted((store / "codes").rglob("*.parquet"))
    # A file cut in half (a disk fault, a copy cut short) and a crash's leftover temp file.
    bad = good.with_name("c9-0000000001.parquet")
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    leftover = good.with_name(".c1-0000000099.parquet.tmp")
    leftover.write_bytes(b"PAR1 half")
    cp = store / "_collect" / "c1.json"
    text = cp.read_text().replace('"writing": []', f'"writing": ["{leftover.relative_to(store)}"]')
    cp.write_text(text)

    async def second() -> None:
        async with running(broker, opts) as c:
            assert not leftover.exists()
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in range(40, 60)])
            await until(lambda: c.stats.stored == 10 and c.stats.quarantined == 1)

    run(second())
    assert not bad.exists()
    assert (store / "_quarantine" / bad.relative_to(store)).exists()
    got = keys(store)
    assert sorted(got) == [("n1", "r1", s) for s in range(60)]


def test_unacknowledged_messages_bound_what_the_collector_holds(
    broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot commit: the broker stops at max_unacked, nothing piles up here."""
    store = tmp_path / "store"
    release = threading.Event()
    real_commit = Store.commit

    def slow_commit(self: Store, rows: list[Row], until_t: float) -> CommitResult:
        release.wait(60)
        return real_commit(self, rows, until_t)

    async def main() -> None:
        opts = options(store, max_unacked=10, flush_rows=10, flush_interval_s=0.05)
        async with running(broker, opts) as c:
            monkeypatch.setattr(Store, "commit", slow_commit)
            items = [("fsqd/n1/codes", code("r1", s)) for s in range(100)]
            task = asyncio.create_task(publish(broker, items))
            try:
                await until(lambda: c.stats.received >= 10)
                await asyncio.sleep(0.5)  # the broker had every chance to send more
                assert c.stats.received <= 20  # 10 held, at most 10 more before the first commit
            finally:
                release.set()
            await task
            await until(lambda: c.stats.stored == 100)

    run(main())
    assert len(keys(store)) == 100


def _collect_process(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fsqd", "collect", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_stream_then_restart_keeps_exactly_once(
    broker: Mosquitto, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    config = tmp_path / "collect.toml"
    config.write_text(
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'[collect]\nstore = "{store}"\ncollector_id = "k1"\nflush_interval = 0.2\n'
    )
    proc = _collect_process(config)
    try:

        async def main() -> None:
            await broker.wait_subscribed("$share/fsqd/fsqd/+/status")
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in range(300)])
            await until(lambda: len(keys(store)) >= 100, what="some rows stored")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await publish(broker, [("fsqd/n1/codes", code("r1", s)) for s in range(300, 600)])

        run(main())
        proc2 = _collect_process(config)
        try:
            run(until(lambda: len(keys(store)) >= 600, what="every row after the restart"))
        finally:
            proc2.send_signal(signal.SIGTERM)
            proc2.wait(30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    got = keys(store)
    assert len(got) == len(set(got)) == 600

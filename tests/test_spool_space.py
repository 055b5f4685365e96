"""The spool on a 1 MiB filesystem: the byte budget, a disk filled by someone else, recovery.

Real files on a real (tmpfs) filesystem that runs out, mounted per test (root only).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import structlog
from mosquitto import Collector, Mosquitto
from smallfs import fill_up, free_bytes

from fsqd.sinks.mqtt import MqttSettings, MqttSink
from fsqd.sinks.spool import Spool, SpoolRow
from fsqd.sinks.spool.space import SPOOL_MIN_BYTES


def code(seq: int) -> bytes:
    # About the size of a real code message.
    return json.dumps({"v": 1, "run": "3f9c2a71", "seq": seq, "pad": "x" * 220}).encode()


def rows(first: int, n: int) -> list[SpoolRow]:
    return [SpoolRow(first + i, i, 1.7e9 + i, code(i)) for i in range(n)]


def spool_lines(logs: list[dict[str, Any]], level: str) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == level and "spool" in e["event"]]


def used_by_spool(directory: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in directory.glob("spool.sqlite*"))


def test_the_default_budget_keeps_the_spool_within_a_small_filesystem(small_fs: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        s = Spool(small_fs / "spool.sqlite", 500_000, None)
        # A quarter of what the spool could have at start, not less than the floor.
        assert SPOOL_MIN_BYTES <= s.max_bytes <= 1024 * 1024 // 4
        dropped = 0
        for k in range(50):  # 15,000 codes, about 4 MB: four times the filesystem
            r = s.commit(rows(s.first_id + 300 * k, 300), [])
            dropped += r.dropped
            assert r.bytes <= s.max_bytes
            assert free_bytes(small_fs) > 0
    assert dropped > 10_000 and s.depth() + dropped == 15_000
    assert s.full_episodes == 0 and spool_lines(logs, "error") == []
    # The newest codes are the ones kept.
    assert s.read(0, 1)[0].id == s.first_id + 15_000 - s.depth()
    s.close()


def test_a_full_filesystem_still_deletes_drops_the_oldest_and_recovers(small_fs: Path) -> None:
    path = small_fs / "spool.sqlite"
    with structlog.testing.capture_logs() as logs:
        s = Spool(path, 500_000, None)
        assert s.reserve.present()
        nxt = s.first_id
        s.commit(rows(nxt, 200), [])
        nxt += 200
        filler = fill_up(small_fs)  # another program's log takes the rest
        depths = []
        for _ in range(20):  # twenty commit periods with the disk full
            r = s.commit(rows(nxt, 100), [])
            nxt += 100
            depths.append(r.depth)
        assert s.full and s.full_episodes == 1
        assert not s.reserve.present()  # freed: that is what lets the deletes through
        # New codes take the room the file has, displacing the oldest: it does not grow.
        assert r.accepted == 100 and r.dropped >= 100
        assert max(depths[5:]) == min(depths[5:]) > 0
        # Delivered codes can always be deleted.
        delivered = [x.id for x in s.read(0, 100_000)]
        r = s.commit([], delivered)
        assert r.deleted == len(delivered) and r.depth == 0
        # Space comes back: the reserve is made again and the spool grows again.
        filler.unlink()
        r = s.commit(rows(nxt, 100), [])
        assert (r.inserted, r.dropped) == (100, 0)
        assert not s.full and s.reserve.present()
        s.close()
        # What was deleted stays deleted: nothing to send again after a restart.
        s = Spool(path, 500_000, None)
        assert [x.id for x in s.read(0, 1000)] == list(range(nxt, nxt + 100))
        s.close()
    # One line when it started, one when it ended; not one per commit.
    assert spool_lines(logs, "error") == [
        "spool: no space left on the state directory's filesystem; deleting delivered codes "
        "from the reserve, dropping the oldest until space returns"
    ]
    assert spool_lines(logs, "info") == ["spool: space is back on the state directory's filesystem"]


def test_deletes_spread_over_every_page_go_through_on_a_full_disk(small_fs: Path) -> None:
    """Deleting a run of rows frees whole pages (little WAL); deleting every other row
    rewrites every page of the file, more than the freed reserve holds in one transaction.
    On a full disk the deletes go in small transactions, each checkpointed, so any pattern
    of acknowledgements is deleted."""
    s = Spool(small_fs / "spool.sqlite", 500_000, None)
    nxt = s.first_id
    while not s.commit(rows(nxt, 100), []).dropped:  # up to the byte budget
        nxt += 100
    assert s.size_bytes() > s.reserve.size  # the file is larger than the reserve
    fill_up(small_fs)
    ids = [x.id for x in s.read(0, 100_000)]
    with structlog.testing.capture_logs():
        r = s.commit([], ids[::2])
    assert s.full and r.deleted == len(ids[::2])
    assert [x.id for x in s.read(0, 100_000)] == ids[1::2]
    s.close()


def settings(broker: Mosquitto, **kw: Any) -> MqttSettings:
    base: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "node_id": "full1",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "spool_commit_s": 0.1,
        "spool_after_s": 0.2,
        "publish_timeout_s": 5.0,
    }
    base.update(kw)
    return MqttSettings(**base)


async def until(cond: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_a_node_whose_state_dir_is_full_delivers_and_never_resends(
    small_fs: Path, broker: Mosquitto
) -> None:
    """The outage on a full disk, the broker's return, a restart, the next outage."""
    path = small_fs / "spool.sqlite"
    # A session that outlives the broker's restarts (it persists sessions): it gets every
    # code the sink sends after the broker returns, however late the test reconnects.
    durable = {"identifier": "durable-watcher", "clean_session": False}

    async def subscribe() -> None:
        async with Collector(broker, "fsqd/full1/codes", **durable):
            pass

    asyncio.run(subscribe())
    broker.stop()

    async def main() -> None:
        sink = MqttSink(settings(broker), path)
        task = asyncio.create_task(sink.run())
        for seq in range(500):  # the outage starts: codes go to disk
            sink.submit_code(code(seq), seq)
        await until(lambda: sink.counters()["spool_depth"] == 500)
        filler = fill_up(small_fs)  # then another program fills the disk
        for seq in range(500, 3000):  # ~700 kB more codes, with no broker and no disk
            sink.submit_code(code(seq), seq)
            if seq % 100 == 99:
                await asyncio.sleep(0.03)
        await until(lambda: sink.codes.spool.full and sink.counters()["spool_dropped"] > 0)
        await asyncio.sleep(0.3)  # a few more commit periods with the disk still full
        c = sink.counters()
        assert c["spool_full"] == 1 and c["spool_errors"] == 0
        assert c["unacked"] <= 3000 and c["lost"] == 0
        broker.start()
        async with Collector(broker, "fsqd/full1/codes", **durable) as got:
            # Everything left (on disk and in memory) is delivered and deleted from the
            # full disk.
            await until(lambda: sink.counters()["unacked"] == 0)
            await until(lambda: sink.counters()["spool_depth"] == 0)
            delivered = sink.counters()["published"]
            await got.wait_for(lambda c: len(c.messages) >= delivered)
        c = sink.counters()
        assert c["published"] + c["spool_dropped"] == 3000
        seqs = [json.loads(p)["seq"] for p in got.payloads("fsqd/full1/codes")]
        assert seqs == sorted(set(seqs))  # in order, once
        # Space comes back, then the next outage: the spool takes codes again, none dropped.
        filler.unlink()
        broker.stop()
        dropped = c["spool_dropped"]
        for seq in range(3000, 3200):
            sink.submit_code(code(seq), seq)
        await until(lambda: sink.counters()["spool_depth"] == 200)
        assert sink.counters()["spool_dropped"] == dropped
        assert not sink.codes.spool.full
        await sink.aclose(1)
        await task
        # A restart finds those 200 to send, and none of the delivered ones.
        again = MqttSink(settings(broker), path)
        assert again.counters()["spool_depth"] == 200
        await again.aclose(1)

    with structlog.testing.capture_logs() as logs:
        asyncio.run(asyncio.wait_for(main(), 120))
    # The whole story in the journal: the disk ran full once, space came back once.
    assert len(spool_lines(logs, "error")) == 1
    assert (
        spool_lines(logs, "info").count("spool: space is back on the state directory's filesystem")
        == 1
    )
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings.count("spool full: dropping the oldest codes") <= 1
    assert not any(e["event"].startswith("codes lost") for e in logs)
    assert os.path.exists(path)


def test_a_restart_on_a_full_filesystem_opens_the_spool_from_the_reserve(
    small_fs: Path,
) -> None:
    path = small_fs / "spool.sqlite"
    s = Spool(path, 500_000, None)
    s.commit(rows(s.first_id, 100), [])
    s.close()  # the WAL and -shm go; the reserve stays for the next start
    fill_up(small_fs)
    with structlog.testing.capture_logs():
        s = Spool(path, 500_000, None)  # needs room for a WAL and an index: the reserve's
    assert s.depth() == 100 and [r.seq for r in s.read(0, 1000)] == list(range(100))
    s.close()


def test_a_corrupt_spool_on_a_full_filesystem_is_replaced_from_the_reserve(
    small_fs: Path,
) -> None:
    path = small_fs / "spool.sqlite"
    s = Spool(path, 500_000, None)
    s.commit(rows(s.first_id, 100), [])
    s.close()
    path.write_bytes(b"\xff" * path.stat().st_size)
    fill_up(small_fs)
    with structlog.testing.capture_logs() as logs:
        s = Spool(path, 500_000, None)
    assert len(spool_lines(logs, "error")) == 1 and s.corrupt == 1
    assert s.commit(rows(s.first_id, 10), []).inserted == 10  # and it works
    s.close()

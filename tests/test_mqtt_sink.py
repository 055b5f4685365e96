"""MqttSink against a real Mosquitto broker: delivery, order, outages, kills, TLS, auth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import pytest
import structlog
from mosquitto import Collector, Mosquitto, TlsFiles, free_port
from waiting import until as wait_until

from fsqd.errors import OutputError
from fsqd.sinks.mqtt import MqttSettings, MqttSink, Secret
from fsqd.sinks.mqtt.connection import new_client
from fsqd.sinks.mqtt.outage import Outage
from fsqd.sinks.spool import Spool, SpoolRow

CHILD = Path(__file__).parent / "mqtt_child.py"
ROOT = Path(__file__).parent.parent
T = TypeVar("T")


def settings(broker: Mosquitto, node: str = "n1", **kw: Any) -> MqttSettings:
    base: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "node_id": node,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "spool_commit_s": 0.2,
        "spool_after_s": 0.5,
        "publish_timeout_s": 5.0,
    }
    base.update(kw)
    return MqttSettings(**base)


def code(seq: int) -> bytes:
    return json.dumps({"seq": seq, "code": seq % 7}).encode()


def seqs(payloads: list[bytes]) -> list[int]:
    return [json.loads(p)["seq"] for p in payloads]


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def test_round_trip_in_order_with_status_stats_info(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        latencies: list[tuple[int, float]] = []
        async with Collector(broker, "fsqd/n1/#") as c:
            sink = MqttSink(
                settings(broker),
                tmp_path / "spool.db",
                on_published=lambda s, lat: latencies.append((s, lat)),
            )
            assert sink.on_published is not None
            task = asyncio.create_task(sink.run())
            for i in range(300):
                sink.submit_code(code(i), i)
                if i % 10 == 0:
                    await asyncio.sleep(0.001)
            sink.publish_info(b'{"v":1}')
            sink.publish_stats(b'{"v":1,"n":1}')
            sink.publish_stats(b'{"v":1,"n":2}')
            await c.wait_for(lambda c: len(c.payloads("fsqd/n1/codes")) == 300)
            assert seqs(c.payloads("fsqd/n1/codes")) == list(range(300))
            assert set(c.qos) == {1}
            # The subscriber can see a code before its PUBACK reaches the sink.
            await wait_until(lambda: sink.counters()["published"] == 300)
            counters = sink.counters()
            assert counters["published"] == 300
            assert counters["connected"] == 1
            assert counters["spooled"] == 0 and counters["spool_commits"] == 0
            assert [s for s, _ in latencies] == list(range(300))
            assert all(0 < lat < 5 for _, lat in latencies)
            await c.wait_for(lambda c: c.payloads("fsqd/n1/stats")[-1:] == [b'{"v":1,"n":2}'])
            await sink.aclose(5)
            await task
            await c.wait_for(lambda c: c.payloads("fsqd/n1/status")[-1:] == [b"offline"])
            assert c.payloads("fsqd/n1/status") == [b"online", b"offline"]
        # A late subscriber sees the retained topics.
        async with Collector(broker, "fsqd/n1/+") as late:
            await late.wait_for(lambda c: len(c.messages) >= 3)
            retained = {t: p for t, p, r in late.messages if r}
            assert retained == {
                "fsqd/n1/status": b"offline",
                "fsqd/n1/info": b'{"v":1}',
                "fsqd/n1/stats": b'{"v":1,"n":2}',
            }
            assert late.payloads("fsqd/n1/codes") == []  # codes are not retained

    run(main())
    assert "pending publish calls" not in caplog.text  # max_inflight pending is normal


# A subscriber whose session outlives its connection and the broker's restarts (the test
# broker persists sessions): subscribed once before the sink can ever connect, it gets every
# code the sink sends after the broker starts, however late it connects itself.
DURABLE = {"identifier": "durable-watcher", "clean_session": False}


async def subscribe_durably(broker: Mosquitto, topic: str) -> None:
    """Start the broker, make the durable session's subscription, stop the broker."""
    broker.start()
    try:
        async with Collector(broker, topic, **DURABLE):
            pass
    finally:
        broker.stop()


def test_codes_submitted_before_the_broker_exists_arrive_in_order(tmp_path: Path) -> None:
    from mosquitto import mosquitto_missing

    if reason := mosquitto_missing():
        pytest.skip(reason)
    broker = Mosquitto(tmp_path / "b")  # port chosen, not started yet

    async def main() -> None:
        await subscribe_durably(broker, "fsqd/n1/codes")
        sink = MqttSink(settings(broker), tmp_path / "spool.db")
        task = asyncio.create_task(sink.run())
        for i in range(20):
            sink.submit_code(code(i), i)
            await asyncio.sleep(0.03)
        await wait_until(lambda: sink.counters()["spool_depth"] == 20)
        assert sink.counters()["connected"] == 0
        assert sink.counters()["connect_failures"] >= 1
        broker.start()
        try:
            async with Collector(broker, "fsqd/n1/codes", **DURABLE) as c:
                for i in range(20, 40):
                    sink.submit_code(code(i), i)
                await c.wait_for(lambda c: len(c.payloads("fsqd/n1/codes")) >= 40)
                got = seqs(c.payloads("fsqd/n1/codes"))
                assert got == list(range(40))
                await wait_until(lambda: sink.counters()["spool_depth"] == 0)
                await sink.aclose(5)
                await task
        finally:
            broker.stop()

    run(main())


def test_broker_down_20s_nothing_lost_order_kept(broker: Mosquitto, tmp_path: Path) -> None:
    """The one long test: 10 codes/s through a 20 s outage and a broker restart."""

    async def main() -> None:
        s = settings(broker, spool_commit_s=1.0, spool_after_s=2.0, reconnect_max_s=2.0)
        sink = MqttSink(s, tmp_path / "spool.db")
        task = asyncio.create_task(sink.run())
        seq = 0

        async def produce(seconds: float) -> None:
            nonlocal seq
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sink.submit_code(code(seq), seq)
                seq += 1
                await asyncio.sleep(0.1)

        async with Collector(broker, "fsqd/n1/codes", **DURABLE) as before:
            await produce(2.0)
            await before.wait_for(lambda c: len(c.messages) == seq)
        broker.stop()  # the durable session keeps the codes sent before we reconnect
        commits0 = sink.counters()["spool_commits"]
        await produce(20.0)
        during = sink.counters()
        assert during["connected"] == 0
        # All but the last few seconds on disk: codes older than spool_after_s (2 s) go at
        # the next commit (every 1 s), so 30 codes at 10/s, plus a late commit on a loaded
        # machine.
        assert during["spool_depth"] >= seq - 40
        assert during["oldest_unsent_age_s"] > 15
        # Batched: about one commit per second of outage, not one per code.
        assert during["spool_commits"] - commits0 <= 25
        broker.start()
        async with Collector(broker, "fsqd/n1/codes", "fsqd/n1/status", **DURABLE) as after:
            await produce(2.0)
            total = seq
            await after.wait_for(lambda c: set(seqs(c.payloads("fsqd/n1/codes"))) >= set(
                range(len(before.messages), total)), timeout_s=30)  # fmt: skip
            got = before.payloads("fsqd/n1/codes") + after.payloads("fsqd/n1/codes")
            order = seqs(got)
            first_seen = list(dict.fromkeys(order))
            assert first_seen == list(range(total))  # nothing lost, in order
            await wait_until(lambda: sink.counters()["spool_depth"] == 0)
            c = sink.counters()
            assert c["reconnects"] >= 1 and c["spool_dropped"] == 0
            assert after.payloads("fsqd/n1/status")[-1] == b"online"  # after the new CONNACK
            await sink.aclose(5)
            await task

    run(main())


def test_spool_full_drops_oldest_and_counts(tmp_path: Path) -> None:
    from mosquitto import mosquitto_missing

    if reason := mosquitto_missing():
        pytest.skip(reason)
    broker = Mosquitto(tmp_path / "b")

    async def main() -> None:
        await subscribe_durably(broker, "fsqd/n1/codes")
        sink = MqttSink(settings(broker, spool_max=10), tmp_path / "spool.db")
        task = asyncio.create_task(sink.run())
        for i in range(25):
            sink.submit_code(code(i), i)
        assert sink.counters()["unacked"] == 10  # memory is bounded too, before any commit
        await wait_until(lambda: sink.counters()["spool_depth"] == 10)
        assert sink.counters()["spool_dropped"] == 15
        broker.start()
        try:
            async with Collector(broker, "fsqd/n1/codes", **DURABLE) as c:
                # Everything acknowledged and nothing left to send: no more will come.
                await wait_until(
                    lambda: sink.counters()["unacked"] == sink.counters()["spool_depth"] == 0
                )
                await c.wait_for(lambda c: len(c.messages) >= sink.counters()["published"])
                assert seqs(c.payloads("fsqd/n1/codes")) == list(range(15, 25))
            await sink.aclose(5)
            await task
        finally:
            broker.stop()

    run(main())


def _child(port: int, spool: Path, node: str, first: int, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(port), str(spool), node, str(first), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _read_until(proc: subprocess.Popen[str], pred: Callable[[str], bool], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("child exited early")
        if pred(line):
            return line
    raise AssertionError("child did not report in time")


def test_sigkilled_process_delivers_its_spool_after_restart(
    broker: Mosquitto, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.db"
    broker.stop()  # an outage from the start
    child = _child(broker.port, spool, "k1", 0, 40)
    try:
        _read_until(child, lambda s: s.startswith("submitted"), 30)
        _read_until(child, lambda s: s.startswith("{") and json.loads(s)["spool_depth"] == 40, 60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
        assert child.stdin is not None
        child.stdin.close()
    broker.start()

    async def main() -> None:
        async with Collector(broker, "fsqd/k1/codes") as c:
            restarted = _child(broker.port, spool, "k1", 40, 5)
            try:
                await c.wait_for(lambda c: len(c.messages) >= 45, 60)
            finally:
                assert restarted.stdin is not None
                restarted.stdin.close()
                restarted.wait(20)
                assert restarted.stdout is not None
                restarted.stdout.close()
            assert list(dict.fromkeys(seqs(c.payloads("fsqd/k1/codes")))) == list(range(45))

    run(main())


def test_last_will_offline_when_the_process_is_killed(broker: Mosquitto, tmp_path: Path) -> None:
    async def main() -> None:
        async with Collector(broker, "fsqd/w1/status") as c:
            child = _child(broker.port, tmp_path / "spool.db", "w1", 0, 3)
            try:
                await c.wait_for(lambda c: c.payloads("fsqd/w1/status") == [b"online"], 20)
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait()
                for f in (child.stdin, child.stdout):
                    assert f is not None
                    f.close()
            await c.wait_for(lambda c: c.payloads("fsqd/w1/status") == [b"online", b"offline"])
            retained = [r for t, p, r in c.messages]
            assert retained == [False, False]  # live deliveries; the will is retained on the broker
        async with Collector(broker, "fsqd/w1/status") as late:
            await late.wait_for(lambda c: c.messages == [("fsqd/w1/status", b"offline", True)])

    run(main())


def test_password_auth_and_no_secret_in_logs(
    make_broker: Callable[..., Mosquitto],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-Pa55-word"
    broker = make_broker(users={"fsqd": secret, "watcher": "w"})
    caplog.set_level("DEBUG")

    async def main() -> None:
        # Wrong password: refused, counted, retried with back-off, never connected.
        bad = MqttSink(
            settings(broker, "a1", username="fsqd", password=Secret("wrong-" + secret)),
            tmp_path / "bad.db",
        )
        bad_task = asyncio.create_task(bad.run())
        await wait_until(lambda: bad.counters()["connect_failures"] >= 2)
        assert bad.counters()["connected"] == 0
        await bad.aclose(1)
        await bad_task

        good_settings = settings(broker, "a1", username="fsqd", password=Secret(secret))
        assert secret not in repr(good_settings)
        async with Collector(broker, "fsqd/a1/codes", username="watcher", password="w") as c:
            sink = MqttSink(good_settings, tmp_path / "good.db")
            task = asyncio.create_task(sink.run())
            sink.submit_code(code(1), 1)
            await c.wait_for(lambda c: len(c.messages) == 1)
            await sink.aclose(5)
            await task

    run(main())
    out, err = capsys.readouterr()
    logged = out + err + caplog.text
    assert "mqtt connect failed" in logged  # the failure was logged ...
    assert secret not in logged  # ... without the password


def test_tls_with_ca_and_client_certificate(
    make_broker: Callable[..., Mosquitto], tls_files: TlsFiles, tmp_path: Path
) -> None:
    broker = make_broker(tls=tls_files, require_client_cert=True)

    async def main() -> None:
        ok = settings(
            broker,
            "t1",
            host="localhost",
            tls=True,
            ca_file=tls_files.ca,
            cert_file=tls_files.client_cert,
            key_file=tls_files.client_key,
        )
        import ssl

        ctx = ssl.create_default_context(cafile=str(tls_files.ca))
        ctx.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
        async with Collector(broker, "fsqd/t1/codes", tls_context=ctx) as c:
            sink = MqttSink(ok, tmp_path / "ok.db")
            task = asyncio.create_task(sink.run())
            for i in range(5):
                sink.submit_code(code(i), i)
            await c.wait_for(lambda c: len(c.messages) == 5)
            await sink.aclose(5)
            await task

        # Without the client certificate, and trusting only the system CAs: refused.
        for name, bad in (
            ("no-client-cert", {"ca_file": tls_files.ca}),
            ("system-ca", {"cert_file": tls_files.client_cert, "key_file": tls_files.client_key}),
        ):
            sink = MqttSink(
                settings(broker, "t2", host="localhost", tls=True, **bad), tmp_path / f"{name}.db"
            )
            task = asyncio.create_task(sink.run())
            await wait_until(lambda s=sink: s.counters()["connect_failures"] >= 1)  # type: ignore[misc]
            assert sink.counters()["connected"] == 0, name
            await sink.aclose(1)
            await task

    run(main())


def test_kick_right_after_connack_backs_off(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes with one client id kick each other; back-off keeps it slow."""
    import gc

    async def main() -> None:
        s = settings(broker, "dup", reconnect_min_s=0.1, reconnect_max_s=1.6, stable_s=5.0)
        a = MqttSink(s, tmp_path / "a.db")
        b = MqttSink(s, tmp_path / "b.db")
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        await asyncio.sleep(6.0)
        connects = a._connections + b._connections
        # Without back-off growth (0.05-0.1 s per retry) this would be ~100 connections.
        assert 2 <= connects <= 30, connects
        for sink in (a, b):
            await sink.aclose(1)
        await asyncio.gather(*tasks)

    run(main())
    gc.collect()
    # Each kick ends a connection with an error aiomqtt stores in a future: seen, not leaked.
    assert "exception was never retrieved" not in caplog.text


def test_backoff_grows_caps_and_jitters(tmp_path: Path) -> None:
    import random

    async def main() -> None:
        s = MqttSettings(host="127.0.0.1", node_id="x", reconnect_min_s=1, reconnect_max_s=30)
        sink = MqttSink(s, tmp_path / "s.db", rng=random.Random(1))
        delays = [[sink.reconnect_backoff.delay(n) for _ in range(200)] for n in range(1, 9)]
        for n, ds in enumerate(delays, start=1):
            cap = min(30.0, 2.0 ** (n - 1))
            assert all(cap * 0.5 <= d <= cap for d in ds)
            assert max(ds) - min(ds) > cap * 0.3  # jittered, not a fixed step
        await sink.aclose(0.1)

    run(main())


def test_disconnect_noticed_without_waiting_for_a_publish_timeout(
    broker: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        sink = MqttSink(settings(broker, publish_timeout_s=60.0), tmp_path / "s.db")
        task = asyncio.create_task(sink.run())
        await wait_until(lambda: sink.counters()["connected"] == 1)
        broker.stop()
        t0 = time.monotonic()
        await wait_until(lambda: sink.counters()["connected"] == 0, 30)
        # Noticed from the closed socket, not from the 60 s publish timeout (a bound that
        # leaves room for a loaded machine and still tells the two apart).
        assert time.monotonic() - t0 < 20
        await sink.aclose(1)
        await task

    run(main())


def test_aclose_delivers_what_is_queued(broker: Mosquitto, tmp_path: Path) -> None:
    async def main() -> None:
        async with Collector(broker, "fsqd/n1/codes") as c:
            sink = MqttSink(settings(broker, spool_commit_s=30.0), tmp_path / "s.db")
            task = asyncio.create_task(sink.run())
            await wait_until(lambda: sink.counters()["connected"] == 1)
            for i in range(200):
                sink.submit_code(code(i), i)
            await sink.aclose(10)  # at once: in flight and queued codes still go out
            await task
            await c.wait_for(lambda c: len(c.messages) >= 200)
            assert seqs(c.payloads("fsqd/n1/codes")) == list(range(200))
        assert Spool(tmp_path / "s.db", 10).depth() == 0

    run(main())


def test_aclose_without_broker_spools_everything(tmp_path: Path) -> None:
    async def main() -> None:
        s = MqttSettings(host="127.0.0.1", port=free_port(), node_id="n1", spool_commit_s=60.0)
        sink = MqttSink(s, tmp_path / "s.db")
        task = asyncio.create_task(sink.run())
        for i in range(7):
            sink.submit_code(code(i), i)
        await wait_until(lambda: sink.counters()["connect_failures"] >= 1)  # it ran
        assert sink.counters()["spool_commits"] == 0
        await sink.aclose(1)
        await task
        rows = Spool(tmp_path / "s.db", 10).read(0, 100)
        assert [r.seq for r in rows] == list(range(7))

    run(main())


def test_acknowledged_spooled_codes_are_not_resent_after_a_reconnect(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """Acked rows wait for the next commit to be deleted; a reconnect must skip them."""
    path = tmp_path / "s.db"

    async def main() -> None:
        broker.stop()
        first = MqttSink(settings(broker), path)
        task = asyncio.create_task(first.run())
        for i in range(10):
            first.submit_code(code(i), i)
        await first.aclose(1)
        await task
        broker.start()
        async with Collector(broker, "fsqd/n1/codes") as c:
            sink = MqttSink(settings(broker, spool_commit_s=60.0), path)
            task = asyncio.create_task(sink.run())
            await c.wait_for(lambda c: len(c.messages) == 10)
            await wait_until(lambda: sink.counters()["published"] == 10)
            broker.stop()
            await wait_until(lambda: sink.counters()["connected"] == 0)
            broker.start()
            await wait_until(lambda: sink.counters()["connected"] == 1)
            await broker.wait_subscribed("fsqd/n1/codes", 2)  # the collector resubscribed
            sink.submit_code(code(10), 10)
            await c.wait_for(lambda c: b'"seq": 10' in b"".join(c.payloads("fsqd/n1/codes")))
            assert seqs(c.payloads("fsqd/n1/codes")) == list(range(11))
            assert sink.counters()["published"] == 11  # nothing sent twice
            await sink.aclose(2)
            await task

    run(main())


def test_qos0_codes_are_sent_in_order(broker: Mosquitto, tmp_path: Path) -> None:
    """qos = 0: a code is done once written to the socket (no PUBACK to wait for)."""

    async def main() -> None:
        async with Collector(broker, "fsqd/n1/codes") as c:
            sink = MqttSink(settings(broker, qos=0), tmp_path / "s.db")
            task = asyncio.create_task(sink.run())
            await wait_until(lambda: sink.counters()["connected"] == 1)
            for i in range(50):
                sink.submit_code(code(i), i)
            await c.wait_for(lambda c: len(c.messages) == 50)
            assert seqs(c.payloads("fsqd/n1/codes")) == list(range(50))
            assert set(c.qos) == {0}
            await wait_until(lambda: sink.counters()["published"] == 50)
            await sink.aclose(2)
            await task

    run(main())


def timed_code(seq: int, t_end: float) -> bytes:
    # The field order of fsqd.sinks.payload's codes messages.
    return (
        f'{{"v":1,"seq":{seq},"t_start":{t_end - 0.99:.6f},"t_end":{t_end:.6f},"code":3}}'
    ).encode()


def test_clock_step_remaps_unsent_codes_in_memory_and_in_the_spool(tmp_path: Path) -> None:
    """Codes held while the broker is away carry the new wall-clock mapping when delivered."""
    from mosquitto import mosquitto_missing

    if reason := mosquitto_missing():
        pytest.skip(reason)
    broker = Mosquitto(tmp_path / "b")  # not started: everything waits
    t0 = 1_700_000_000.0

    async def main() -> None:
        await subscribe_durably(broker, "fsqd/n1/codes")
        s = settings(broker, spool_commit_s=0.1, spool_after_s=0.1)
        sink = MqttSink(s, tmp_path / "spool.db")
        task = asyncio.create_task(sink.run())
        for i in range(10):
            sink.submit_code(timed_code(i, t0 + i * 0.1), i)
        await wait_until(lambda: sink.counters()["spool_depth"] == 10)
        for i in range(10, 15):  # still in memory when the clock steps
            sink.submit_code(timed_code(i, t0 + i * 0.1), i)
        sink.clock_stepped(3600.0)
        for i in range(15, 20):  # built after the step, with the new mapping already
            sink.submit_code(timed_code(i, t0 + 3600.0 + i * 0.1), i)
        await wait_until(lambda: sink.counters()["spool_depth"] == 20)
        assert sink.counters()["sink_clock_steps"] == 1
        broker.start()
        try:
            async with Collector(broker, "fsqd/n1/codes", **DURABLE) as c:
                await c.wait_for(lambda c: len(c.payloads("fsqd/n1/codes")) >= 20)
                msgs = [json.loads(p) for p in c.payloads("fsqd/n1/codes")]
        finally:
            await sink.aclose(5)
            await task
            broker.stop()
        assert [m["seq"] for m in msgs] == list(range(20))
        for m in msgs:
            want = t0 + 3600.0 + m["seq"] * 0.1
            assert m["t_end"] == pytest.approx(want, abs=1e-6), m
            assert m["t_start"] == pytest.approx(want - 0.99, abs=1e-6), m

    run(main())


def test_clock_step_rewrites_rows_a_commit_was_writing(tmp_path: Path) -> None:
    """A commit already queued on the spool thread lands first; the rewrite then shifts it."""

    async def main() -> None:
        s = MqttSettings(host="127.0.0.1", port=free_port(), node_id="n1", spool_commit_s=60.0)
        sink = MqttSink(s, tmp_path / "spool.db")
        for i in range(5):
            sink.submit_code(timed_code(i, 100.0 + i), i)
        flush = asyncio.create_task(sink.codes.flush(everything=True))
        await asyncio.sleep(0)  # the commit is queued with the old payloads
        sink.clock_stepped(-50.0)
        await flush
        await sink.aclose(0.1)
        spool = Spool(tmp_path / "spool.db", 100)
        try:
            rows = spool.read(0, 100)
        finally:
            spool.close()
        assert [json.loads(r.payload)["t_end"] for r in rows] == [50.0, 51.0, 52.0, 53.0, 54.0]

    run(main())


def test_close_waits_for_a_rewrite_still_running_on_the_spool_thread(tmp_path: Path) -> None:
    """The spool is closed on its own thread, after a clock-step rewrite queued there."""
    import threading

    events: list[tuple[str, str]] = []
    go = threading.Event()

    async def main() -> None:
        s = MqttSettings(host="127.0.0.1", port=free_port(), node_id="n1", spool_commit_s=60.0)
        sink = MqttSink(s, tmp_path / "spool.db")
        for i in range(5):
            sink.submit_code(timed_code(i, 100.0 + i), i)
        await sink.codes.flush(everything=True)
        spool = sink.codes.spool
        rewrite, close = spool.rewrite, spool.close

        def slow_rewrite(up_to: int, shift: Callable[[bytes], bytes]) -> int:
            go.wait(5.0)  # released by close() if close comes first (the bug)
            events.append(("rewrite", threading.current_thread().name))
            return rewrite(up_to, shift)

        def recording_close() -> None:
            events.append(("close", threading.current_thread().name))
            go.set()
            close()

        spool.rewrite = slow_rewrite  # type: ignore[method-assign]
        spool.close = recording_close  # type: ignore[method-assign]
        sink.clock_stepped(-50.0)
        await sink.aclose(0.1)
        reopened = Spool(tmp_path / "spool.db", 100)
        try:
            rows = reopened.read(0, 100)
        finally:
            reopened.close()
        assert [json.loads(r.payload)["t_end"] for r in rows] == [50.0, 51.0, 52.0, 53.0, 54.0]

    run(main())
    assert [e for e, _ in events] == ["rewrite", "close"]
    assert events[1][1] != threading.main_thread().name


def nowhere(**kw: Any) -> MqttSettings:
    """A broker address where nothing listens: the sink spools everything."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "node_id": "n1",
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 1.0,
        "spool_commit_s": 0.02,
    }
    base.update(kw)
    return MqttSettings(**base)


def test_spool_failures_are_counted_each_time_and_logged_once_per_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        sink = MqttSink(nowhere(), tmp_path / "spool.db")
        real = sink.codes.spool.commit
        left = [10]

        def flaky(inserts: Any, deletes: Any) -> Any:
            if left[0]:
                left[0] -= 1
                raise OutputError("spool.db: spool write failed: disk I/O error")
            return real(inserts, deletes)

        monkeypatch.setattr(sink.codes.spool, "commit", flaky)
        task = asyncio.create_task(sink.run())
        for i in range(5):
            sink.submit_code(code(i), i)
        await wait_until(lambda: sink.counters()["spool_depth"] == 5)
        assert sink.counters()["spool_errors"] == 10
        await sink.aclose(1)
        await task

    with structlog.testing.capture_logs() as logs:
        run(main())
    assert [e["event"] for e in logs if "spool" in e["event"]] == [
        "spool write failed; retrying every commit period",
        "spool works again",
    ]


def test_codes_neither_delivered_nor_spooled_at_stop_are_counted_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> dict[str, int | float]:
        sink = MqttSink(nowhere(spool_commit_s=30.0), tmp_path / "spool.db")

        def broken(inserts: Any, deletes: Any) -> Any:
            raise OutputError("spool.db: spool write failed: disk I/O error")

        monkeypatch.setattr(sink.codes.spool, "commit", broken)
        task = asyncio.create_task(sink.run())
        for i in range(7):
            sink.submit_code(code(i), i)
        await sink.aclose(0.2)
        await task
        return sink.counters()

    with structlog.testing.capture_logs() as logs:
        counters = run_result(main())
    assert counters["lost"] == 7 and counters["published"] == counters["spooled"] == 0
    (line,) = [e for e in logs if e["log_level"] == "error"]
    assert line["event"].startswith("codes lost at stop") and line["lost"] == 7


def test_a_corrupt_spool_is_counted_in_the_stats(tmp_path: Path) -> None:
    """The stats payload (and so the node's dashboard) shows a spool that was set aside and
    how many codes it gave back, not only the journal's one ERROR line."""
    path = tmp_path / "spool.db"
    s = Spool(path, 100_000, 1 << 30)
    first = s.first_id
    s.commit([SpoolRow(first + i, i, 1.7e9 + i, code(i)) for i in range(2000)], [])
    s.close()
    os.truncate(path, path.stat().st_size // 2)  # a copy cut short, a card that lost its end

    async def main() -> dict[str, int | float]:
        sink = MqttSink(nowhere(), path)
        counters = sink.counters()
        await sink.aclose(0.2)
        return counters

    with structlog.testing.capture_logs():
        counters = run_result(main())
    assert counters["spool_corrupt"] == 1
    assert 0 < counters["spool_salvaged"] == counters["spool_depth"] < 2000


def run_result(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def test_two_sinks_on_one_spool_file_keep_both_sets_of_codes(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """Row ids carry the run: two writers of one file (which the state-directory lock
    prevents for `fsqd run`) never overwrite or drop each other's codes."""
    spool = tmp_path / "spool.db"
    broker.stop()

    async def main() -> None:
        a = MqttSink(settings(broker, node="a"), spool)
        b = MqttSink(settings(broker, node="b"), spool)
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        for i in range(10):
            a.submit_code(code(i), i)
            b.submit_code(code(100 + i), 100 + i)
        await a.aclose(0.5)
        await b.aclose(0.5)
        await asyncio.gather(*tasks)
        broker.start()
        async with Collector(broker, "fsqd/c/codes") as c:
            later = MqttSink(settings(broker, node="c"), spool)
            task = asyncio.create_task(later.run())
            await c.wait_for(lambda c: len(c.messages) >= 20)
            await later.aclose(5)
            await task
        assert sorted(seqs(c.payloads("fsqd/c/codes"))) == [*range(10), *range(100, 110)]

    run(main())


def test_a_version_1_spool_left_by_fsqd_0_1_is_delivered_after_the_upgrade(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """The file an older fsqd left with undelivered codes: its own schema (no runs table,
    no user_version), ids from 1. The upgraded sink sends them first, then its own."""
    import sqlite3

    spool = tmp_path / "spool.db"
    db = sqlite3.connect(spool, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE spool (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
        "t_submit REAL NOT NULL, payload BLOB NOT NULL)"
    )
    db.executemany(
        "INSERT INTO spool VALUES (?, ?, ?, ?)", [(i + 1, i, 1.7e9, code(i)) for i in range(30)]
    )
    db.close()

    async def main() -> None:
        async with Collector(broker, "fsqd/v1/codes") as c:
            sink = MqttSink(settings(broker, node="v1"), spool)
            task = asyncio.create_task(sink.run())
            for i in range(30, 35):
                sink.submit_code(code(i), i)
            await c.wait_for(lambda c: len(c.messages) >= 35)
            await wait_until(lambda: sink.counters()["spool_depth"] == 0)
            await sink.aclose(5)
            await task
        assert seqs(c.payloads("fsqd/v1/codes")) == list(range(35))

    run(main())
    again = MqttSink(settings(broker, node="v1"), spool)
    assert again.counters()["spool_depth"] == 0  # nothing to send again
    asyncio.run(again.aclose(0.1))


class _SwallowingClient:
    """A client whose connect swallows a cancel and fails, as aiomqtt's does on Python
    3.11 when the cancel and paho's answer land together (asyncio.wait_for returns the
    inner result then)."""

    attempts = 0

    async def __aenter__(self) -> None:
        type(self).attempts += 1
        with contextlib.suppress(asyncio.CancelledError):  # the answer was already there
            await asyncio.sleep(0.05)
        raise aiomqtt.MqttError("[code:7] The connection was lost.")

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_a_cancel_swallowed_while_connecting_still_stops_the_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsqd.sinks.mqtt.sink as sink_mod

    monkeypatch.setattr(sink_mod, "new_client", lambda *a: _SwallowingClient())
    monkeypatch.setattr(sink_mod, "retrieve_disconnect_error", lambda client: None)

    async def main() -> None:
        sink = MqttSink(nowhere(reconnect_min_s=0.01, reconnect_max_s=0.02), tmp_path / "s.db")
        task = asyncio.create_task(sink.run())
        await wait_until(lambda: _SwallowingClient.attempts >= 2)
        task.cancel()
        done, _ = await asyncio.wait((task,), timeout=30)
        if not done:
            sink._stop.set()  # let it end, then fail
            await task
            raise AssertionError("the sink kept reconnecting after it was cancelled")
        assert task.cancelled()
        await sink.codes.close()

    run(main())


def test_aclose_gives_up_on_a_connection_task_that_ignores_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsqd.sinks.mqtt.sink as sink_mod

    monkeypatch.setattr(sink_mod, "_CANCEL_WAIT_S", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    async def main() -> None:
        sink = MqttSink(nowhere(), tmp_path / "s.db")
        monkeypatch.setattr(sink, "_connection_loop", stubborn)
        task = asyncio.create_task(sink.run())
        await asyncio.sleep(0)  # let run() start
        with structlog.testing.capture_logs() as logs:
            closing = asyncio.create_task(sink.aclose(0.1))
            done, _ = await asyncio.wait((closing,), timeout=30)
            stuck = not task.done()
            release.set()
            await closing
            await task
        assert done, "aclose waited for a task that ignores its cancel"
        assert stuck
        assert any("did not stop when cancelled" in e["event"] for e in logs)

    run(main())


def test_the_connection_sends_small_packets_without_waiting_for_acks(broker: Mosquitto) -> None:
    """TCP_NODELAY: a code then a state message a moment later must not wait for the
    broker's delayed ACK of the first (up to 40 ms on Linux)."""

    async def main() -> int:
        client = new_client(settings(broker), "fsqd/n1/status")
        async with client:
            sock = client._client.socket()
            assert isinstance(sock, socket.socket)
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    assert asyncio.run(main()) == 1


def _outage_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"].startswith("mqtt")]


def test_a_broker_that_is_away_is_one_warning_then_a_reminder_every_ten_minutes(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """Attempts every 10-20 ms stand for a minute each (the cap): a reminder every ten
    attempts, then the connected line says how long it was down and how many attempts."""
    broker.stop()
    ticks = [0]

    def minutes() -> float:  # each reading one minute later: one per attempt, as at the cap
        ticks[0] += 1
        return 60.0 * ticks[0]

    async def main() -> int:
        s = settings(broker, reconnect_min_s=0.01, reconnect_max_s=0.02)
        sink = MqttSink(s, tmp_path / "spool.db")
        sink.outage = Outage(s.host, clock=minutes)
        task = asyncio.create_task(sink.run())
        await wait_until(lambda: sink.counters()["connect_failures"] >= 45, timeout_s=60)
        broker.start()
        await wait_until(lambda: sink.connected, timeout_s=30)
        failures = int(sink.counters()["connect_failures"])
        await sink.aclose(5)
        await task
        return failures

    with structlog.testing.capture_logs() as logs:
        failures = run_result(main())
    lines = _outage_lines(logs)
    first, *reminders, connected = lines
    assert (first["event"], first["log_level"]) == ("mqtt connect failed", "warning")
    assert first["host"] == broker.host and "error" in first
    # Attempt 1 at minute 1; a reminder at attempts 11, 21, ... (ten minutes apart).
    assert [r["attempts"] for r in reminders] == list(range(11, failures + 1, 10))
    assert {r["event"] for r in reminders} == {"mqtt still unreachable"}
    assert [r["down_s"] for r in reminders] == [600.0 * (i + 1) for i in range(len(reminders))]
    assert (connected["event"], connected["log_level"]) == ("mqtt connected", "info")
    assert connected["attempts"] == failures + 1
    assert connected["down_s"] == 60.0 * failures  # from the first failure to CONNACK


def test_a_lost_connection_is_one_warning_and_the_reconnect_says_for_how_long(
    broker: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> tuple[int, float]:
        sink = MqttSink(settings(broker), tmp_path / "spool.db")
        task = asyncio.create_task(sink.run())
        await wait_until(lambda: sink.connected)
        t0 = time.monotonic()
        broker.stop()
        await wait_until(lambda: sink.counters()["connect_failures"] >= 5, timeout_s=30)
        broker.start()
        await wait_until(lambda: sink.connected, timeout_s=30)
        down = time.monotonic() - t0
        failures = int(sink.counters()["connect_failures"])
        await sink.aclose(5)
        await task
        return failures, down

    with structlog.testing.capture_logs() as logs:
        failures, down = run_result(main())
    lines = _outage_lines(logs)
    assert [(e["event"], e["log_level"]) for e in lines] == [
        ("mqtt connected", "info"),
        ("mqtt connection lost", "warning"),  # five failed attempts after it: no line each
        ("mqtt connected", "info"),
    ]
    assert "down_s" not in lines[0] and "attempts" not in lines[0]
    assert lines[2]["attempts"] == failures + 1 >= 6
    assert 0 < lines[2]["down_s"] <= down + 0.1


def test_aclose_delivers_the_last_retained_messages(broker: Mosquitto, tmp_path: Path) -> None:
    """The daemon's final stats and the last state are published right before the sink
    closes: they must reach the broker, not be cut off by the disconnect."""

    async def main() -> None:
        sink = MqttSink(settings(broker), tmp_path / "s.db")
        task = asyncio.create_task(sink.run())
        await wait_until(lambda: sink.counters()["connected"] == 1)
        for n in range(20):
            sink.publish_stats(b'{"v":1,"final":%d}' % n)
            sink.publish_state(b'{"v":1,"state":%d}' % n)
        await sink.aclose(10)  # at once, as the daemon does after its final stats
        await task
        async with Collector(broker, "fsqd/n1/+") as late:
            await late.wait_for(
                lambda c: (
                    {t for t, _, r in c.messages if r}
                    >= {"fsqd/n1/stats", "fsqd/n1/state", "fsqd/n1/status"}
                )
            )
            retained = {t: p for t, p, r in late.messages if r}
        assert retained["fsqd/n1/stats"] == b'{"v":1,"final":19}'
        assert retained["fsqd/n1/state"] == b'{"v":1,"state":19}'
        assert retained["fsqd/n1/status"] == b"offline"

    run(main())

"""Every payload fsqd publishes validates against its shipped JSON Schema.

The messages are the real ones: codes from the bundled model through the real
pipeline and payload builder, stats with the MQTT sink's own counters, info from
the bundled card, sent through MqttSink to a real broker and validated as a
subscriber receives them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from mosquitto import Collector, Mosquitto

from fsqd.config.homeassistant import HomeAssistantSettings
from fsqd.metrics import StageTimer
from fsqd.model.card import expected_input_shape
from fsqd.model.package import load_package
from fsqd.pipeline import CodePipeline
from fsqd.sinks.homeassistant import discovery_for
from fsqd.sinks.mqtt import MqttSettings, MqttSink
from fsqd.sinks.payload import CodeMessages, info_payload, stats_payload
from fsqd.sinks.schemas import NAMES, load


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load(name))


def test_schemas_are_valid_draft_2020_12() -> None:
    for name in NAMES:
        jsonschema.Draft202012Validator.check_schema(load(name))
    with pytest.raises(ValueError, match="no schema"):
        load("nope")


def real_codes(n: int) -> list[bytes]:
    pkg = load_package()
    pipeline = CodePipeline(pkg)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, *expected_input_shape(pkg.card))).astype(np.float32)
    batch = pipeline.encode(x)
    t_end = 1_790_000_000.123 + np.arange(n) * 0.1
    t_start = t_end - 0.99
    return CodeMessages("3f9c2a71", pkg.label, pipeline.labels)(
        0, batch, t_start, t_end, np.full(n, 0.0042), True
    )


def real_stats(counters: dict[str, int | float]) -> bytes:
    timer = StageTimer()
    for us in (900, 1200, 1500, 80_000_000):  # the last one is out of range
        timer.add("e2e", us * 1000)
    timer.add("infer", 700_000)
    return stats_payload(
        run="3f9c2a71",
        node_id="n1",
        t=1_790_000_060.0,
        interval_s=60.0,
        uptime_s=61.2,
        backend="onnx",
        clock_synced=None,
        period=timer.roll(),
        counters={"samples": 6240, "windows": 620, "dropped": 0, **counters},
        sensors=[{"name": "imu0", "state": "ok", "rate_hz": 104.2}],
    )


def real_info() -> bytes:
    pkg = load_package()
    return info_payload(
        run="3f9c2a71",
        node_id="n1",
        backend="onnx",
        card=pkg.card,
        model_tag=pkg.label,
        config_hash="0123456789abcdef",
        hop=10,
        started=1_790_000_000.0,
    )


def test_schemas_reject_what_they_should() -> None:
    code = json.loads(real_codes(1)[0])
    v = validator("codes")
    v.validate(code)
    for broken in (
        {k: val for k, val in code.items() if k != "seq"},
        {**code, "seq": -1},
        {**code, "extra": 1},
        {k: val for k, val in code.items() if k != "p"},  # label without p
    ):
        assert not v.is_valid(broken), broken
    assert not validator("status").is_valid("Online")
    stats = json.loads(real_stats({}))
    assert not validator("stats").is_valid(stats)  # the sink's counters are required


def test_messages_as_a_subscriber_receives_them(broker: Mosquitto, tmp_path: Path) -> None:
    settings = MqttSettings(host=broker.host, port=broker.port, node_id="n1")
    pkg = load_package()
    labels = pkg.card.head.labels if pkg.card.head is not None else None
    discovery = discovery_for(
        HomeAssistantSettings(), settings, labels=labels, model_name=pkg.card.name
    )

    async def main() -> dict[str, list[bytes]]:
        async with Collector(broker, "fsqd/n1/#", "homeassistant/device/#") as c:
            sink = MqttSink(settings, tmp_path / "spool.db", discovery=discovery)
            task = asyncio.create_task(sink.run())
            codes = real_codes(25)
            for seq, payload in enumerate(codes):
                sink.submit_code(payload, seq)
            sink.publish_info(real_info())
            await c.wait_for(lambda c: len(c.payloads("fsqd/n1/codes")) == 25)
            sink.publish_stats(real_stats(sink.counters()))
            await c.wait_for(lambda c: len(c.payloads("fsqd/n1/stats")) == 1)
            await sink.aclose(5)
            await task
            await c.wait_for(lambda c: len(c.payloads("fsqd/n1/status")) == 2)
            topics = {t for t, _, _ in c.messages}
            return {t: c.payloads(t) for t in topics}

    got = asyncio.run(main())
    schema_of = {
        "fsqd/n1/codes": "codes",
        "fsqd/n1/stats": "stats",
        "fsqd/n1/info": "info",
        "homeassistant/device/fsqd_n1/config": "homeassistant",
    }
    assert set(got) == {*schema_of, "fsqd/n1/status"}
    for topic, name in schema_of.items():
        v = validator(name)
        for raw in got[topic]:
            doc: Any = json.loads(raw)
            v.validate(doc)
    for raw in got["fsqd/n1/status"]:
        validator("status").validate(raw.decode())  # plain text
    assert [json.loads(p)["seq"] for p in got["fsqd/n1/codes"]] == list(range(25))


def test_the_daemon_over_mqtt_publishes_schema_valid_messages(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """fsqd's daemon, the simulator as a real-time sensor, MqttSink to a real broker."""
    from fsqd.config import load_config
    from fsqd.daemon import Daemon, open_sinks
    from fsqd.testing import SimulatedAcquisition

    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f'[window]\nhop = 10\n[stats]\ninterval_s = 1\n[service]\nnode_id = "e2e"\n'
        f'state_dir = "state"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
    )
    config = load_config(cfg)

    async def main() -> tuple[Daemon, dict[str, list[bytes]]]:
        async with Collector(broker, "fsqd/e2e/#", "homeassistant/device/#") as c:
            sinks = open_sinks(config, stdout=False, out=io.StringIO())
            daemon = Daemon(
                config,
                acquisition=SimulatedAcquisition(chunk=2),
                sinks=sinks,
                duration_s=120.0,  # a bound only: stopped once 15 codes arrived
                handle_signals=False,
            )
            run = asyncio.create_task(daemon.run())
            await c.wait_for(lambda c: len(c.payloads("fsqd/e2e/codes")) >= 15)
            daemon.stop()
            assert await run == 0
            await c.wait_for(lambda c: c.payloads("fsqd/e2e/status")[-1:] == [b"offline"])
            return daemon, {t: c.payloads(t) for t in {t for t, _, _ in c.messages}}

    daemon, got = asyncio.run(main())
    codes = [json.loads(p) for p in got["fsqd/e2e/codes"]]
    assert len(codes) >= 15
    assert [m["seq"] for m in codes] == list(range(len(codes)))
    for name, topic in (
        ("codes", "fsqd/e2e/codes"),
        ("stats", "fsqd/e2e/stats"),
        ("info", "fsqd/e2e/info"),
        ("homeassistant", "homeassistant/device/fsqd_e2e/config"),
    ):
        assert got[topic], topic
        for raw in got[topic]:
            validator(name).validate(json.loads(raw))
    assert got["fsqd/e2e/status"] == [b"online", b"offline"]
    last = json.loads(got["fsqd/e2e/stats"][-1])
    assert last["counters"]["published"] == len(codes) and last["counters"]["connected"] == 1
    total = daemon.timer.roll().cumulative
    assert total["publish"].count == total["e2e"].count == len(codes)  # PUBACKs reported
    assert (tmp_path / "state" / "spool.sqlite").exists()


def test_every_counter_fsqd_reports_is_described_by_the_stats_schema(tmp_path: Path) -> None:
    """The counters a real MQTT sink and the daemon report, each with a type and meaning;
    a broken value of a new counter is refused."""
    from fsqd.daemon import Counters

    counters = load("stats")["properties"]["counters"]
    described = set(counters["properties"])
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=1, node_id="n1"), tmp_path / "s.db")
    reported = set(sink.counters()) | {f.name for f in dataclasses.fields(Counters)}
    reported |= {"gaps", "pending", "time_going_back"}  # the daemon's own, beside Counters
    assert reported <= described, reported - described
    asyncio.run(sink.aclose(0.1))
    stats = json.loads(real_stats(sink.counters()))
    validator("stats").validate(stats)
    for key in ("lost", "spool_corrupt", "spool_full", "spool_salvaged", "spool_bytes"):
        broken = {**stats, "counters": {**stats["counters"], key: -1}}
        assert not validator("stats").is_valid(broken), key

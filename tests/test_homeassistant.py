"""Home Assistant device discovery: the message, its topic, and the resend on HA's birth."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
import tomllib
from pathlib import Path

import aiomqtt
import jsonschema
import pytest
from mosquitto import Collector, Mosquitto

from fsqd import __version__
from fsqd.config.homeassistant import HomeAssistantSettings, parse_homeassistant
from fsqd.errors import ConfigError
from fsqd.sinks.homeassistant import discovery_for, discovery_payload
from fsqd.sinks.mqtt import MqttSettings, MqttSink
from fsqd.sinks.schemas import load
from fsqd.tomlcheck import Table

LABELS = ("rest", "walk", "trot", "graze")
MQTT = MqttSettings(host="127.0.0.1", node_id="barn-3")
# Home Assistant's own discovery topic pattern (components/mqtt/discovery.py, TOPIC_MATCHER),
# applied to the topic with the discovery prefix removed.
HA_TOPIC = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)


def test_payload_is_what_home_assistant_expects() -> None:
    body = discovery_payload(HomeAssistantSettings(), MQTT, labels=LABELS, model_name="m13")
    jsonschema.validate(body, load("homeassistant"))
    assert body["dev"] == {
        "ids": ["fsqd_barn-3"],
        "name": "fsqd barn-3",
        "mf": "fsqd",
        "mdl": "m13",
        "sw": __version__,
    }
    assert body["o"]["name"] == "fsqd"
    assert body["avty"] == [
        {"t": "fsqd/barn-3/status", "pl_avail": "online", "pl_not_avail": "offline"}
    ]
    cmps = body["cmps"]
    assert set(cmps) == {"behaviour", "code", "latency_p99"}
    assert cmps["behaviour"]["dev_cla"] == "enum" and cmps["behaviour"]["ops"] == list(LABELS)
    assert cmps["behaviour"]["stat_t"] == cmps["code"]["stat_t"] == "fsqd/barn-3/codes"
    assert cmps["latency_p99"]["stat_t"] == "fsqd/barn-3/stats"
    assert cmps["latency_p99"]["unit_of_meas"] == "ms"
    ids = [c["uniq_id"] for c in cmps.values()]
    assert len(set(ids)) == len(ids)  # unique per entity


def test_no_head_no_behaviour_entity() -> None:
    body = discovery_payload(HomeAssistantSettings(), MQTT, labels=None, model_name="m")
    jsonschema.validate(body, load("homeassistant"))
    assert set(body["cmps"]) == {"code", "latency_p99"}


def test_templates_read_fields_the_payloads_have() -> None:
    """Each value template names a path that exists in the codes/stats payloads."""
    body = discovery_payload(HomeAssistantSettings(), MQTT, labels=LABELS, model_name="m")
    code_msg = {"label": "walk", "code": 17}
    stats_msg = {"latency_us": {"e2e": {"p99": 12345}}}
    for cmp in body["cmps"].values():
        path = re.search(r"value_json((?:\.\w+)+)", cmp["val_tpl"])
        assert path is not None
        doc: object = code_msg if cmp["stat_t"].endswith("/codes") else stats_msg
        for key in path.group(1).strip(".").split("."):
            assert isinstance(doc, dict) and key in doc, cmp["val_tpl"]
            doc = doc[key]


def test_disabled_means_no_discovery() -> None:
    assert (
        discovery_for(HomeAssistantSettings(enabled=False), MQTT, labels=LABELS, model_name="m")
        is None
    )
    d = discovery_for(HomeAssistantSettings(prefix="ha"), MQTT, labels=LABELS, model_name="m")
    assert d is not None
    assert d.topic == "ha/device/fsqd_barn-3/config" and d.birth_topic == "ha/status"
    m = HA_TOPIC.fullmatch(d.topic.removeprefix("ha/"))
    assert m is not None and m["component"] == "device" and m["object_id"] == "fsqd_barn-3"


def parse(text: str) -> HomeAssistantSettings:
    return parse_homeassistant(Table(tomllib.loads(text), "fsqd.toml [homeassistant]"))


def test_parse_homeassistant() -> None:
    assert parse("") == HomeAssistantSettings()
    s = parse('enabled = false\nprefix = "hass"\nname = "Barn 3 collar"')
    assert (s.enabled, s.prefix, s.name) == (False, "hass", "Barn 3 collar")
    for text, key in (
        ('prefix = "a/#"', "prefix"),
        ("enabled = 1", "enabled"),
        ("resend_min = 5\nresend_max = 1", "resend_max"),
        ('discovery = "yes"', "discovery"),
    ):
        with pytest.raises(ConfigError, match=rf"\[homeassistant\] {key}"):
            parse(text)


def test_discovery_retained_and_resent_on_birth(broker: Mosquitto, tmp_path: Path) -> None:
    ha = HomeAssistantSettings(resend_min_s=0.2, resend_max_s=0.4)
    mqtt = MqttSettings(host=broker.host, port=broker.port, node_id="barn-3")
    d = discovery_for(ha, mqtt, labels=LABELS, model_name="m13")
    assert d is not None and d.min_interval_s == 5.0
    d = dataclasses.replace(d, min_interval_s=0.2)  # the test's patience, not HA's
    topic = "homeassistant/device/fsqd_barn-3/config"

    async def main() -> None:
        async with Collector(broker, "homeassistant/device/#") as c:
            sink = MqttSink(mqtt, tmp_path / "spool.db", discovery=d)
            task = asyncio.create_task(sink.run())
            await c.wait_for(lambda c: len(c.payloads(topic)) == 1)
            jsonschema.validate(json.loads(c.payloads(topic)[0]), load("homeassistant"))
            # Home Assistant restarts and announces itself.
            async with aiomqtt.Client(broker.host, broker.port) as ha_client:
                t0 = time.monotonic()
                await ha_client.publish("homeassistant/status", b"online", qos=1)
                await c.wait_for(lambda c: len(c.payloads(topic)) == 2)
                assert time.monotonic() - t0 >= 0.2  # after the random delay
                await ha_client.publish("homeassistant/status", b"offline", qos=1)
                await asyncio.sleep(0.6)
                assert len(c.payloads(topic)) == 2  # "offline" is not a birth
            await sink.aclose(5)
            await task
        async with Collector(broker, "homeassistant/device/#") as late:  # retained
            await late.wait_for(lambda c: [r for _, _, r in c.messages] == [True])

    asyncio.run(main())


def test_a_flood_of_births_is_one_resend_every_few_seconds(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """2,000 retained ``online`` births in a burst, then a second burst: discovery goes out
    once on connect and at most once per ``min_interval_s`` after that."""
    ha = HomeAssistantSettings(resend_min_s=0.05, resend_max_s=0.1)
    mqtt = MqttSettings(host=broker.host, port=broker.port, node_id="barn-3")
    d = discovery_for(ha, mqtt, labels=LABELS, model_name="m13")
    assert d is not None
    d = dataclasses.replace(d, min_interval_s=1.0)
    topic = "homeassistant/device/fsqd_barn-3/config"

    async def flood(client: aiomqtt.Client) -> float:
        t0 = time.monotonic()
        for _ in range(1000):
            await client.publish("homeassistant/status", b"online", qos=0, retain=True)
        return time.monotonic() - t0

    async def main() -> None:
        async with Collector(broker, "homeassistant/device/#") as c:
            sink = MqttSink(mqtt, tmp_path / "spool.db", discovery=d)
            task = asyncio.create_task(sink.run())
            await c.wait_for(lambda c: len(c.payloads(topic)) == 1)  # on connect
            baseline = len(asyncio.all_tasks())
            peak = baseline

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, len(asyncio.all_tasks()))
                    await asyncio.sleep(0.005)

            sampler = asyncio.create_task(sample())
            t0 = time.monotonic()
            async with aiomqtt.Client(broker.host, broker.port) as ha_client:
                busy = await flood(ha_client)
                await c.wait_for(lambda c: len(c.payloads(topic)) >= 2)  # births are heard
                busy += await flood(ha_client)
                await ha_client.publish("homeassistant/status", b"", qos=1, retain=True)
            await asyncio.sleep(2.5)  # quiet: what is pending goes out, then nothing more
            elapsed = time.monotonic() - t0
            sampler.cancel()
            await sink.aclose(5)
            await task
        resends = len(c.payloads(topic)) - 1
        assert busy < elapsed
        assert 1 <= resends <= elapsed / d.min_interval_s + 1, (resends, elapsed)
        # Births join the one pending resend: no task per birth piles up meanwhile (the
        # sampler, the second client's tasks and the one resend come on top).
        assert peak <= baseline + 10, (peak, baseline)

    asyncio.run(main())

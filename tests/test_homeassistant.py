"""Home Assistant device discovery: the message against HA's own rules, its templates
rendered on real payloads, its removal, and the resend on HA's birth.

No Home Assistant runs here (it needs a newer Python than fsqd's). What HA does with a
device discovery message is taken from its MQTT integration
(homeassistant/components/mqtt/): ``discovery.py`` expands the abbreviations of the root,
``dev``, ``o``, each component and each availability entry (``abbreviations.py``),
validates the root (``schemas.py`` DEVICE_DISCOVERY_SCHEMA: device with an identifier,
origin with a name, every component with a supported platform and, for entity platforms,
a unique id), then copies only ``SHARED_OPTIONS`` from the root into each component that
lacks them (``_merge_common_device_options``). The option names each platform accepts are
those of ``sensor.py``/``binary_sensor.py`` and the common entity schema. Templates are
rendered with Jinja2's sandbox, the engine HA's templates run on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import aiomqtt
import jsonschema
import pytest
import structlog
from jinja2.sandbox import ImmutableSandboxedEnvironment
from mosquitto import Collector, Mosquitto

from fsqd import __version__
from fsqd.config import load_config
from fsqd.config.homeassistant import HomeAssistantSettings, parse_homeassistant
from fsqd.daemon import open_sinks
from fsqd.daemon.wiring import hardware_of
from fsqd.errors import ConfigError
from fsqd.metrics import StageTimer
from fsqd.sinks.discovery_memory import MEMORY_FILE, DiscoveryMemory
from fsqd.sinks.homeassistant import discovery_for, discovery_payload
from fsqd.sinks.mqtt import MqttSettings, MqttSink
from fsqd.sinks.payload import health_payload, stats_payload
from fsqd.sinks.schemas import load
from fsqd.tomlcheck import Table

LABELS = ("rest", "walk", "trot", "graze")
MQTT = MqttSettings(host="127.0.0.1", node_id="barn-3")
# Home Assistant's own discovery topic pattern (components/mqtt/discovery.py, TOPIC_MATCHER),
# applied to the topic with the discovery prefix removed.
HA_TOPIC = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
# HA's abbreviations (abbreviations.py) of the keys fsqd sends: ABBREVIATIONS for the root,
# components and availability entries, DEVICE_ABBREVIATIONS and ORIGIN_ABBREVIATIONS.
ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "cmps": "components",
    "dev": "device",
    "dev_cla": "device_class",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "name": "name",
    "o": "origin",
    "ops": "options",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "stat_cla": "state_class",
    "stat_t": "state_topic",
    "sug_dsp_prc": "suggested_display_precision",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "hw": "hw_version",
    "sw": "sw_version",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
DEVICE_KEYS = {*DEVICE_ABBREVIATIONS.values(), "connections", "configuration_url",
               "serial_number", "suggested_area", "via_device"}  # fmt: skip
# The shared options of HA 2024.11 (the device discovery's first release: no qos) and of
# later releases (qos, encoding and message_expiry_interval added).
SHARED_OPTIONS_FIRST = (
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "command_topic",
    "payload_available",
    "payload_not_available",
    "state_topic",
)
SHARED_OPTIONS_LATER = (*SHARED_OPTIONS_FIRST, "encoding", "message_expiry_interval", "qos")
# Options every MQTT entity takes (the common entity, availability and read-only schemas).
COMMON = {
    "platform", "availability", "availability_mode", "availability_template",
    "availability_topic", "payload_available", "payload_not_available", "device", "origin",
    "enabled_by_default", "entity_category", "entity_picture", "icon",
    "json_attributes_topic", "json_attributes_template", "default_entity_id",
    "message_expiry_interval", "unique_id", "state_topic", "value_template", "qos",
    "encoding", "name",
}  # fmt: skip
PLATFORM_OPTIONS = {
    "sensor": COMMON | {"device_class", "expire_after", "force_update", "options",
                        "last_reset_value_template", "state_class",
                        "suggested_display_precision", "unit_of_measurement"},
    "binary_sensor": COMMON | {"device_class", "expire_after", "force_update", "off_delay",
                               "payload_off", "payload_on"},
}  # fmt: skip


def expand(payload: dict[str, Any]) -> dict[str, Any]:
    """What discovery.py makes of a device discovery payload's keys."""

    def rename(d: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
        return {table.get(k, k): v for k, v in d.items()}

    out = rename(payload, ABBREVIATIONS)
    out["device"] = rename(out["device"], DEVICE_ABBREVIATIONS)
    out["origin"] = rename(out["origin"], ORIGIN_ABBREVIATIONS)
    comps = {}
    for key, c in out["components"].items():
        c = rename(c, ABBREVIATIONS)
        if "availability" in c:
            c["availability"] = [rename(a, ABBREVIATIONS) for a in c["availability"]]
        comps[key] = c
    out["components"] = comps
    return out


def components_as_ha_sees_them(
    payload: dict[str, Any], shared: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Each component's config after HA merged the root's shared options into it."""
    full = expand(payload)
    root = {k: v for k, v in full.items() if k != "components"}
    out = {}
    for key, c in full["components"].items():
        merged = dict(c)
        for option in shared:
            if option in root and option not in merged:
                merged[option] = root[option]
        out[key] = merged
    return out


def payload(**kw: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"labels": LABELS, "model_name": "m13", "code_reference": True}
    options.update(kw)
    return discovery_payload(HomeAssistantSettings(), MQTT, **options)


def test_payload_is_what_home_assistant_expects() -> None:
    body = payload(model_version="1.3.0", hardware="icm20948+ak09916, lsm6dsox")
    jsonschema.validate(body, load("homeassistant"))
    assert body["dev"] == {
        "ids": ["fsqd_barn-3"],
        "name": "fsqd barn-3",
        "mf": "fsqd",
        "mdl": "m13",
        "mdl_id": "1.3.0",
        "sw": __version__,
        "hw": "icm20948+ak09916, lsm6dsox",
    }
    assert body["o"] == {"name": "fsqd", "sw": __version__}
    cmps = body["cmps"]
    assert set(cmps) == {
        "behaviour", "confidence", "code", "sensor_health", "code_drift", "code_jsd",
        "perplexity", "spool_depth", "latency_p99",
    }  # fmt: skip
    ids = [c["uniq_id"] for c in cmps.values()]
    assert len(set(ids)) == len(ids) and all(i.startswith("fsqd_barn-3_") for i in ids)
    assert cmps["behaviour"]["dev_cla"] == "enum" and cmps["behaviour"]["ops"] == list(LABELS)
    assert cmps["behaviour"]["stat_t"] == cmps["confidence"]["stat_t"] == "fsqd/barn-3/state"
    assert cmps["behaviour"]["json_attr_t"] == "fsqd/barn-3/state"
    assert cmps["confidence"]["unit_of_meas"] == "%"
    assert cmps["code"]["en"] is False and cmps["code"]["stat_t"] == "fsqd/barn-3/codes"
    assert cmps["sensor_health"]["p"] == cmps["code_drift"]["p"] == "binary_sensor"
    assert cmps["sensor_health"]["dev_cla"] == cmps["code_drift"]["dev_cla"] == "problem"
    assert cmps["sensor_health"]["stat_t"] == cmps["code_drift"]["stat_t"] == "fsqd/barn-3/health"
    assert "ent_cat" not in cmps["sensor_health"]  # a problem to see, not a diagnostic
    for key in ("code_drift", "code_jsd", "perplexity", "spool_depth", "latency_p99"):
        assert cmps[key]["ent_cat"] == "diagnostic", key
    for key in ("code_jsd", "perplexity", "spool_depth", "latency_p99"):
        assert cmps[key]["stat_t"] == "fsqd/barn-3/stats", key


def test_home_assistant_accepts_every_key() -> None:
    """After HA's own expansion, every key is one the platform's schema takes (an unknown
    or wrongly abbreviated key would make HA refuse the component)."""
    full = expand(payload(model_version="1", hardware="lsm6dsox"))
    assert set(full) == {"device", "origin", "components"}
    assert set(full["device"]) <= DEVICE_KEYS and full["device"]["identifiers"]
    assert set(full["origin"]) <= set(ORIGIN_ABBREVIATIONS.values())
    assert full["origin"]["name"]
    for key, c in full["components"].items():
        assert c["platform"] in PLATFORM_OPTIONS, key
        assert set(c) <= PLATFORM_OPTIONS[c["platform"]], (key, set(c) - COMMON)
        assert c["unique_id"], key
        if "options" in c:  # an enum sensor takes neither a unit nor a state class
            assert c["device_class"] == "enum"
            assert "unit_of_measurement" not in c and "state_class" not in c
        for a in c["availability"]:
            assert set(a) <= {"topic", "payload_available", "payload_not_available",
                              "value_template"}  # fmt: skip


@pytest.mark.parametrize("shared", [SHARED_OPTIONS_FIRST, SHARED_OPTIONS_LATER])
def test_qos_reaches_every_component_in_every_release(shared: tuple[str, ...]) -> None:
    for key, c in components_as_ha_sees_them(payload(), shared).items():
        assert c["qos"] == 1, key
    # The old message's root-level qos never reached a component in the first release.
    old = {**payload(), "qos": 1}
    for c in old["cmps"].values():
        del c["qos"]
    seen = components_as_ha_sees_them(old, shared)
    assert all(("qos" in c) == ("qos" in shared) for c in seen.values())


ENV = ImmutableSandboxedEnvironment()


def render(template: str, message: dict[str, Any]) -> str:
    return ENV.from_string(template).render(value_json=message)


def state_message(behaviour: str, confidence: float, seq: int) -> dict[str, Any]:
    """A ``state`` payload as the contract defines it."""
    return {"v": 1, "run": "3f9c2a71", "seq": seq, "behaviour": behaviour,
            "since": 1_790_000_000.0, "confidence": confidence, "set": [behaviour]}  # fmt: skip


def health_message(sensors: str, drift: bool | None, jsd: float | None) -> dict[str, Any]:
    body = health_payload(
        drift=drift, jsd=jsd, perplexity=41.2, unseen_share=0.01, since=1.79e9, sensors=sensors
    )
    m: dict[str, Any] = json.loads(body)
    jsonschema.validate(m, load("health"))
    return m


def stats_message(health: dict[str, Any] | None) -> dict[str, Any]:
    timer = StageTimer()
    timer.add("e2e", 4_200_000)
    body = stats_payload(
        run="3f9c2a71", node_id="barn-3", t=1.79e9, interval_s=60.0, uptime_s=61.0,
        backend="onnx", clock_synced=None, period=timer.roll(),
        counters={"published": 1, "spooled": 0, "spool_depth": 17, "spool_dropped": 0,
                  "oldest_unsent_age_s": 0.0, "reconnects": 0, "connected": 1},
        sensors=[], health=health,
    )  # fmt: skip
    m: dict[str, Any] = json.loads(body)
    jsonschema.validate(m, load("stats"))
    return m


def test_templates_render_on_real_payloads() -> None:
    c = payload()["cmps"]
    state = state_message("walk", 0.8751, 41)
    assert render(c["behaviour"]["val_tpl"], state) == "walk"
    attrs = json.loads(render(c["behaviour"]["json_attr_tpl"], state))
    assert attrs == {"set": ["walk"], "seq": 41, "run": "3f9c2a71", "since": 1_790_000_000.0}
    assert render(c["confidence"]["val_tpl"], state) == "87.5"
    assert render(c["code"]["val_tpl"], {"code": 1506, "label": "walk"}) == "1506"
    # binary sensors render HA's default payload_on/payload_off
    assert render(c["sensor_health"]["val_tpl"], health_message("ok", False, 0.1)) == "OFF"
    assert render(c["sensor_health"]["val_tpl"], health_message("degraded", False, 0.1)) == "ON"
    assert render(c["sensor_health"]["val_tpl"], health_message("lost", False, 0.1)) == "ON"
    assert render(c["code_drift"]["val_tpl"], health_message("ok", True, 0.4)) == "ON"
    assert render(c["code_drift"]["val_tpl"], health_message("ok", False, 0.1)) == "OFF"
    period = {"windows": 120, "codes_used": 30, "perplexity": 21.5, "unseen_share": 0.0,
              "jsd": 0.125, "drift": False, "checks": 4, "drift_threshold": 0.3,
              "drift_windows": 600}  # fmt: skip
    stats = stats_message(period)
    assert render(c["code_jsd"]["val_tpl"], stats) == "0.125"
    assert render(c["perplexity"]["val_tpl"], stats) == "21.5"
    assert render(c["spool_depth"]["val_tpl"], stats) == "17"
    assert render(c["latency_p99"]["val_tpl"], stats) == "4.2"
    # Nothing measured yet: "None", which HA's MQTT sensor takes as unknown.
    empty = stats_message(None)
    assert render(c["code_jsd"]["val_tpl"], empty) == "None"
    assert render(c["perplexity"]["val_tpl"], empty) == "None"


def test_the_behaviour_value_changes_only_with_the_behaviour() -> None:
    """State messages also come when only the confidence moves: the behaviour's value
    (what HA records as the entity's state) stays the same for those."""
    tpl = payload()["cmps"]["behaviour"]["val_tpl"]
    stream = [("rest", 0.9), ("rest", 0.7), ("rest", 0.55), ("walk", 0.6), ("walk", 0.8)]
    values = [render(tpl, state_message(b, p, i)) for i, (b, p) in enumerate(stream)]
    changes = sum(a != b for a, b in itertools.pairwise(values))
    assert changes == 1


def available(component: dict[str, Any], latest: dict[str, dict[str, Any] | str]) -> bool:
    """HA's availability: each topic's last message through its template against
    payload_available; ``availability_mode: all`` needs every one, the default the last."""
    states = []
    for a in component["avty"]:
        message = latest[a["t"]]
        text = render(a["val_tpl"], message) if "val_tpl" in a else message
        assert text in (a["pl_avail"], a["pl_not_avail"])
        states.append(text == a["pl_avail"])
    return all(states) if component.get("avty_mode") == "all" else states[-1]


def test_a_lost_imu_makes_the_behaviour_unavailable_not_the_problem() -> None:
    c = payload()["cmps"]
    status, health = "fsqd/barn-3/status", "fsqd/barn-3/health"
    for key in ("behaviour", "confidence", "code"):
        assert c[key]["avty_mode"] == "all"
        assert [a["t"] for a in c[key]["avty"]] == [status, health]
    for key in ("sensor_health", "code_drift", "code_jsd", "perplexity", "spool_depth"):
        assert [a["t"] for a in c[key]["avty"]] == [status], key
    for sensors, behaviour_available in (("ok", True), ("degraded", True), ("lost", False)):
        latest: dict[str, Any] = {status: "online", health: health_message(sensors, False, 0.1)}
        assert available(c["behaviour"], latest) is behaviour_available, sensors
        assert available(c["confidence"], latest) is behaviour_available
        assert available(c["sensor_health"], latest) is True
    offline: dict[str, Any] = {status: "offline", health: health_message("ok", False, 0.1)}
    assert not available(c["behaviour"], offline) and not available(c["sensor_health"], offline)


def test_no_head_no_behaviour_and_no_reference_no_drift() -> None:
    body = payload(labels=None, code_reference=False)
    jsonschema.validate(body, load("homeassistant"))
    assert set(body["cmps"]) == {"code", "sensor_health", "perplexity", "spool_depth",
                                 "latency_p99"}  # fmt: skip
    assert "hw" not in body["dev"]


def test_hardware_names_the_sensor_drivers(tmp_path: Path) -> None:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        '[[sensor]]\nname = "a"\ndriver = "icm20948"\nbus = 1\n'
        '[[sensor]]\nname = "b"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
        'mag_driver = "lis3mdl"\n'
    )
    config = load_config(cfg)
    assert hardware_of(config.sensors) == "icm20948, lsm6dsox+lis3mdl (emulated)"


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


def test_memory_records_before_publishing_and_forgets_once_cleared(tmp_path: Path) -> None:
    m = DiscoveryMemory(tmp_path)
    assert m.begin("ha/device/fsqd_a/config") == []
    assert json.loads((tmp_path / MEMORY_FILE).read_text()) == {
        "published": ["ha/device/fsqd_a/config"]
    }
    m2 = DiscoveryMemory(tmp_path)  # the next start, node renamed
    assert m2.begin("ha/device/fsqd_b/config") == ["ha/device/fsqd_a/config"]
    assert DiscoveryMemory(tmp_path).topics == ["ha/device/fsqd_a/config",
                                                 "ha/device/fsqd_b/config"]  # fmt: skip
    m2.retired("ha/device/fsqd_a/config")
    assert DiscoveryMemory(tmp_path).topics == ["ha/device/fsqd_b/config"]
    # the same name again: nothing to clear (clearing would remove the device it re-announces)
    assert DiscoveryMemory(tmp_path).begin("ha/device/fsqd_b/config") == []
    assert DiscoveryMemory(tmp_path).begin(None) == ["ha/device/fsqd_b/config"]  # switched off


def test_an_unreadable_memory_is_set_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / MEMORY_FILE).write_text('{"published": "not a list"}')
    with structlog.testing.capture_logs() as logs:
        m = DiscoveryMemory(tmp_path)
    assert m.topics == []
    assert (tmp_path / (MEMORY_FILE + ".bad")).exists()
    assert not (tmp_path / MEMORY_FILE).exists()
    assert [e["log_level"] for e in logs] == ["warning"]
    (tmp_path / MEMORY_FILE).mkdir()  # not even a file
    with structlog.testing.capture_logs() as logs:
        assert DiscoveryMemory(tmp_path).topics == []
    assert logs and logs[0]["log_level"] == "warning"


def daemon_config(tmp_path: Path, broker: Mosquitto, node: str, ha: str) -> Any:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f"[service]\nnode_id = '{node}'\nstate_dir = 'state'\n"
        f"[mqtt]\nhost = '{broker.host}'\nport = {broker.port}\n"
        f"[homeassistant]\n{ha}\n"
        '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
    )
    return load_config(cfg)


def test_renamed_node_and_discovery_off_clear_the_old_discovery(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """A real broker: run as barn-3, then as barn-4 on the same state directory (barn-3's
    retained discovery is cleared, barn-4's published), then with discovery off (barn-4's
    cleared). A subscriber arriving afterwards finds no retained discovery at all."""
    old, new = ("homeassistant/device/fsqd_barn-3/config",
                "homeassistant/device/fsqd_barn-4/config")  # fmt: skip

    async def one_run(node: str, ha: str, until: Any) -> Collector:
        config = daemon_config(tmp_path, broker, node, ha)
        (sink,) = open_sinks(config, stdout=False, out=io.StringIO())
        assert isinstance(sink, MqttSink)
        async with Collector(broker, "homeassistant/device/#") as c:
            task = asyncio.create_task(sink.run())
            await c.wait_for(until)
            await sink.aclose(5)
            await task
        return c

    async def retained_now() -> dict[str, bytes]:
        async with Collector(broker, "homeassistant/device/#") as late:
            await late.settle()  # every retained message has come
            return {t: p for t, p, r in late.messages if r}

    async def main() -> None:
        c = await one_run("barn-3", "", lambda c: c.payloads(old))
        assert json.loads(c.payloads(old)[0])["dev"]["ids"] == ["fsqd_barn-3"]
        assert set(await retained_now()) == {old}
        c = await one_run("barn-4", "", lambda c: b"" in c.payloads(old) and c.payloads(new))
        # The old device is removed before the new one is announced.
        order = [(t, p == b"") for t, p, _ in c.messages]
        assert order.index((old, True)) < order.index((new, False))
        assert set(await retained_now()) == {new}
        memory = json.loads((tmp_path / "state" / MEMORY_FILE).read_text())
        assert memory == {"published": [new]}
        await one_run("barn-4", "enabled = false", lambda c: b"" in c.payloads(new))
        assert await retained_now() == {}
        assert json.loads((tmp_path / "state" / MEMORY_FILE).read_text()) == {"published": []}

    asyncio.run(main())


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

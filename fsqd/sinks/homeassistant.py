"""Home Assistant MQTT discovery, in the device-based form.

One retained message on ``<prefix>/device/<object_id>/config`` announces the node as one
device with its entities (HA >= 2024.11), laid out as zigbee2mqtt and Frigate do it:

- **Behaviour** (``sensor``, ``enum`` of the head's labels) from the retained ``state``
  topic: its value changes only when the behaviour does; the conformal set, ``seq``,
  ``run`` and the segment's ``since`` are attributes (``json_attributes_topic``).
- **Behaviour confidence** (``sensor``, %) from ``state``.
- **Code** (``sensor``) from ``codes``, disabled by default: a new value per window is a
  recorder row per window.
- **Sensor health** (``binary_sensor``, ``problem``) from the retained ``health`` topic:
  on while any IMU is degraded or lost.
- diagnostics: **code usage drift** (``binary_sensor``, ``problem``, from ``health``) and
  its Jensen-Shannon divergence (only when the card has reference codes), **code usage
  perplexity**, **spool depth** and the **end-to-end latency p99** (from ``stats``).

Availability: every entity follows ``<base>/status``; the behaviour, confidence and
code entities also follow the sensors' state in ``health`` with ``availability_mode:
all``, so a lost IMU makes them unavailable instead of showing a stale behaviour. The
sensor health and diagnostics stay available, so the problem itself can be seen.

Every component carries its own ``qos``: Home Assistant copies only its
``SHARED_OPTIONS`` from the device root into components (availability, availability
mode/template/topic, command and state topic, payloads available/not available; ``qos``
only in later releases), so a root-level ``qos`` is ignored by the releases that most
installations run. Keys are abbreviated as HA's ``abbreviations.py`` lists them.

The sink resends the message after a random 1-5 s delay whenever
``homeassistant/status`` says ``online`` (HA restarted); births that arrive meanwhile
join that one resend, and resends are at least 5 s apart.
"""

from __future__ import annotations

import json
from typing import Any

from fsqd import __version__
from fsqd.config.homeassistant import (
    HomeAssistantSettings,
    birth_topic,
    discovery_topic,
)
from fsqd.config.mqtt import MqttSettings
from fsqd.sinks.mqtt.sink import Discovery

__all__ = ["QOS", "RESEND_MIN_INTERVAL_S", "discovery_for", "discovery_payload"]

# However often Home Assistant's birth message arrives, discovery goes out at most this often.
RESEND_MIN_INTERVAL_S = 5.0
# Every component's subscription QoS: state and health are published with QoS 1.
QOS = 1


def discovery_payload(
    ha: HomeAssistantSettings,
    mqtt: MqttSettings,
    *,
    labels: tuple[str, ...] | None,
    model_name: str,
    model_version: str | None = None,
    hardware: str | None = None,
    code_reference: bool = False,
) -> dict[str, Any]:
    """The device discovery message as a dict (abbreviated keys, as HA documents them).

    ``labels``: the head's labels (None: no head, so no behaviour or confidence entity);
    ``hardware``: the sensor drivers (``hw``); ``code_reference``: the card has reference
    codes, so drift is watched and gets its entities.
    """
    uid = f"fsqd_{mqtt.node_id}"
    state, health, stats = mqtt.topic("state"), mqtt.topic("health"), mqtt.topic("stats")
    online = {"t": mqtt.topic("status"), "pl_avail": "online", "pl_not_avail": "offline"}
    # The health message's sensors field: only "lost" makes the behaviour unavailable.
    imu = {
        "t": health,
        "val_tpl": "{{ 'offline' if value_json.sensors == 'lost' else 'online' }}",
        "pl_avail": "online",
        "pl_not_avail": "offline",
    }
    live = {"avty": [online, imu], "avty_mode": "all"}
    always = {"avty": [online]}

    def entity(key: str, platform: str, name: str, **options: Any) -> dict[str, Any]:
        return {"p": platform, "name": name, "uniq_id": f"{uid}_{key}", "qos": QOS, **options}

    cmps: dict[str, dict[str, Any]] = {}
    if labels:
        cmps["behaviour"] = entity(
            "behaviour",
            "sensor",
            "Behaviour",
            dev_cla="enum",
            ops=list(labels),
            stat_t=state,
            val_tpl="{{ value_json.behaviour }}",
            json_attr_t=state,
            json_attr_tpl=(
                "{{ {'set': value_json.set, 'seq': value_json.seq, 'run': value_json.run,"
                " 'since': value_json.since} | tojson }}"
            ),
            ic="mdi:paw",
            **live,
        )
        cmps["confidence"] = entity(
            "confidence",
            "sensor",
            "Behaviour confidence",
            stat_t=state,
            val_tpl="{{ (value_json.confidence * 100) | round(1) }}",
            unit_of_meas="%",
            stat_cla="measurement",
            sug_dsp_prc=0,
            ic="mdi:gauge",
            **live,
        )
    cmps["code"] = entity(
        "code",
        "sensor",
        "Code",
        stat_t=mqtt.topic("codes"),
        val_tpl="{{ value_json.code }}",
        ic="mdi:barcode",
        en=False,
        **live,
    )
    cmps["sensor_health"] = entity(
        "sensor_health",
        "binary_sensor",
        "Sensor health",
        dev_cla="problem",
        stat_t=health,
        val_tpl="{{ 'OFF' if value_json.sensors == 'ok' else 'ON' }}",
        **always,
    )
    diagnostic = {"ent_cat": "diagnostic", **always}
    if code_reference:
        cmps["code_drift"] = entity(
            "code_drift",
            "binary_sensor",
            "Code usage drift",
            dev_cla="problem",
            stat_t=health,
            val_tpl="{{ 'ON' if value_json.drift else 'OFF' }}",
            **diagnostic,
        )
        cmps["code_jsd"] = entity(
            "code_jsd",
            "sensor",
            "Code usage divergence",
            stat_t=stats,
            val_tpl="{{ value_json.health.jsd if value_json.health is defined else none }}",
            stat_cla="measurement",
            sug_dsp_prc=3,
            ic="mdi:chart-bell-curve",
            **diagnostic,
        )
    cmps["perplexity"] = entity(
        "perplexity",
        "sensor",
        "Code usage perplexity",
        stat_t=stats,
        val_tpl="{{ value_json.health.perplexity if value_json.health is defined else none }}",
        stat_cla="measurement",
        sug_dsp_prc=1,
        ic="mdi:chart-bar",
        **diagnostic,
    )
    cmps["spool_depth"] = entity(
        "spool_depth",
        "sensor",
        "Spool depth",
        stat_t=stats,
        val_tpl="{{ value_json.counters.spool_depth }}",
        stat_cla="measurement",
        ic="mdi:tray-full",
        **diagnostic,
    )
    cmps["latency_p99"] = entity(
        "latency_p99",
        "sensor",
        "End-to-end latency p99",
        stat_t=stats,
        # stats carries microseconds; a period with no windows has no "e2e" entry.
        val_tpl=(
            "{{ (value_json.latency_us.e2e.p99 / 1000) | round(2)"
            " if value_json.latency_us.e2e is defined else none }}"
        ),
        unit_of_meas="ms",
        dev_cla="duration",
        stat_cla="measurement",
        **diagnostic,
    )
    device: dict[str, Any] = {
        "ids": [uid],
        "name": ha.name or f"fsqd {mqtt.node_id}",
        "mf": "fsqd",
        "mdl": model_name,
        "sw": __version__,
    }
    if model_version:
        device["mdl_id"] = model_version
    if hardware:
        device["hw"] = hardware
    return {"dev": device, "o": {"name": "fsqd", "sw": __version__}, "cmps": cmps}


def discovery_for(
    ha: HomeAssistantSettings,
    mqtt: MqttSettings,
    *,
    labels: tuple[str, ...] | None,
    model_name: str,
    model_version: str | None = None,
    hardware: str | None = None,
    code_reference: bool = False,
) -> Discovery | None:
    """What ``MqttSink(discovery=...)`` takes; None when discovery is switched off."""
    if not ha.enabled:
        return None
    body = discovery_payload(
        ha,
        mqtt,
        labels=labels,
        model_name=model_name,
        model_version=model_version,
        hardware=hardware,
        code_reference=code_reference,
    )
    return Discovery(
        topic=discovery_topic(ha, mqtt),
        payload=json.dumps(body, separators=(",", ":")).encode(),
        birth_topic=birth_topic(ha),
        resend_delay_s=(ha.resend_min_s, ha.resend_max_s),
        min_interval_s=max(RESEND_MIN_INTERVAL_S, ha.resend_max_s),
    )

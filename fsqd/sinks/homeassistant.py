"""Home Assistant MQTT discovery, in the device-based form.

One retained message on ``<prefix>/device/<object_id>/config`` announces the node
as one device with its entities (HA >= 2024.11). Checked against Home Assistant's
MQTT integration documentation ("Device discovery payload": the shared root keys
``dev`` and ``o`` are required, each component under ``cmps`` needs ``p`` and a
``unique_id``; ``state_topic``, ``availability`` and ``qos`` may be shared at the
root) and its abbreviation table (``cmps`` = components, ``p`` = platform,
``dev`` = device, ``o`` = origin, ``ids`` = identifiers, ``mf``/``mdl``/``sw``).

Entities: the behaviour label (an ``enum`` sensor whose options are the model
head's labels; left out when the model has no head), the code, and the end-to-end
latency p99 (milliseconds, from ``stats``). Availability is ``<base>/status``
(``online``/``offline``). The sink resends the message after a random 1-5 s delay
whenever ``homeassistant/status`` says ``online`` (HA restarted); births that arrive
meanwhile join that one resend, and resends are at least 5 s apart (a flood of births
is one message every few seconds, not one per birth).
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

# However often Home Assistant's birth message arrives, discovery goes out at most this often.
RESEND_MIN_INTERVAL_S = 5.0


def discovery_payload(
    ha: HomeAssistantSettings,
    mqtt: MqttSettings,
    *,
    labels: tuple[str, ...] | None,
    model_name: str,
    model_version: str | None = None,
) -> dict[str, Any]:
    """The device discovery message as a dict (abbreviated keys, as HA documents them)."""
    node = mqtt.node_id
    uid = f"fsqd_{node}"
    codes = mqtt.topic("codes")
    cmps: dict[str, dict[str, Any]] = {}
    if labels:
        cmps["behaviour"] = {
            "p": "sensor",
            "name": "Behaviour",
            "uniq_id": f"{uid}_behaviour",
            "dev_cla": "enum",
            "ops": list(labels),
            "stat_t": codes,
            "val_tpl": "{{ value_json.label }}",
            "ic": "mdi:run",
        }
    cmps["code"] = {
        "p": "sensor",
        "name": "Code",
        "uniq_id": f"{uid}_code",
        "stat_t": codes,
        "val_tpl": "{{ value_json.code }}",
        "ic": "mdi:barcode",
    }
    cmps["latency_p99"] = {
        "p": "sensor",
        "name": "End-to-end latency p99",
        "uniq_id": f"{uid}_latency_p99",
        "stat_t": mqtt.topic("stats"),
        # stats carries microseconds; a period with no windows has no "e2e" entry.
        "val_tpl": (
            "{{ (value_json.latency_us.e2e.p99 / 1000) | round(2)"
            " if value_json.latency_us.e2e is defined else none }}"
        ),
        "unit_of_meas": "ms",
        "dev_cla": "duration",
        "stat_cla": "measurement",
        "ent_cat": "diagnostic",
    }
    device: dict[str, Any] = {
        "ids": [uid],
        "name": ha.name or f"fsqd {node}",
        "mf": "fsqd",
        "mdl": model_name,
        "sw": __version__,
    }
    if model_version:
        device["mdl_id"] = model_version
    return {
        "dev": device,
        "o": {"name": "fsqd", "sw": __version__},
        "avty": [{"t": mqtt.topic("status"), "pl_avail": "online", "pl_not_avail": "offline"}],
        "qos": 1,
        "cmps": cmps,
    }


def discovery_for(
    ha: HomeAssistantSettings,
    mqtt: MqttSettings,
    *,
    labels: tuple[str, ...] | None,
    model_name: str,
    model_version: str | None = None,
) -> Discovery | None:
    """What ``MqttSink(discovery=...)`` takes; None when discovery is switched off."""
    if not ha.enabled:
        return None
    body = discovery_payload(
        ha, mqtt, labels=labels, model_name=model_name, model_version=model_version
    )
    return Discovery(
        topic=discovery_topic(ha, mqtt),
        payload=json.dumps(body, separators=(",", ":")).encode(),
        birth_topic=birth_topic(ha),
        resend_delay_s=(ha.resend_min_s, ha.resend_max_s),
        min_interval_s=max(RESEND_MIN_INTERVAL_S, ha.resend_max_s),
    )

"""``[homeassistant]``: MQTT discovery (``fsqd.sinks.homeassistant``), and its topics."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fsqd.config.mqtt import MqttSettings
from fsqd.tomlcheck import Table

__all__ = [
    "HomeAssistantSettings",
    "birth_topic",
    "discovery_topic",
    "ha_topics",
    "parse_homeassistant",
]

_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class HomeAssistantSettings:
    enabled: bool = True
    prefix: str = "homeassistant"
    name: str | None = None  # device name shown in HA; default "fsqd <node_id>"
    resend_min_s: float = 1.0
    resend_max_s: float = 5.0


def parse_homeassistant(table: Table) -> HomeAssistantSettings:
    """Read ``[homeassistant]`` (all keys optional; discovery is on by default)."""
    prefix = table.get("prefix", str, "homeassistant")
    if not _PREFIX.match(prefix):
        raise table.error("prefix", f"must be topic levels of A-Z a-z 0-9 _ -, got {prefix!r}")
    name = table.optional("name", str)
    if name is not None and not name.strip():
        raise table.error("name", "must not be empty")
    settings = HomeAssistantSettings(
        enabled=table.get("enabled", bool, True),
        prefix=prefix,
        name=name,
        resend_min_s=table.number("resend_min", 1.0, low=0.0, high=300),
        resend_max_s=table.number("resend_max", 5.0, low=0.0, high=300),
    )
    if settings.resend_max_s < settings.resend_min_s:
        raise table.error("resend_max", "must be >= resend_min")
    table.done()
    return settings


def discovery_topic(ha: HomeAssistantSettings, mqtt: MqttSettings) -> str:
    return f"{ha.prefix}/device/fsqd_{mqtt.node_id}/config"


def birth_topic(ha: HomeAssistantSettings) -> str:
    return f"{ha.prefix}/status"


def ha_topics(ha: HomeAssistantSettings, mqtt: MqttSettings) -> tuple[str, ...]:
    """The topics discovery publishes to and subscribes to."""
    return (discovery_topic(ha, mqtt), birth_topic(ha))

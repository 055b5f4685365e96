"""``fsqd collect``'s file: ``[mqtt]`` (the daemon's table: broker, TLS, credentials) and
``[collect]`` (the store, the share group, the bounds). Every problem is one line (exit 78).

``[mqtt]`` is read by the daemon's own parser, so the keys, the credential files and
systemd credentials, and the TLS checks are the same; its ``node_id`` and spool keys
mean nothing to a collector and are accepted as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fsqd.config.mqtt import MqttSettings, default_node_id, parse_mqtt
from fsqd.tomlcheck import Table, load_config_toml

__all__ = ["KINDS", "CollectConfig", "CollectSettings", "load_collect_config", "parse_collect"]

KINDS = ("codes", "state", "events", "stats", "health", "info", "status")
# A share name and a collector id are single MQTT topic levels (and file names).
_LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class CollectSettings:
    store: Path
    collector_id: str
    group: str = "fsqd"
    kinds: tuple[str, ...] = KINDS
    session_expiry_s: int = 7 * 86400
    max_unacked: int = 5000
    flush_rows: int = 2500
    flush_interval_s: float = 5.0
    stats_interval_s: float = 60.0
    compact_files: int = 16
    gap_grace_s: float = 60.0


@dataclass(frozen=True)
class CollectConfig:
    path: Path
    mqtt: MqttSettings
    collect: CollectSettings


def parse_collect(t: Table, base: Path) -> CollectSettings:
    store = t.get("store", str)
    if not store.strip():
        raise t.error("store", "must not be empty")
    group = t.get("group", str, "fsqd")
    if not _LEVEL.match(group):
        raise t.error("group", f"{group!r}: use 1-64 letters, digits, '_' or '-'")
    ident = t.get("collector_id", str, default_node_id())
    if not _LEVEL.match(ident):
        raise t.error("collector_id", f"{ident!r}: use 1-64 letters, digits, '_' or '-'")
    kinds = t.get("topics", list, list(KINDS))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise t.error("topics", f"must be some of {', '.join(KINDS)}, got {kinds!r}")
    max_unacked = t.integer("max_unacked", 5000, low=1, high=65535)  # MQTT's Receive Maximum
    s = CollectSettings(
        store=base / Path(store).expanduser(),
        collector_id=ident,
        group=group,
        kinds=tuple(kinds),
        session_expiry_s=t.integer("session_expiry", 7 * 86400, low=0, high=2**32 - 1),
        max_unacked=max_unacked,
        # Half the window by default: the broker keeps sending while a commit runs.
        flush_rows=t.integer("flush_rows", max(1, max_unacked // 2), low=1, high=max_unacked),
        flush_interval_s=t.number("flush_interval", 5.0, low=0.0, low_open=True, high=3600),
        stats_interval_s=t.number("stats_interval", 60.0, low=1.0, high=86400),
        compact_files=t.integer("compact_files", 16, low=2, high=100_000),
        gap_grace_s=t.number("gap_grace", 60.0, low=0.0, high=86400),
    )
    t.done()
    return s


def load_collect_config(path: Path) -> CollectConfig:
    _, data = load_config_toml(path)
    root = Table(data, path.name)
    if not root.has("mqtt"):
        raise root.error("[mqtt]", "missing: the collector needs a broker")
    if not root.has("collect"):
        raise root.error("[collect]", "missing: the collector needs at least 'store'")
    mqtt_t = root.table("mqtt")
    mqtt = parse_mqtt(mqtt_t, base_dir=path.parent)
    collect = parse_collect(root.table("collect"), path.parent)
    root.done()
    return CollectConfig(path, mqtt, collect)

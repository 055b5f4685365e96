"""``[service]``: the node's id, its state directory (the spool), what to do without a broker."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fsqd.tomlcheck import Table

__all__ = [
    "DEFAULT_STATE_DIR",
    "WITHOUT_BROKER",
    "ServiceConfig",
    "default_state_dir",
    "given_node_id",
    "parse_service",
]

WITHOUT_BROKER = ("spool", "stdout")
DEFAULT_STATE_DIR = Path("/var/lib/fsqd")
# MQTT topic levels and Home Assistant ids: no '/', '+', '#', spaces.
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ServiceConfig:
    node_id: str
    state_dir: Path = DEFAULT_STATE_DIR
    without_broker: str = "spool"  # broker down at start: keep MQTT+spool, or print to stdout
    drain_timeout_s: float = 5.0


def given_node_id(t: Table) -> str | None:
    """``node_id`` as given in the table (None: [mqtt]'s or the hostname is used)."""
    given = t.optional("node_id", str)
    if given is not None and not _NODE_ID.match(given):
        raise t.error(
            "node_id", f"{given!r}: use 1-64 letters, digits, '_' or '-' (it is an MQTT topic)"
        )
    return given


def default_state_dir() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY (colon-separated when several).
    env = os.environ.get("STATE_DIRECTORY")
    return Path(env.split(":")[0]) if env else DEFAULT_STATE_DIR


def parse_service(t: Table, base: Path, node_id: str) -> ServiceConfig:
    """The rest of the table, once the node id is settled (``given_node_id`` took its key)."""
    state = t.optional("state_dir", str)
    cfg = ServiceConfig(
        node_id=node_id,
        state_dir=default_state_dir() if state is None else base / Path(state).expanduser(),
        without_broker=t.choice("without_broker", WITHOUT_BROKER, "spool"),
        drain_timeout_s=t.number("drain_timeout_s", 5.0, low=0.0, high=600.0),
    )
    t.done()
    return cfg

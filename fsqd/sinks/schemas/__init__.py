"""JSON Schemas (draft 2020-12) of every payload fsqd publishes, shipped in the wheel.

``load("codes")`` returns the parsed schema of ``fsqd/<node_id>/codes``; the names
are codes, status, stats, info, health, state, events and homeassistant (the discovery
message).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["NAMES", "load"]

NAMES = ("codes", "status", "stats", "info", "health", "state", "events", "homeassistant")


def load(name: str) -> dict[str, Any]:
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}; known: {', '.join(NAMES)}")
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema

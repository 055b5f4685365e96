"""The daemon's configuration: one module per TOML table
and the loader (``load_config``, ``load_for_run``); tables are checked with
``fsqd.tomlcheck``. Every key fsqd reads is defined here; ``[[sensor]]`` is read by
``fsqd.imu.acquire.config`` (it checks driver names against the driver registry).

The names below are imported on first use, so ``import fsqd.config`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsqd.config.behaviour import BehaviourConfig
    from fsqd.config.hailo import HailoSettings
    from fsqd.config.homeassistant import HomeAssistantSettings
    from fsqd.config.loader import Config, load_config, load_for_run, prepare_state_dir
    from fsqd.config.logging import LoggingConfig
    from fsqd.config.model import ModelConfig
    from fsqd.config.mqtt import MqttSettings, Secret, tls_context
    from fsqd.config.service import DEFAULT_STATE_DIR, ServiceConfig, default_state_dir
    from fsqd.config.stats import StatsConfig
    from fsqd.config.window import WindowConfig

_HOME = {
    "BehaviourConfig": "behaviour",
    "DEFAULT_STATE_DIR": "service",
    "Config": "loader",
    "HailoSettings": "hailo",
    "HomeAssistantSettings": "homeassistant",
    "LoggingConfig": "logging",
    "ModelConfig": "model",
    "MqttSettings": "mqtt",
    "Secret": "mqtt",
    "ServiceConfig": "service",
    "StatsConfig": "stats",
    "WindowConfig": "window",
    "default_state_dir": "service",
    "load_config": "loader",
    "load_for_run": "loader",
    "prepare_state_dir": "loader",
    "tls_context": "mqtt",
}

__all__ = [
    "DEFAULT_STATE_DIR",
    "BehaviourConfig",
    "Config",
    "HailoSettings",
    "HomeAssistantSettings",
    "LoggingConfig",
    "ModelConfig",
    "MqttSettings",
    "Secret",
    "ServiceConfig",
    "StatsConfig",
    "WindowConfig",
    "default_state_dir",
    "load_config",
    "load_for_run",
    "prepare_state_dir",
    "tls_context",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

"""The daemon's configuration: one module per TOML table, the table checker
(``tomlcheck``) and the loader (``load_config``, ``load_for_run``). Every key fsqd reads
is defined here; ``[[sensor]]`` is read by ``fsqd.sensors.config``."""

from fsqd.config.hailo import HailoSettings
from fsqd.config.homeassistant import HomeAssistantSettings
from fsqd.config.loader import Config, load_config, load_for_run, prepare_state_dir
from fsqd.config.logging import LoggingConfig
from fsqd.config.model import ModelConfig
from fsqd.config.mqtt import MqttSettings, Secret, tls_context
from fsqd.config.service import DEFAULT_STATE_DIR, ServiceConfig, default_state_dir
from fsqd.config.stats import StatsConfig
from fsqd.config.window import WindowConfig

__all__ = [
    "DEFAULT_STATE_DIR",
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

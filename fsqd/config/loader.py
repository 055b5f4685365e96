"""The daemon's TOML file -> one frozen ``Config``; every problem is one line (exit 78).

Each table is read by its module in ``fsqd.config`` (``[model]``, ``[hailo]``,
``[window]``, ``[behaviour]``, ``[health]``, ``[mqtt]``, ``[homeassistant]``, ``[service]``,
``[stats]``, ``[logging]``);
``[[sensor]]`` by ``fsqd.imu.acquire.config``. Unknown keys are refused naming the nearest
valid one; relative paths are relative to the config file's directory (a service's
working directory is ``/``). Reading a config loads neither the MQTT client nor
onnxruntime.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fsqd.config.behaviour import BehaviourConfig, parse_behaviour
from fsqd.config.hailo import HailoSettings, parse_hailo
from fsqd.config.health import HealthSettings, parse_health
from fsqd.config.homeassistant import HomeAssistantSettings, ha_topics, parse_homeassistant
from fsqd.config.logging import LoggingConfig, parse_logging
from fsqd.config.model import ModelConfig, parse_model
from fsqd.config.mqtt import MqttSettings, default_node_id, parse_mqtt, topic_problem
from fsqd.config.service import ServiceConfig, given_node_id, parse_service
from fsqd.config.stats import StatsConfig, parse_stats
from fsqd.config.window import WindowConfig, parse_window
from fsqd.errors import ConfigError
from fsqd.imu.acquire.config import SensorConfig, parse_sensors
from fsqd.safefile import kind_of
from fsqd.tomlcheck import Table, load_config_toml

__all__ = ["Config", "load_config", "load_for_run", "prepare_state_dir"]


@dataclass(frozen=True)
class Config:
    path: Path
    sha256: str  # of the file's bytes: the ``info`` payload's config hash
    model: ModelConfig
    window: WindowConfig
    service: ServiceConfig
    stats: StatsConfig
    logging: LoggingConfig
    mqtt: MqttSettings | None  # None: no broker configured (codes go to stdout)
    homeassistant: HomeAssistantSettings
    sensors: tuple[SensorConfig, ...]
    hailo: HailoSettings = field(default_factory=HailoSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)

    @property
    def hash(self) -> str:
        return self.sha256[:16]


def load_for_run(path: Path, *, stdout: bool = False) -> Config:
    """The config as ``fsqd run`` takes it, and ``fsqd check-config`` checks it: the file
    (``load_config``), then what the daemon needs of the machine before it starts (the
    state directory, unless codes go to stdout). Any problem is one line, exit 78."""
    config = load_config(path)
    if not stdout:
        prepare_state_dir(config)
    return config


def prepare_state_dir(config: Config) -> None:
    """``[service] state_dir`` holds the spool when a broker is configured: it must be a
    directory (created when missing, as the spool would) in which files can be created."""
    if config.mqtt is None:
        return
    path = config.service.state_dir

    def error(why: str) -> ConfigError:
        return ConfigError(f"{config.path.name} [service] state_dir: {path}: {why}")

    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        pass  # something that is not a directory: named below
    except OSError as e:
        raise error(f"cannot create it: {e.strerror or e}") from None
    try:
        st = path.stat()
    except OSError as e:
        raise error(f"cannot use it: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise error(f"is {kind_of(st.st_mode)}, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fsqd-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise error(f"cannot create files in it: {e.strerror or e}") from None


def load_config(path: Path) -> Config:
    """Read and check the whole file; any problem is a one-line ConfigError."""
    raw, data = load_config_toml(path)
    root = Table(data, path.name)
    base = path.parent
    model = parse_model(root.table("model"), base)
    hailo = parse_hailo(root.table("hailo"))
    window = parse_window(root.table("window"), model.package)
    behaviour = parse_behaviour(root.table("behaviour"))
    service_t = root.table("service")
    given_node = given_node_id(service_t)
    stats = parse_stats(root.table("stats"))
    logging = parse_logging(root.table("logging"))
    health = parse_health(root.table("health"))
    mqtt_t = root.table("mqtt")
    mqtt = _parse_mqtt(mqtt_t, given_node, base)
    mqtt_t.done()
    node_id = given_node or (mqtt.node_id if mqtt is not None else default_node_id())
    service = parse_service(service_t, base, node_id)
    ha_t = root.table("homeassistant")
    ha = parse_homeassistant(ha_t)
    ha_t.done()
    if mqtt is not None and ha.enabled and (problem := topic_problem(ha_topics(ha, mqtt))):
        raise ha_t.error("prefix", problem)
    sensor_tables = root.tables("sensor")
    if not sensor_tables:
        raise root.error("[[sensor]]", "missing: the daemon needs at least one sensor table")
    sensors = parse_sensors(sensor_tables)
    for t in sensor_tables:
        t.done()
    root.done()
    return Config(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        model=model,
        window=window,
        service=service,
        stats=stats,
        logging=logging,
        mqtt=mqtt,
        homeassistant=ha,
        sensors=sensors,
        hailo=hailo,
        health=health,
        behaviour=behaviour,
    )


def _parse_mqtt(table: Table, node_id: str | None, base: Path) -> MqttSettings | None:
    """``[mqtt]`` by its owner; the node id is one value, from [service] or [mqtt]."""
    if not table.data:
        return None
    if node_id is not None and table.has("node_id") and table.data["node_id"] != node_id:
        raise table.error("node_id", f"differs from [service] node_id = {node_id!r}: give one")
    return parse_mqtt(table, node_id=node_id, base_dir=base)

"""The daemon's TOML file -> frozen dataclasses; every problem is one line (exit 78).

Tables: ``[model]``, ``[hailo]`` (``fsqd.backends.hailo.parse_hailo``), ``[window]``,
``[mqtt]``, ``[homeassistant]``, ``[service]``, ``[stats]``, ``[logging]`` and
``[[sensor]]``. Unknown keys are refused naming the nearest valid one; relative paths are
relative to the config file's directory (a service's working directory is ``/``). The
transport tables and the sensor tables are parsed by their owners (``fsqd.sinks.mqtt``,
``fsqd.sinks.homeassistant``, ``fsqd.sensors.config``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fsqd.backends.hailo import HailoSettings, parse_hailo
from fsqd.errors import ConfigError, FsqdError, NoInputError
from fsqd.model.package import ModelPackage, load_package
from fsqd.safefile import kind_of
from fsqd.sensors.config import SensorConfig, parse_sensors
from fsqd.sinks.homeassistant import HomeAssistantSettings, ha_topics, parse_homeassistant
from fsqd.sinks.mqtt import MqttSettings, default_node_id, parse_mqtt
from fsqd.sinks.mqttconfig import topic_problem
from fsqd.tomlcheck import Table, load_toml

BACKENDS = ("auto", "hailo", "onnx")
LOG_FORMATS = ("auto", "console", "json", "journal")
LOG_LEVELS = ("debug", "info", "warning", "error")
WITHOUT_BROKER = ("spool", "stdout")
DEFAULT_STATE_DIR = Path("/var/lib/fsqd")
# MQTT topic levels and Home Assistant ids: no '/', '+', '#', spaces.
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ModelConfig:
    package: ModelPackage
    backend: str = "auto"
    threads: int | None = None  # onnxruntime threads over up to two sessions (None: usable cores)


@dataclass(frozen=True)
class WindowConfig:
    hop: int | None = None  # samples between windows (None: the card's)
    max_gap_periods: float = 2.5
    max_pending: int = 64  # windows waiting for inference before the oldest are dropped
    max_batch: int = 32  # windows per inference call when catching up


@dataclass(frozen=True)
class ServiceConfig:
    node_id: str
    state_dir: Path = DEFAULT_STATE_DIR
    without_broker: str = "spool"  # broker down at start: keep MQTT+spool, or print to stdout
    drain_timeout_s: float = 5.0


@dataclass(frozen=True)
class StatsConfig:
    interval_s: float = 60.0


@dataclass(frozen=True)
class LoggingConfig:
    format: str = "auto"
    level: str = "info"


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

    @property
    def hash(self) -> str:
        return self.sha256[:16]


# -- [mqtt] (parsed by fsqd.sinks.mqtt) --


def _parse_mqtt(table: Table, node_id: str | None, base: Path) -> MqttSettings | None:
    """``[mqtt]`` by its owner; the node id is one value, from [service] or [mqtt]."""
    if not table.data:
        return None
    if node_id is not None and table.has("node_id") and table.data["node_id"] != node_id:
        raise table.error("node_id", f"differs from [service] node_id = {node_id!r}: give one")
    return parse_mqtt(table, node_id=node_id, base_dir=base)


# -- the file --


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
    try:
        raw, data = load_toml(path)
    except NoInputError as e:
        raise ConfigError(str(e)) from None  # the daemon's config is configuration (exit 78)
    root = Table(data, path.name)
    base = path.parent
    model = _model(root.table("model"), base)
    hailo = parse_hailo(root.table("hailo"))
    window = _window(root.table("window"), model.package)
    service_t = root.table("service")
    given_node = service_t.optional("node_id", str)
    if given_node is not None and not _NODE_ID.match(given_node):
        raise service_t.error(
            "node_id", f"{given_node!r}: use 1-64 letters, digits, '_' or '-' (it is an MQTT topic)"
        )
    stats_t = root.table("stats")
    stats = StatsConfig(stats_t.number("interval_s", 60.0, low=1.0, high=86400.0))
    stats_t.done()
    log_t = root.table("logging")
    logging = LoggingConfig(
        log_t.choice("format", LOG_FORMATS, "auto"), log_t.choice("level", LOG_LEVELS, "info")
    )
    log_t.done()
    mqtt_t = root.table("mqtt")
    mqtt = _parse_mqtt(mqtt_t, given_node, base)
    mqtt_t.done()
    node_id = given_node or (mqtt.node_id if mqtt is not None else default_node_id())
    service = _service(service_t, base, node_id)
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
    )


def _model(t: Table, base: Path) -> ModelConfig:
    text = t.optional("path", str)
    path = None if text is None else base / Path(text).expanduser()
    backend = t.choice("backend", BACKENDS, "auto")
    threads = _optional_int(t, "threads", 1, 64)
    t.done()
    try:
        package = load_package(path)
    except FsqdError as e:
        raise t.error("path", str(e)) from None
    return ModelConfig(package, backend, threads)


def _window(t: Table, package: ModelPackage) -> WindowConfig:
    card = package.card
    hop = _optional_int(t, "hop", 1, card.window * 100)
    cfg = WindowConfig(
        hop=hop,
        max_gap_periods=t.number("max_gap_periods", 2.5, low=1.0, low_open=True),
        max_pending=t.integer("max_pending", 64, low=1, high=100_000),
        max_batch=t.integer("max_batch", 32, low=1, high=4096),
    )
    t.done()
    return cfg


def _optional_int(t: Table, key: str, low: int, high: int) -> int | None:
    return t.integer(key, low=low, high=high) if t.has(key) else t.optional(key, int)


def default_state_dir() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY (colon-separated when several).
    env = os.environ.get("STATE_DIRECTORY")
    return Path(env.split(":")[0]) if env else DEFAULT_STATE_DIR


def _service(t: Table, base: Path, node_id: str) -> ServiceConfig:
    state = t.optional("state_dir", str)
    cfg = ServiceConfig(
        node_id=node_id,
        state_dir=default_state_dir() if state is None else base / Path(state).expanduser(),
        without_broker=t.choice("without_broker", WITHOUT_BROKER, "spool"),
        drain_timeout_s=t.number("drain_timeout_s", 5.0, low=0.0, high=600.0),
    )
    t.done()
    return cfg

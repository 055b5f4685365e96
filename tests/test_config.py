"""The daemon's config file: defaults, and one line (exit 78) for each kind of problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsqd.commands.check_config import describe
from fsqd.config import DEFAULT_STATE_DIR, load_config
from fsqd.errors import EX_CONFIG, ConfigError
from fsqd.model.package import bundled_model_path

SENSOR = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'


def write(tmp_path: Path, body: str, sensor: str = SENSOR) -> Path:
    p = tmp_path / "fsqd.toml"
    p.write_text(body + "\n" + sensor)
    return p


def error(tmp_path: Path, body: str, sensor: str = SENSOR) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, body, sensor))
    assert e.value.exit_code == EX_CONFIG
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    c = load_config(write(tmp_path, ""))
    assert c.model.package.path == bundled_model_path()
    assert c.model.backend == "auto" and c.model.threads is None
    assert c.window.hop is None and c.window.max_pending == 64
    assert c.service.state_dir == DEFAULT_STATE_DIR
    assert c.service.node_id  # the hostname
    assert c.mqtt is None
    assert c.stats.interval_s == 60.0
    assert (c.logging.format, c.logging.level) == ("auto", "info")
    assert len(c.sensors) == 1
    assert len(c.sha256) == 64 and c.hash == c.sha256[:16]
    assert "hop 50 (card)" in describe(c)
    assert (c.behaviour.lag_s, c.behaviour.min_dwell_s, c.behaviour.confidence_step) == (
        1.0,
        1.5,
        0.1,
    )
    assert (
        "behaviour  explicit-duration HMM (the card's semi-Markov model), lag 1 s; "
        "state republished when confidence moves 0.1" in describe(c)
    )


def test_values_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    model = tmp_path / "models" / "m"
    model.parent.mkdir()
    os.symlink(bundled_model_path(), model)
    c = load_config(
        write(
            tmp_path,
            """
[model]
path = "models/m"
backend = "onnx"
threads = 2
[window]
hop = 10
max_pending = 8
[service]
node_id = "collar-7"
state_dir = "state"
without_broker = "stdout"
[stats]
interval_s = 15
[logging]
format = "json"
level = "debug"
[mqtt]
host = "broker.local"
port = 8883
""",
        )
    )
    assert c.model.package.path == model and c.model.backend == "onnx" and c.model.threads == 2
    assert c.window.hop == 10 and c.window.max_pending == 8
    assert c.service.node_id == "collar-7" and c.service.state_dir == tmp_path / "state"
    assert c.service.without_broker == "stdout"
    assert c.stats.interval_s == 15.0
    assert (c.logging.format, c.logging.level) == ("json", "debug")
    assert c.mqtt is not None and (c.mqtt.host, c.mqtt.port) == ("broker.local", 8883)


def test_state_directory_from_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/fsqd-a:/var/lib/other")
    assert load_config(write(tmp_path, "")).service.state_dir == Path("/var/lib/fsqd-a")


def test_config_hash_follows_the_bytes(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, "[stats]\ninterval_s = 10")).sha256
    b = load_config(write(tmp_path, "[stats]\ninterval_s = 11")).sha256
    assert a != b


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ("[window]\nhopp = 10", "fsqd.toml [window] hopp: unknown key (did you mean 'hop'?)"),
        ("[modle]\npath = 'x'", "fsqd.toml modle: unknown key (did you mean 'model'?)"),
        ("[window]\nhop = '10'", "fsqd.toml [window] hop: expected an integer, got '10' (str)"),
        ("[window]\nhop = 0", "fsqd.toml [window] hop: must be in 1..10000, got 0"),
        ("[stats]\ninterval_s = true", "[stats] interval_s: expected a number, got True (bool)"),
        ("[model]\nbackend = 'npu'", "[model] backend: must be one of auto, hailo, onnx"),
        ("[logging]\nlevel = 'verbose'", "[logging] level: must be one of"),
        ("[service]\nnode_id = 'a/b'", "[service] node_id: 'a/b': use 1-64 letters"),
        ("[service]\nwithout_broker = 'drop'", "[service] without_broker: must be one of spool"),
        ("[mqtt]\nport = 1883", "[mqtt] host: missing (required)"),
        ("[model]\nbackends = 'onnx'", "[model] backends: unknown key (did you mean 'backend'?)"),
        ("[stats]\ninterval = 5", "[stats] interval: unknown key (did you mean 'interval_s'?)"),
        ("[logging]\nlevl = 'info'", "[logging] levl: unknown key (did you mean 'level'?)"),
        ("[service]\nstate_directory = 'x'", "[service] state_directory: unknown key"),
        ("[homeassistant]\nenable = false", "[homeassistant] enable: unknown key"),
        ("[behaviour]\nlag = 1", "[behaviour] lag: unknown key (did you mean 'lag_s'?)"),
        ("[behaviour]\nlag_s = -1", "[behaviour] lag_s: must be >= 0 and <= 60, got -1"),
        ("[behaviour]\nconfidence_step = 0", "[behaviour] confidence_step: must be > 0"),
        ("[behaviour]\nmin_dwell_s = 'x'", "[behaviour] min_dwell_s: expected a number"),
        ("window = 3", "fsqd.toml window: expected a table, got 3 (int)"),
    ],
)
def test_each_problem_is_one_line(tmp_path: Path, body: str, expect: str) -> None:
    assert expect in error(tmp_path, body)


def test_missing_model(tmp_path: Path) -> None:
    msg = error(tmp_path, "[model]\npath = 'no-such-model'")
    assert msg.startswith("fsqd.toml [model] path: ")
    assert "no-such-model: no such model package" in msg


def test_unreadable_credential_file(tmp_path: Path) -> None:
    msg = error(
        tmp_path, f"[mqtt]\nhost = 'b'\nusername = 'u'\npassword_file = '{tmp_path / 'nope'}'"
    )
    assert "[mqtt] password_file" in msg


def test_no_sensor_table(tmp_path: Path) -> None:
    assert "[[sensor]]" in error(tmp_path, "", sensor="")


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[window\nhop = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[window]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


@pytest.mark.parametrize("name", ["fsqd.toml", "demo.toml"])
def test_shipped_configs_are_valid(name: str) -> None:
    root = Path(__file__).resolve().parents[1]
    c = load_config(root / "configs" / name)
    assert c.mqtt is not None and len(c.sensors) == 1


def test_one_node_id_for_service_and_topics(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "[service]\nnode_id = 'n7'\n[mqtt]\nhost = 'b'"))
    assert c.service.node_id == "n7" and c.mqtt is not None and c.mqtt.node_id == "n7"
    assert c.mqtt.base_topic == "fsqd/n7"
    c = load_config(write(tmp_path, "[mqtt]\nhost = 'b'\nnode_id = 'm3'"))
    assert c.service.node_id == "m3"
    msg = error(tmp_path, "[service]\nnode_id = 'n7'\n[mqtt]\nhost = 'b'\nnode_id = 'm3'")
    assert "[mqtt] node_id: differs from [service] node_id = 'n7'" in msg

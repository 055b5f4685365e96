"""``fsqd collect``'s file: [mqtt] as the daemon reads it, [collect] checked as strictly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mosquitto import TlsFiles

from fsqd.config.collect import CollectConfig, load_collect_config
from fsqd.errors import ConfigError


def load(tmp_path: Path, text: str) -> CollectConfig:
    path = tmp_path / "collect.toml"
    path.write_text(text)
    return load_collect_config(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


MQTT = '[mqtt]\nhost = "broker.lan"\n'


def test_defaults_and_relative_store(tmp_path: Path) -> None:
    cfg = load(tmp_path, MQTT + '[collect]\nstore = "store"\ncollector_id = "a"\n')
    c = cfg.collect
    assert c.store == tmp_path / "store"
    assert (c.group, c.collector_id, c.max_unacked, c.flush_rows) == ("fsqd", "a", 5000, 2500)
    assert c.kinds == ("codes", "state", "events", "stats", "health", "info", "status")
    assert cfg.mqtt.host == "broker.lan" and cfg.mqtt.topic_prefix == "fsqd"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[collect]\nstore = "s"\nflush_rowz = 3\n', "flush_rowz: unknown key (did you mean"),
        ("[collect]\n", "store: missing"),
        ('[collect]\nstore = "s"\ngroup = "a/b"\n', "group"),
        ('[collect]\nstore = "s"\ncollector_id = "+"\n', "collector_id"),
        ('[collect]\nstore = "s"\ntopics = ["codes", "nope"]\n', "topics"),
        ('[collect]\nstore = "s"\nmax_unacked = 70000\n', "max_unacked: must be in 1..65535"),
        ('[collect]\nstore = "s"\nmax_unacked = 10\nflush_rows = 11\n', "flush_rows"),
        ('[collect]\nstore = "s"\n[other]\n', "other"),
    ],
)
def test_every_problem_is_one_line(tmp_path: Path, text: str, words: str) -> None:
    assert words in error(tmp_path, MQTT + text)


def test_mqtt_table_is_the_daemons(tmp_path: Path, tls_files: TlsFiles) -> None:
    # The same TLS and credential keys, checked the same way.
    assert "password: not allowed" in error(
        tmp_path, MQTT + 'username = "u"\npassword = "p"\n[collect]\nstore = "s"\n'
    )
    assert "ca_file" in error(tmp_path, MQTT + 'ca_file = "nope.pem"\n[collect]\nstore = "s"\n')
    (tmp_path / "pw").write_text("secret\n")
    cfg = load(
        tmp_path,
        MQTT
        + f'ca_file = "{tls_files.ca}"\nusername = "u"\npassword_file = "pw"\n'
        + '[collect]\nstore = "s"\n',
    )
    assert cfg.mqtt.tls and cfg.mqtt.port == 8883
    assert cfg.mqtt.password is not None and cfg.mqtt.password.value == "secret"
    assert "[mqtt]" in error(tmp_path, '[collect]\nstore = "s"\n')


def test_command_line_error_is_one_line_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MQTT + '[collect]\nstore = "s"\nflush_interval = -1\n')
    done = subprocess.run(
        [sys.executable, "-m", "fsqd", "collect", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert done.stderr.count("\n") == 1 and "flush_interval" in done.stderr


def test_the_shipped_example_loads_and_shows_every_key() -> None:
    path = Path(__file__).parent.parent / "configs" / "collect.toml"
    cfg = load_collect_config(path)
    assert cfg.collect.store == Path("/var/lib/fsqd-collect/store")
    text = path.read_text()
    keys = ["store", "collector_id", "group", "topics", "session_expiry", "max_unacked"]
    keys += ["flush_rows", "flush_interval", "stats_interval", "compact_files", "gap_grace"]
    assert all(f"{k} = " in text for k in keys)
    source = (Path(__file__).parent.parent / "fsqd" / "config" / "collect.py").read_text()
    assert sorted(re.findall(r'(?:get|integer|number)\(\s*"(\w+)"', source)) == sorted(keys)

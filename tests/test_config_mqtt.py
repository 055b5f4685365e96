"""The [mqtt] table: defaults, topics, TLS, credentials from files and systemd credentials."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from mosquitto import TlsFiles

from fsqd.errors import ConfigError
from fsqd.sinks.mqtt import MqttSettings, Secret, parse_mqtt
from fsqd.tomlcheck import Table


def parse(text: str) -> MqttSettings:
    return parse_mqtt(Table(tomllib.loads(text), "fsqd.toml [mqtt]"))


def error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_defaults_and_topics() -> None:
    s = parse('host = "broker.lan"\nnode_id = "barn-3"')
    assert (s.host, s.port, s.qos, s.keepalive_s, s.tls) == ("broker.lan", 1883, 1, 30, False)
    assert s.topic("codes") == "fsqd/barn-3/codes"
    assert s.base_topic == "fsqd/barn-3"
    assert s.client_id == "fsqd-barn-3"  # deterministic, from the node id
    assert s.username is None and s.password is None


def test_node_id_defaults_to_a_topic_safe_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "pi5 barn.local")
    assert parse('host = "b"').node_id == "pi5-barn"


@pytest.mark.parametrize("bad", ["a/b", "a+b", "#", "", "x" * 65, "a b"])
def test_node_id_must_be_one_topic_level(bad: str) -> None:
    assert "node_id" in error(f'host = "b"\nnode_id = "{bad}"')


def test_topic_prefix() -> None:
    assert parse('host = "b"\nnode_id = "n"\ntopic_prefix = "farm/a"').topic("status") == (
        "farm/a/n/status"
    )
    assert "topic_prefix" in error('host = "b"\ntopic_prefix = "farm/+"')


def test_host_is_required_and_unknown_keys_named() -> None:
    assert "host: missing" in error("port = 1883")
    assert "did you mean 'keepalive'" in error('host = "b"\nkeepalive_s = 3')


def test_password_never_inline() -> None:
    msg = error('host = "b"\nusername = "u"\npassword = "hunter2"')
    assert "not allowed in the config file: use password_file" in msg and "hunter2" not in msg


def test_credentials_from_files(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("fsqd\n")
    (tmp_path / "pw").write_text("hunter2\r\n")
    s = parse(
        f'host = "b"\nusername_file = "{tmp_path / "user"}"\npassword_file = "{tmp_path / "pw"}"'
    )
    assert s.username == "fsqd"
    assert s.password == Secret("hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.password)


def test_credentials_from_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt-password").write_text("hunter2")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = parse('host = "b"\nusername = "fsqd"\npassword_credential = "mqtt-password"')
    assert s.password is not None and s.password.value == "hunter2"
    msg = error('host = "b"\nusername = "u"\npassword_credential = "../etc/shadow"')
    assert "must be a credential name without '/'" in msg
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert "CREDENTIALS_DIRECTORY" in error(
        'host = "b"\nusername = "fsqd"\npassword_credential = "mqtt-password"'
    )


def test_unreadable_credential_file_is_one_line(tmp_path: Path) -> None:
    msg = error(f'host = "b"\nusername = "u"\npassword_file = "{tmp_path / "missing"}"')
    assert msg.startswith("fsqd.toml [mqtt] password_file: unreadable credential file")
    assert "missing: no such file" in msg
    (tmp_path / "empty").write_text("\n")
    assert "exactly one non-empty line" in error(
        f'host = "b"\nusername = "u"\npassword_file = "{tmp_path / "empty"}"'
    )
    (tmp_path / "two").write_text("zebra-secret\nline2\n")
    msg = error(f'host = "b"\nusername = "u"\npassword_file = "{tmp_path / "two"}"')
    assert "exactly one" in msg and "zebra" not in msg


def test_one_source_per_credential(tmp_path: Path) -> None:
    (tmp_path / "u").write_text("x")
    assert "only one of" in error(f'host = "b"\nusername = "u"\nusername_file = "{tmp_path / "u"}"')
    (tmp_path / "p").write_text("x")
    assert "needs a username" in error(f'host = "b"\npassword_file = "{tmp_path / "p"}"')


def test_tls(tmp_path: Path, tls_files: TlsFiles) -> None:
    ca = tls_files.ca
    s = parse(f'host = "b"\nca_file = "{ca}"')
    assert (s.tls, s.port, s.ca_file, s.tls_insecure) == (True, 8883, ca, False)
    assert parse('host = "b"\ntls = true').ca_file is None  # the system's CA store
    assert "no such file" in error(f'host = "b"\nca_file = "{tmp_path / "nope"}"')
    assert "go together" in error(f'host = "b"\ncert_file = "{ca}"')
    assert "tls" in error(f'host = "b"\ntls = false\nca_file = "{ca}"')


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("port = 0", "port"),
        ("qos = 2", "qos"),
        ("keepalive = 1", "keepalive"),
        ("reconnect_min = 0", "reconnect_min"),
        ("reconnect_min = 5\nreconnect_max = 2", "reconnect_max"),
        ("spool_max = 0", "spool_max"),
        ("spool_max_bytes = 1000", "spool_max_bytes"),
        ('spool_max_bytes = "1G"', "spool_max_bytes"),
        ("spool_commit = 0", "spool_commit"),
        ('port = "1883"', "port"),
    ],
)
def test_bounds(line: str, key: str) -> None:
    assert f"[mqtt] {key}" in error(f'host = "b"\n{line}')


def test_spool_max_bytes_given_or_left_to_the_free_space() -> None:
    assert parse('host = "b"').spool_max_bytes is None  # the spool takes a share at start
    assert parse('host = "b"\nspool_max_bytes = 64_000_000').spool_max_bytes == 64_000_000

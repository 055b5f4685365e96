"""The ``[mqtt]`` table: broker address, topics, TLS, credentials, spool bounds.

Credentials come from files or systemd credentials (``$CREDENTIALS_DIRECTORY/<name>``,
set by ``LoadCredential=``), never from the command line or the TOML itself, and the
password is held in a ``Secret`` whose repr never shows it.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from fsqd.sinks.spoolspace import SPOOL_MIN_BYTES
from fsqd.tomlcheck import Table

# One MQTT topic level that is also a Home Assistant id: no '/', '+', '#', no spaces.
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class Secret:
    """A string that never appears in a repr, a log line or an error message."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class MqttSettings:
    host: str
    node_id: str
    port: int = 1883
    topic_prefix: str = "fsqd"
    keepalive_s: int = 30
    qos: int = 1
    # TLS: on with tls = true or any of the files; hostname checks stay on unless
    # tls_insecure (a self-signed broker reached by IP address).
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    username: str | None = None
    password: Secret | None = None
    # Reconnect back-off: min * 2**failures, capped, times a random 0.5..1.
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    # A connection that ends sooner than this after CONNACK counts as a failure, so
    # a broker that kicks us (e.g. a duplicate client id) cannot cause a storm.
    stable_s: float = 10.0
    publish_timeout_s: float = 10.0
    max_inflight: int = 20
    # Spool: rows and bytes kept on disk at most (oldest dropped, counted; bytes None:
    # a share of the free space at start, see fsqd.sinks.spoolspace), how often writes
    # are committed, and how long a code may wait for PUBACK before it goes to disk.
    spool_max: int = 500_000
    spool_max_bytes: int | None = None
    spool_commit_s: float = 1.0
    spool_after_s: float = 2.0

    @property
    def base_topic(self) -> str:
        return f"{self.topic_prefix}/{self.node_id}"

    def topic(self, name: str) -> str:
        return f"{self.base_topic}/{name}"

    @property
    def client_id(self) -> str:
        # Deterministic: a random id would let the previous session's Last Will
        # (delivered when the broker notices it is gone) overwrite our new "online".
        return f"fsqd-{self.node_id}"


def default_node_id() -> str:
    """The hostname, cut at the first dot, with anything outside [A-Za-z0-9_-] as '-'."""
    host = socket.gethostname().split(".")[0] or "fsqd"
    return re.sub(r"[^A-Za-z0-9_-]", "-", host)[:64]


def parse_mqtt(
    table: Table, *, node_id: str | None = None, base_dir: Path | None = None
) -> MqttSettings:
    """Read ``[mqtt]``; every problem is one ConfigError line naming the key.

    ``node_id`` is the default for the table's own ``node_id`` (the daemon passes
    ``[service] node_id``; without it, the hostname). Relative file paths are taken
    relative to ``base_dir`` (the config file's directory) when given.
    """
    base = base_dir
    host = table.get("host", str)
    if not host.strip():
        raise table.error("host", "must not be empty")
    node_id = table.get("node_id", str, node_id or default_node_id())
    if not _NODE_ID.match(node_id):
        raise table.error("node_id", f"must be 1-64 characters of A-Z a-z 0-9 _ -, got {node_id!r}")
    prefix = table.get("topic_prefix", str, "fsqd")
    if not _PREFIX.match(prefix):
        raise table.error(
            "topic_prefix", f"must be topic levels of A-Z a-z 0-9 _ - joined by '/', got {prefix!r}"
        )
    ca_file = _path(table, "ca_file", base)
    cert_file = _path(table, "cert_file", base)
    key_file = _path(table, "key_file", base)
    tls = table.get("tls", bool, ca_file is not None or cert_file is not None)
    if (cert_file is None) != (key_file is None):
        raise table.error(
            "key_file" if key_file is None else "cert_file", "cert_file and key_file go together"
        )
    if not tls and (ca_file or cert_file):
        raise table.error("tls", "is false but TLS files are given")
    port = table.integer("port", 8883 if tls else 1883, low=1, high=65535)
    if table.has("password"):
        table.get("password", str)  # mark taken; refuse it whatever its type
        raise table.error(
            "password", "not allowed in the config file: use password_file or password_credential"
        )
    username = _secret_source(table, "username", base, inline_ok=True)
    password = _secret_source(table, "password", base, inline_ok=False)
    if password is not None and username is None:
        raise table.error("password_file", "a password needs a username")
    settings = MqttSettings(
        host=host,
        node_id=node_id,
        port=port,
        topic_prefix=prefix,
        keepalive_s=table.integer("keepalive", 30, low=5, high=3600),
        qos=table.integer("qos", 1, low=0, high=1),
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        tls_insecure=table.get("tls_insecure", bool, False),
        username=None if username is None else username.value,
        password=password,
        reconnect_min_s=table.number("reconnect_min", 1.0, low=0.0, low_open=True, high=600),
        reconnect_max_s=table.number("reconnect_max", 60.0, low=0.0, low_open=True, high=3600),
        stable_s=table.number("stable_after", 10.0, low=0.0, high=3600),
        publish_timeout_s=table.number("publish_timeout", 10.0, low=0.0, low_open=True, high=600),
        max_inflight=table.integer("max_inflight", 20, low=1, high=1000),
        spool_max=table.integer("spool_max", 500_000, low=1, high=100_000_000),
        spool_max_bytes=(
            table.integer("spool_max_bytes", low=SPOOL_MIN_BYTES, high=2**40)
            if table.has("spool_max_bytes")
            else table.optional("spool_max_bytes", int)
        ),
        spool_commit_s=table.number("spool_commit", 1.0, low=0.0, low_open=True, high=60),
        spool_after_s=table.number("spool_after", 2.0, low=0.0, high=600),
    )
    if settings.reconnect_max_s < settings.reconnect_min_s:
        raise table.error("reconnect_max", "must be >= reconnect_min")
    table.done()
    return settings


def _resolve(text: str, base: Path | None) -> Path:
    path = Path(text).expanduser()
    return path if base is None else base / path  # an absolute path stays as it is


def _path(table: Table, key: str, base: Path | None) -> Path | None:
    text = table.optional(key, str)
    if text is None:
        return None
    path = _resolve(text, base)
    if not path.is_file():
        raise table.error(key, f"{path}: no such file")
    return path


def _secret_source(table: Table, name: str, base: Path | None, *, inline_ok: bool) -> Secret | None:
    """``<name>`` (inline, usernames only), ``<name>_file`` or ``<name>_credential``."""
    keys = [k for k in (name, f"{name}_file", f"{name}_credential") if table.has(k)]
    if not inline_ok and name in keys:
        keys.remove(name)
    if len(keys) > 1:
        raise table.error(keys[1], f"give only one of {', '.join(keys)}")
    if not keys:
        table.optional(f"{name}_file", str)
        table.optional(f"{name}_credential", str)
        if inline_ok:
            table.optional(name, str)
        return None
    key = keys[0]
    text = table.get(key, str)
    if key == name:
        return Secret(text)
    if key.endswith("_credential"):
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise table.error(
                key, "$CREDENTIALS_DIRECTORY is not set (systemd sets it with LoadCredential=)"
            )
        if not text or "/" in text:
            raise table.error(key, f"must be a credential name without '/', got {text!r}")
        path = Path(directory) / text
    else:
        path = _resolve(text, base)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise table.error(key, f"unreadable credential file {path}: {reason}") from None
    value = raw.rstrip("\r\n")
    if not value or "\n" in value:
        raise table.error(key, f"credential file {path} must hold exactly one non-empty line")
    return Secret(value)

"""The ``[mqtt]`` table: broker address, topics, TLS, credentials, spool bounds.

Credentials come from files or systemd credentials (``$CREDENTIALS_DIRECTORY/<name>``,
set by ``LoadCredential=``), never from the command line or the TOML itself, and the
password is held in a ``Secret`` whose repr never shows it.

Everything the connection will need is checked here, where ``fsqd check-config`` and
``fsqd run`` both read it: the host is a name a resolver accepts (or an IP address),
every topic fits MQTT's length field, and the TLS files load into the same
``ssl.SSLContext`` the connection uses (``tls_context``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from fsqd.errors import ConfigError, NoInputError
from fsqd.safefile import CERT_MAX, SECRET_MAX, read_text, regular_file
from fsqd.tomlcheck import Table

SPOOL_MIN_BYTES = 64 * 1024  # the smallest spool budget, given or automatic

# One MQTT topic level that is also a Home Assistant id: no '/', '+', '#', no spaces.
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
# A host name label after IDNA encoding (RFC 1123; '_' too, as resolvers accept it).
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$")
MQTT_TOPIC_MAX = 65535  # bytes of UTF-8: the topic's length is a 16-bit field
TOPICS = ("codes", "status", "stats", "info", "state", "events")  # under <topic_prefix>/<node_id>/


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
    # a share of the free space at start, see fsqd.sinks.spool.space), how often writes
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
    def topics(self) -> tuple[str, ...]:
        """Every topic the sink publishes to."""
        return tuple(self.topic(name) for name in TOPICS)

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
    if (problem := host_problem(host)) is not None:
        raise table.error("host", problem)
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
    if (problem := topic_problem(settings.topics)) is not None:
        raise table.error("topic_prefix", problem)
    table.done()
    try:
        tls_context(settings)  # as the connection will load them, once, now
    except TlsFileError as e:
        raise table.error(e.key, e.detail) from None
    return settings


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot name a broker (None: it can): an IP address, or a host name a
    resolver takes (labels of letters, digits, '-' and '_' after IDNA, at most 63 bytes
    each, 253 in all)."""
    if not host.strip():
        return "must not be empty"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if "://" in host or ":" in host or "/" in host:
        return f"{_shown(host)}: give the host name or address alone (the port is 'port')"
    name = host.removesuffix(".")  # a fully qualified name may end with the root's dot
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{_shown(host)}: not a host name (empty label, or a label over 63 bytes)"
    if len(ascii_name) > 253:
        return f"{_shown(host)}: a host name is at most 253 characters, this is {len(ascii_name)}"
    bad = next((label for label in ascii_name.split(".") if not _LABEL.match(label)), None)
    if bad is not None:
        return (
            f"{_shown(host)}: not a host name (label {_shown(bad)}: use letters, digits, "
            "'-' and '_', not at either end '-')"
        )
    return None


def topic_problem(topics: tuple[str, ...]) -> str | None:
    """Why one of ``topics`` cannot be published (None: all can)."""
    longest = max(topics, key=lambda t: len(t.encode()))
    n = len(longest.encode())
    if n > MQTT_TOPIC_MAX:
        return f"makes the topic {_shown(longest)} {n} bytes long; MQTT allows {MQTT_TOPIC_MAX}"
    return None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


class TlsFileError(ConfigError):
    """A TLS file OpenSSL will not load; ``key`` is the [mqtt] key that names it."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"[mqtt] {key}: {detail}")
        self.key = key
        self.detail = detail


def _no_passphrase() -> str:
    raise TlsFileError(
        "key_file",
        "the key is encrypted and fsqd cannot ask for a passphrase: store it unencrypted, "
        "readable by the service's user only",
    )


def tls_context(s: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context of a connection to the broker ``s`` names (None: plain TCP).

    Built the way paho's ``tls_set`` builds one from file names (TLS client, the broker's
    certificate always verified, hostname checks unless ``tls_insecure``), after checking
    that each file is a regular file of sane size. Each connection builds its own, so a
    renewed certificate is picked up; reading the config builds one too, so a file
    OpenSSL refuses is a config error, not a reconnect loop.
    """
    if not s.tls:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if s.cert_file is not None and s.key_file is not None:
        _tls_file("cert_file", s.cert_file)
        _tls_file("key_file", s.key_file)
        try:
            ctx.load_cert_chain(s.cert_file, s.key_file, password=_no_passphrase)
        except ssl.SSLError as e:
            raise _chain_problem(s.cert_file, s.key_file, e) from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    if s.ca_file is not None:
        _tls_file("ca_file", s.ca_file)
        try:
            ctx.load_verify_locations(cafile=s.ca_file)
        except ssl.SSLError as e:
            raise TlsFileError(
                "ca_file", f"{s.ca_file}: no certificate OpenSSL can read ({_ssl_reason(e)})"
            ) from None
    else:
        ctx.load_default_certs()
    if s.tls_insecure:
        ctx.check_hostname = False
    return ctx


def _tls_file(key: str, path: Path) -> None:
    try:
        regular_file(path, what="a PEM file", limit=CERT_MAX)
    except NoInputError as e:
        raise TlsFileError(key, str(e)) from None


def _chain_problem(cert: Path, key: Path, e: ssl.SSLError) -> TlsFileError:
    """Which of the two files OpenSSL refused: the certificate alone is tried as a CA."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        return TlsFileError("cert_file", f"{cert}: no PEM certificate OpenSSL can read")
    return TlsFileError(
        "key_file", f"{key}: not a PEM private key for {cert.name} ({_ssl_reason(e)})"
    )


def _ssl_reason(e: ssl.SSLError) -> str:
    return str(e.reason).replace("_", " ").lower() if e.reason else "not PEM"


def _resolve(text: str, base: Path | None) -> Path:
    path = Path(text).expanduser()
    return path if base is None else base / path  # an absolute path stays as it is


def _path(table: Table, key: str, base: Path | None) -> Path | None:
    text = table.optional(key, str)
    if text is None:
        return None
    path = _resolve(text, base)
    if not path.exists():
        raise table.error(key, f"{path}: no such file")
    return path  # checked and loaded by tls_context, as the connection will


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
        raw = read_text(path, limit=SECRET_MAX, what="a credential file")
    except NoInputError as e:
        raise table.error(key, f"unreadable credential file: {e}") from None
    value = raw.rstrip("\r\n")
    if not value or "\n" in value:
        raise table.error(key, f"credential file {path} must hold exactly one non-empty line")
    return Secret(value)

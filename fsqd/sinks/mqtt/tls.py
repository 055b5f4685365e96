"""TLS for each connection: the files are read again, so a renewed certificate counts."""

from __future__ import annotations

import ssl

from fsqd.config.mqtt import MqttSettings, tls_context
from fsqd.errors import ConfigError

__all__ = ["TlsUnusable", "connection_tls"]


class TlsUnusable(Exception):
    """The certificate or key was replaced by one OpenSSL refuses since the config was read."""


def connection_tls(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context of the next connection (None without TLS), from the files as they are
    now; a file that became unusable is a failed connection attempt, retried, not a crash."""
    try:
        return tls_context(settings)
    except ConfigError as e:
        raise TlsUnusable(str(e)) from None

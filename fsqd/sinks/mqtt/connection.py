"""One connection to the broker: a fresh ``aiomqtt.Client`` each time, and its disconnect.

aiomqtt edges this design accounts for (read in aiomqtt 2.5.1 / paho 2.2 source):
- A QoS 1 publish that fails while disconnected stays in paho's own ``_out_messages``
  and is re-sent on the next CONNACK of the same paho client. We build a fresh
  ``aiomqtt.Client`` for every connection, so only our spool ever retries.
- ``Client.publish`` waiting for PUBACK does not notice a disconnect (it waits for
  its timeout). The sink's TaskGroup also iterates ``client.messages``, which raises
  ``MqttError`` as soon as the connection drops, cancelling the waiters.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import aiomqtt

from fsqd.config.mqtt import MqttSettings
from fsqd.sinks.mqtt.tls import TlsUnusable, connection_tls

__all__ = ["OFFLINE", "ONLINE", "ConnectionLost", "new_client", "retrieve_disconnect_error"]

ONLINE = b"online"
OFFLINE = b"offline"

# paho logs through the "mqtt" logger aiomqtt gives it; keep it to warnings.
_PAHO_LOGGER = logging.getLogger("fsqd.paho")
_PAHO_LOGGER.setLevel(logging.WARNING)


# A code, then a state or stats message a moment later: with Nagle's algorithm the second
# small packet waits for the broker's (delayed, up to 40 ms) ACK of the first.
SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class ConnectionLost(Exception):
    """The connection failed or dropped; the message says why (never the credentials)."""


def new_client(settings: MqttSettings, status_topic: str) -> aiomqtt.Client:
    """A client for one connection, with ``offline`` on ``status_topic`` as its Last Will."""
    s = settings
    try:
        tls = connection_tls(s)
    except TlsUnusable as e:
        raise ConnectionLost(str(e)) from None
    client = aiomqtt.Client(
        s.host,
        s.port,
        identifier=s.client_id,
        username=s.username,
        password=None if s.password is None else s.password.value,
        will=aiomqtt.Will(status_topic, OFFLINE, qos=1, retain=True),
        clean_session=True,
        keepalive=s.keepalive_s,
        timeout=s.publish_timeout_s,
        max_inflight_messages=s.max_inflight,
        tls_context=tls,
        logger=_PAHO_LOGGER,
        socket_options=SOCKET_OPTIONS,
    )
    # aiomqtt warns past 10 pending calls; up to max_inflight codes plus the
    # retained topics are pending by design while a spool drains.
    client.pending_calls_threshold = s.max_inflight + 10
    return client


def retrieve_disconnect_error(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's disconnect future as seen whenever it fails (we log the cause).

    aiomqtt sets an exception on it when the connection drops, sometimes after the
    ``async with`` has already exited, and only retrieves it through
    ``client.messages``; unseen, asyncio reports "Future exception was never
    retrieved" when it is garbage collected. Call it before and after ``__aenter__``,
    which replaces the future when a kick lands between CONNACK and its return.

    aiomqtt 2.x has no public handle on this future (its own ``MessagesIterator`` reads
    ``Client._disconnected`` the same way), so this is the one place that touches it.
    """
    client._disconnected.add_done_callback(_seen)


def _seen(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()

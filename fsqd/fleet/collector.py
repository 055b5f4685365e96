"""``fsqd collect``'s loop: an MQTT 5 shared subscription into the store, acknowledged when durable.

aiomqtt 2.5 has no manual acknowledgement of its own; paho (underneath) does:
``manual_ack_set(True)`` stops paho from sending PUBACK when a QoS 1 message arrives, and
``ack(mid, 1)`` sends it later. aiomqtt runs paho's network I/O on the event loop, so both
are called from the loop. A message is acknowledged only after its row is renamed into
the store (or found there already, or found malformed), in the order received, as MQTT
asks. The broker keeps at most ``max_unacked`` messages unacknowledged per collector
(our CONNECT's Receive Maximum), so memory stays bounded whatever the rate: when the
store is slow, the broker holds the messages, not us.

Persistent session: the client id is fixed per collector, the session outlives a
disconnect by ``session_expiry_s`` and clean start is off, so a restarted collector gets
what the broker kept for it (the unacknowledged messages are redelivered, and the store
drops what it already has). Message ids belong to one connection: rows buffered from a
connection that dropped are still committed, their PUBACKs are not sent (the broker
redelivers those messages, and the store drops them as duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from fsqd.backoff import Backoff
from fsqd.fleet.rows import TABLES, Malformed, Row, parse_message
from fsqd.fleet.stats import CollectStats
from fsqd.fleet.store import Store

__all__ = ["KINDS", "Broker", "CollectOptions", "Collector"]

log = logging.getLogger("fsqd.collect")
KINDS = tuple(TABLES)  # codes, state, events, stats, health, info, status


@dataclass(frozen=True)
class Broker:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    tls: Callable[[], ssl.SSLContext | None] = lambda: None


@dataclass(frozen=True)
class CollectOptions:
    store: Path
    collector_id: str
    group: str = "fsqd"
    prefix: str = "fsqd"
    kinds: tuple[str, ...] = KINDS
    session_expiry_s: int = 7 * 86400
    max_unacked: int = 5000
    flush_rows: int = 2500  # half: the broker keeps sending while a commit runs
    flush_interval_s: float = 5.0
    stats_interval_s: float = 60.0
    compact_files: int = 16
    gap_grace_s: float = 60.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0

    @property
    def client_id(self) -> str:
        return f"fsqd-collect-{self.collector_id}"

    def topics(self) -> list[str]:
        return [f"$share/{self.group}/{self.prefix}/+/{kind}" for kind in self.kinds]


@dataclass
class _Batch:
    rows: list[Row] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (connection, mid)
    since: float | None = None  # monotonic time of the oldest message waiting
    taken: int = 0  # messages in this batch, acknowledged or not

    def __len__(self) -> int:
        return self.taken


class Collector:
    def __init__(
        self, opts: CollectOptions, broker: Broker, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.opts = opts
        self.broker = broker
        self.clock = clock
        self.store = Store(
            opts.store, opts.collector_id, compact_files=opts.compact_files, clock=clock
        )
        self.stats = CollectStats()
        self._batch = _Batch()
        self._client: aiomqtt.Client | None = None
        self._connection = 0
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: connect, collect, reconnect; the last batch committed."""
        await asyncio.to_thread(self.store.open)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._flusher(stop))
                tg.create_task(self._stats_lines(stop))
                tg.create_task(self._connections(stop))
        finally:
            await self._flush()
            self.store.close()

    async def _connections(self, stop: asyncio.Event) -> None:
        backoff = Backoff(self.opts.reconnect_min_s, self.opts.reconnect_max_s, jitter=0.5)
        failures = 0
        while not stop.is_set():
            try:
                await self._session(stop)
                failures = 0
            except aiomqtt.MqttError as e:
                failures += 1
                self.stats.disconnects += 1
                log.warning("broker %s:%d: %s", self.broker.host, self.broker.port, e)
            finally:
                self._client = None
                self.connected.clear()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.delay(failures))

    def _new_client(self) -> aiomqtt.Client:
        o, b = self.opts, self.broker
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = o.session_expiry_s
        props.ReceiveMaximum = o.max_unacked
        client = aiomqtt.Client(
            b.host,
            b.port,
            identifier=o.client_id,
            username=b.username,
            password=b.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=b.keepalive_s,
            tls_context=b.tls(),
            logger=logging.getLogger("fsqd.paho"),
        )
        # aiomqtt 2.x exposes no manual acknowledgement; paho's client underneath does.
        client._client.manual_ack_set(True)
        return client

    async def _session(self, stop: asyncio.Event) -> None:
        client = self._new_client()
        async with client:
            self._connection += 1
            connection = self._connection
            self._client = client
            # Retained messages are never sent to a shared subscription (MQTT 5, 4.8.2).
            for topic in self.opts.topics():
                await client.subscribe(topic, options=SubscribeOptions(qos=1))
            self.connected.set()
            log.info("collecting %s as %s", ", ".join(self.opts.topics()), self.opts.client_id)
            stopping = asyncio.create_task(stop.wait())
            messages = client.messages.__aiter__()
            try:
                while True:
                    nxt = asyncio.ensure_future(messages.__anext__())
                    done, _ = await asyncio.wait(
                        {nxt, stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if nxt not in done:
                        nxt.cancel()
                        await self._flush()
                        return
                    self._take(nxt.result(), connection)
            finally:
                stopping.cancel()

    def _take(self, m: aiomqtt.Message, connection: int) -> None:
        now = self.clock()
        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
        self.stats.received += 1
        b = self._batch
        b.taken += 1
        if b.since is None:
            b.since = time.monotonic()
        if m.qos > 0:  # a QoS 0 message (a node with [mqtt] qos = 0) has nothing to acknowledge
            b.acks.append((connection, m.mid))
        try:
            row = parse_message(str(m.topic), payload, now, self.opts.prefix)
        except Malformed as e:
            self.stats.malformed += 1
            if self.stats.malformed <= 10 or self.stats.malformed % 1000 == 0:
                log.warning(
                    "malformed message on %s skipped (%d so far): %s",
                    m.topic,
                    self.stats.malformed,
                    e,
                )
            return
        if row.table == "codes" and row.values["t_end"] is not None:
            self.stats.lag(now - row.values["t_end"])
        if self.store.is_duplicate(row):
            self.stats.duplicates += 1
        else:
            b.rows.append(row)
        if len(b) >= self.opts.flush_rows:
            self._wake.set()

    async def _flusher(self, stop: asyncio.Event) -> None:
        # An idle collector commits nothing every interval all the same: its checkpoint says
        # it is alive and up to date, which lets the other collectors confirm holes.
        last = time.monotonic()
        while not stop.is_set():
            b = self._batch
            oldest = last if b.since is None else b.since
            if (
                time.monotonic() - oldest >= self.opts.flush_interval_s
                or len(b) >= self.opts.flush_rows
            ):
                await self._flush()
                last = time.monotonic()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.05)

    async def _flush(self) -> None:
        batch, self._batch = self._batch, _Batch()
        cut = self.clock()
        result = await asyncio.to_thread(self.store.commit, batch.rows, cut)
        self.stats.add(result)
        client = self._client
        if client is None:
            return
        for connection, mid in batch.acks:
            if connection == self._connection:
                client._client.ack(mid, 1)
                self.stats.acked += 1

    async def _stats_lines(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.opts.stats_interval_s)
            evicted = self.store.evict_idle()
            log.info("stats %s", self.stats.line(len(self._batch), evicted))

    def counters(self) -> dict[str, Any]:
        return self.stats.counters()

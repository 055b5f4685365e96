"""Codes, stats and info to an MQTT broker, through a durable spool when it is away.

Topics (``<base>`` = ``<topic_prefix>/<node_id>``, default ``fsqd/<node_id>``):
``<base>/codes`` one message per window, QoS 1, in order; ``<base>/status`` retained
``online``/``offline`` (``offline`` also the Last Will); ``<base>/stats``,
``<base>/info``, ``<base>/health`` and ``<base>/state`` (the behaviour segment) retained,
latest wins; ``<base>/events`` (finished segments) QoS 1, not retained, in order, kept in
memory (the newest ``EVENTS_KEPT``) while the broker is away. Retired retained topics
(an old Home Assistant discovery) are cleared with an empty retained message after each
connect until one is acknowledged.

How codes travel. ``submit_code`` never blocks: the code gets an id (increasing) and
waits in memory. The sender publishes in id order, with up to ``max_inflight``
awaiting PUBACK. A code is dropped from memory on PUBACK. Once a second the
flusher writes to the spool every code that is still unacknowledged after
``spool_after_s`` (all of them while disconnected) and deletes spooled codes that
were acknowledged since, in one transaction; a healthy link never touches the disk.
Everything on disk is older than everything in memory, so after a reconnect the
sender resends from the disk first, then memory: order is kept, and a code is sent
at least once (``seq`` lets consumers drop duplicates).

The pieces: ``codes`` (ids, memory, the in-flight window, the spool), ``connection``
(a fresh client per connection), ``tls`` (the context of each connection), ``outage``
(what is logged while the broker is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import structlog

from fsqd.backoff import Backoff
from fsqd.config.mqtt import MqttSettings
from fsqd.sinks.base import PublishedCallback
from fsqd.sinks.mqtt.codes import CodeQueue
from fsqd.sinks.mqtt.connection import (
    OFFLINE,
    ONLINE,
    ConnectionLost,
    new_client,
    retrieve_disconnect_error,
)
from fsqd.sinks.mqtt.outage import Outage

__all__ = ["COUNTERS", "Discovery", "MqttSink"]

log = structlog.get_logger(__name__)
# How long aclose waits for a cancelled connection task before abandoning it.
_CANCEL_WAIT_S = 5.0

# The sink's counters, in the order stats report them.
EVENTS_KEPT = 1000  # finished segments held for the broker; past this the oldest go
COUNTERS = (
    "published",
    "spooled",
    "spool_depth",
    "spool_dropped",
    "unacked",
    "lost",
    "oldest_unsent_age_s",
    "reconnects",
    "connect_failures",
    "spool_commits",
    "spool_errors",
    "spool_bytes",
    "spool_max_bytes",
    "spool_full",
    "spool_corrupt",
    "spool_salvaged",
    "sink_clock_steps",
    "connected",
)


@dataclass(frozen=True)
class Discovery:
    """A retained announcement (Home Assistant discovery) resent on the birth message.

    However many births arrive (a flood of them, retained or not), at most one resend is
    pending, and resends are at least ``min_interval_s`` apart.
    """

    topic: str
    payload: bytes
    birth_topic: str  # e.g. homeassistant/status
    birth_payload: bytes = ONLINE
    resend_delay_s: tuple[float, float] = (1.0, 5.0)
    min_interval_s: float = 5.0


class _Stop(Exception):
    pass


class MqttSink:
    """The MQTT transport of the daemon; one instance per process.

    Call order: construct (opens the spool; an unusable state directory raises
    OutputError here), start ``run()`` as a task, ``submit_code``/``publish_stats``/
    ``publish_info`` from the event loop, then ``await aclose(timeout_s)``.
    """

    def __init__(
        self,
        settings: MqttSettings,
        spool_path: Path,
        *,
        on_published: PublishedCallback | None = None,
        discovery: Discovery | None = None,
        rng: random.Random | None = None,
        run_id: str = "",
        retire: Sequence[str] = (),
        on_retired: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.discovery = discovery
        # Retained topics to clear (empty retained payload), e.g. a discovery under an
        # old node id; on_retired(topic) once the broker has acknowledged the clearing.
        self._retire = list(dict.fromkeys(retire))
        self.on_retired = on_retired
        self._rng = rng or random.Random()
        # Each wait 50-100 % of its step: devices that lost the same broker spread out.
        self.reconnect_backoff = Backoff(
            settings.reconnect_min_s, settings.reconnect_max_s, jitter=0.5, rng=self._rng
        )
        self._topic_status = settings.topic("status")
        self._topic_stats = settings.topic("stats")
        self._topic_info = settings.topic("info")
        self._topic_health = settings.topic("health")
        self._topic_state = settings.topic("state")
        self._topic_events = settings.topic("events")
        self._events: deque[bytes] = deque(maxlen=EVENTS_KEPT)
        self._events_ready = asyncio.Event()
        self.codes = CodeQueue(settings, spool_path, run_id=run_id)
        self.codes.on_published = on_published

        self._retained: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._dirty_event = asyncio.Event()
        self._resend: asyncio.Task[None] | None = None  # the one pending discovery resend
        self._discovery_sent = -math.inf  # loop time discovery was last queued to send

        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stop_deadline = 0.0
        self._run_task: asyncio.Task[None] | None = None
        self._closed = False

        self.reconnects = 0
        self.connect_failures = 0
        self.connected = False
        self._connections = 0
        # One WARNING per outage, a reminder every 10 min, its length on reconnect.
        self.outage = Outage(settings.host)

    # -- the daemon's side --

    @property
    def on_published(self) -> PublishedCallback | None:
        """on_published(seq, seconds from submit_code to PUBACK), on the event loop; the
        daemon sets it after construction (its Sink interface)."""
        return self.codes.on_published

    @on_published.setter
    def on_published(self, callback: PublishedCallback | None) -> None:
        self.codes.on_published = callback

    def submit_code(self, payload: bytes, seq: int) -> None:
        """Queue one code message; never blocks (call on the event loop)."""
        self.codes.submit(payload, seq)

    def clock_stepped(self, step_s: float) -> None:
        """The wall clock stepped by ``step_s``: re-map the times of every unsent code."""
        self.codes.clock_stepped(step_s)

    def publish_stats(self, payload: bytes) -> None:
        self._set_retained(self._topic_stats, payload)

    def publish_info(self, payload: bytes) -> None:
        self._set_retained(self._topic_info, payload)

    def publish_health(self, payload: bytes) -> None:
        self._set_retained(self._topic_health, payload)

    def publish_state(self, payload: bytes) -> None:
        self._set_retained(self._topic_state, payload)

    def publish_event(self, payload: bytes) -> None:
        self._events.append(payload)
        self._events_ready.set()

    def counters(self) -> dict[str, int | float]:
        c = self.codes.counters()
        c["reconnects"] = self.reconnects
        c["connect_failures"] = self.connect_failures
        c["connected"] = int(self.connected)
        return {k: c[k] for k in COUNTERS}

    async def run(self) -> None:
        """Connect, publish, reconnect with back-off; returns after ``aclose``."""
        if self._closed:
            return  # aclose() came first (a stop right at start): nothing to run
        self._run_task = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as tg:
                flusher = tg.create_task(self.codes.flush_loop(lambda: self.connected))
                await self._connection_loop()
                flusher.cancel()
        finally:
            self.connected = False
            self._stopped.set()

    async def aclose(self, timeout_s: float) -> None:
        """Deliver what is in flight, spool the rest, publish ``offline``, disconnect."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._stop_deadline = loop.time() + timeout_s
        self._stop.set()
        task = self._run_task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._stopped.wait()), timeout_s + 1.0)
            except TimeoutError:
                task.cancel()
                # Bounded: a task that never ends must not hold the daemon's stop.
                await asyncio.wait((task,), timeout=_CANCEL_WAIT_S)
                if not task.done():
                    log.error("mqtt connection did not stop when cancelled; abandoning it")
        self._closed = True
        self.codes.closed = True  # a clock step from now on has nothing to re-map
        await self.codes.final_flush()
        await self.codes.close()

    # -- connection --

    async def _connection_loop(self) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        cancels = me.cancelling()
        failures = 0
        while not self._stop.is_set():
            t_up: float | None = None
            try:
                client = new_client(self.settings, self._topic_status)
                # Before and after: __aenter__ replaces the future when a kick lands
                # between CONNACK and its return.
                retrieve_disconnect_error(client)
                async with client:
                    retrieve_disconnect_error(client)
                    t_up = loop.time()
                    self._on_connected()
                    # In its own task: on Python 3.11 a TaskGroup whose child fails
                    # after the body ended leaves its parent's cancel count raised,
                    # which would read as a cancel below.
                    await asyncio.create_task(self._serve(client))
                return  # _serve returns only on stop, after "offline" went out
            except (aiomqtt.MqttError, ConnectionLost, OSError) as e:
                # str(e) from paho/aiomqtt names a code or a socket error, never
                # the credentials.
                if t_up is None:
                    self.connect_failures += 1
                    self.outage.connect_failed(str(e))
                else:
                    self.outage.connection_lost(str(e))
            finally:
                self.connected = False
            if me.cancelling() > cancels:
                # We were cancelled, but a call swallowed it: on Python 3.11
                # asyncio.wait_for (used by aiomqtt to connect, publish and disconnect)
                # returns the inner result when both land together. Reconnecting
                # would ignore the cancel for ever.
                raise asyncio.CancelledError
            if t_up is not None and loop.time() - t_up >= self.settings.stable_s:
                failures = 0
            else:
                failures += 1
            await self._pause(self.reconnect_backoff.delay(failures))

    async def _pause(self, delay_s: float) -> None:
        """Wait ``delay_s`` or until stop; a cancel always propagates (no wait_for)."""
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((stopped,), timeout=delay_s)
        finally:
            stopped.cancel()

    def _on_connected(self) -> None:
        self.connected = True
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
        log.info(
            "mqtt connected",
            host=self.settings.host,
            port=self.settings.port,
            client_id=self.settings.client_id,
            spooled=self.codes.disk_depth,
            **self.outage.ended(),  # after an outage: down_s, attempts
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.publish(self._topic_status, ONLINE, qos=1, retain=True)
        while self._retire:  # before discovery: HA drops the old device first
            topic = self._retire[0]
            await client.publish(topic, b"", qos=1, retain=True)
            self._retire.pop(0)
            log.info("retained message cleared", topic=topic)
            if self.on_retired is not None:
                self.on_retired(topic)
        # Retained topics may be gone (a broker without persistence restarted).
        self._dirty.update(self._retained)
        if self.discovery is not None:
            await client.subscribe(self.discovery.birth_topic, qos=0)
            self._dirty.add(self.discovery.topic)
            self._retained[self.discovery.topic] = self.discovery.payload
            self._discovery_sent = asyncio.get_running_loop().time()
        self._dirty_event.set()
        stopped = False
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch(client, tg))
                tg.create_task(self.codes.send(client, tg))
                tg.create_task(self._send_retained(client))
                tg.create_task(self._send_events(client))
                tg.create_task(self._wait_stop())
        except* _Stop:
            stopped = True
        except* aiomqtt.MqttError as eg:
            raise ConnectionLost(str(eg.exceptions[0])) from None
        if stopped:
            remaining = max(0.1, self._stop_deadline - asyncio.get_running_loop().time())
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    self._topic_status, OFFLINE, qos=1, retain=True, timeout=remaining
                )

    async def _watch(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        """Raise MqttError the moment the connection drops; answer HA's birth message."""
        async for message in client.messages:
            d = self.discovery
            if (
                d is not None
                and message.topic.matches(d.birth_topic)
                and message.payload == d.birth_payload
                and (self._resend is None or self._resend.done())  # else that one covers it
            ):
                self._resend = tg.create_task(self._resend_discovery(d))

    async def _resend_discovery(self, d: Discovery) -> None:
        # Many devices answer the same birth message: spread them out; and never sooner
        # than min_interval_s after the last time, whatever the broker delivers.
        loop = asyncio.get_running_loop()
        spread = self._rng.uniform(*d.resend_delay_s)
        await asyncio.sleep(max(spread, self._discovery_sent + d.min_interval_s - loop.time()))
        self._discovery_sent = loop.time()
        self._dirty.add(d.topic)
        self._dirty_event.set()

    async def _wait_stop(self) -> None:
        await self._stop.wait()
        loop = asyncio.get_running_loop()
        # Drain: let the sender deliver what is queued while time allows.
        while self._undelivered() and loop.time() < self._stop_deadline:
            await asyncio.sleep(0.01)
        raise _Stop

    def _undelivered(self) -> bool:
        """Codes, events or retained topics (the final stats, the last state) still to go."""
        return bool(self.codes.busy or self._events or self._dirty)

    async def _send_retained(self, client: aiomqtt.Client) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            while self._dirty:
                topic = self._dirty.pop()
                await client.publish(topic, self._retained[topic], qos=1, retain=True)

    async def _send_events(self, client: aiomqtt.Client) -> None:
        while True:
            while self._events:
                # Taken off only once the broker has it: a lost connection resends it.
                event = self._events[0]
                await client.publish(self._topic_events, event, qos=1, retain=False)
                if self._events and self._events[0] is event:  # else pushed out meanwhile
                    self._events.popleft()
            await self._events_ready.wait()
            self._events_ready.clear()

    def _set_retained(self, topic: str, payload: bytes) -> None:
        self._retained[topic] = payload
        self._dirty.add(topic)
        self._dirty_event.set()

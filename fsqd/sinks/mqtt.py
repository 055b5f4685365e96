"""Codes, stats and info to an MQTT broker, through a durable spool when it is away.

Topics (``<base>`` = ``<topic_prefix>/<node_id>``, default ``fsqd/<node_id>``):
``<base>/codes`` one message per window, QoS 1, in order; ``<base>/status`` retained
``online``/``offline`` (``offline`` also the Last Will); ``<base>/stats`` and
``<base>/info`` retained, latest wins.

How codes travel. ``submit_code`` never blocks: the code gets an id (increasing) and
waits in memory. The sender publishes in id order, with up to ``max_inflight``
awaiting PUBACK. A code is dropped from memory on PUBACK. Once a second the
flusher writes to the spool every code that is still unacknowledged after
``spool_after_s`` (all of them while disconnected) and deletes spooled codes that
were acknowledged since, in one transaction; a healthy link never touches the disk.
Everything on disk is older than everything in memory, so after a reconnect the
sender resends from the disk first, then memory: order is kept, and a code is sent
at least once (``seq`` lets consumers drop duplicates).

aiomqtt edges this design accounts for (read in aiomqtt 2.5.1 / paho 2.2 source):
- A QoS 1 publish that fails while disconnected stays in paho's own ``_out_messages``
  and is re-sent on the next CONNACK of the same paho client. We build a fresh
  ``aiomqtt.Client`` for every connection, so only our spool ever retries.
- ``Client.publish`` waiting for PUBACK does not notice a disconnect (it waits for
  its timeout). The connection's TaskGroup also iterates ``client.messages``, which
  raises ``MqttError`` as soon as the connection drops, cancelling the waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiomqtt
import structlog

from fsqd.config.mqtt import MqttSettings, Secret, default_node_id, parse_mqtt, tls_context
from fsqd.errors import ConfigError, OutputError
from fsqd.sinks.backlog import Backlog, QueuedCode
from fsqd.sinks.spool import CommitResult, Spool, SpoolRow

__all__ = [
    "Discovery",
    "MqttSettings",
    "MqttSink",
    "Secret",
    "default_node_id",
    "parse_mqtt",
    "tls_context",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")

ONLINE = b"online"
OFFLINE = b"offline"

# paho logs through the "mqtt" logger aiomqtt gives it; keep it to warnings.
_PAHO_LOGGER = logging.getLogger("fsqd.paho")
_PAHO_LOGGER.setLevel(logging.WARNING)


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


class _ConnectionLost(Exception):
    pass


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
        on_published: Callable[[int, float], None] | None = None,
        discovery: Discovery | None = None,
        rng: random.Random | None = None,
        run_id: str = "",
    ) -> None:
        self.settings = settings
        # on_published(seq, seconds from submit_code to PUBACK), on the event loop; the
        # daemon sets it after construction (its Sink interface).
        self.on_published = on_published
        self.discovery = discovery
        self._rng = rng or random.Random()
        self._topic_codes = settings.topic("codes")
        self._topic_status = settings.topic("status")
        self._topic_stats = settings.topic("stats")
        self._topic_info = settings.topic("info")

        self._spool = Spool(spool_path, settings.spool_max, settings.spool_max_bytes, run_id=run_id)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsqd-spool")
        self._disk_depth = self._spool.depth()
        self._disk_max_id = self._spool.max_id()
        self._disk_oldest_t = self._spool.oldest_t_submit()
        # Above every id on disk, and never used by another run of this spool.
        self._next_id = self._spool.first_id

        self._mem = Backlog(settings.spool_max, self._spool.max_bytes)
        self._inflight: dict[int, QueuedCode] = {}
        self._pending_deletes: list[int] = []
        self._acked_on_disk: set[int] = set()
        self._wake = asyncio.Event()
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

        self.published = 0
        self.spooled = 0
        self.spool_dropped = 0
        self.lost = 0  # neither delivered nor on disk when the sink closed
        self.reconnects = 0
        self.connect_failures = 0
        self.spool_errors = 0
        self.clock_steps = 0  # wall-clock steps whose re-mapping was applied to unsent codes
        self.connected = False
        self._connections = 0
        self._failing = 0  # spool reads/writes failed in a row (one log line per episode)
        self._dropping = 0  # codes dropped in the current full-spool episode
        if self._disk_depth:
            log.info("spool has undelivered codes", path=str(spool_path), codes=self._disk_depth)

    # -- the daemon's side --

    def submit_code(self, payload: bytes, seq: int) -> None:
        """Queue one code message; never blocks (call on the event loop)."""
        item = QueuedCode(self._next_id, seq, payload, time.time(), time.monotonic())
        self._next_id += 1
        # Memory is bounded like the disk: if the spool cannot keep up (or fails),
        # the oldest codes that are not on disk go first, counted.
        if dropped := self._mem.add(item):
            self._dropped("memory backlog full", dropped)
        self._wake.set()

    def clock_stepped(self, step_s: float) -> None:
        """The wall clock stepped by ``step_s``: re-map the times of every unsent code.

        Codes in memory are rewritten at once; the rows on disk by one transaction queued on
        the spool's single thread. That thread runs in order, so a commit already queued
        (old payloads) lands before the rewrite and a later one carries the new payloads:
        no row is shifted twice or missed. A code already handed to the broker keeps its
        times (if that publish fails, it is re-sent from memory or disk, shifted).
        """
        if self._closed or not step_s:
            return
        # Lazily: the payload module pulls in the pipeline, which `fsqd tail` does not need.
        from fsqd.sinks.payload import shift_code_times

        def shift(payload: bytes) -> bytes:
            return shift_code_times(payload, step_s)

        for item in self._mem.values():
            item.payload = shift(item.payload)
        self._mem.recount()
        if self._disk_max_id or self._mem:
            up_to = self._next_id - 1
            fut = self._executor.submit(self._spool.rewrite, up_to, shift)
            fut.add_done_callback(self._rewritten)
        self.clock_steps += 1
        log.info("unsent codes re-mapped", step_s=round(step_s, 3), in_memory=len(self._mem))

    def _rewritten(self, fut: Future[int]) -> None:
        # On the spool thread: only count, the log line is thread-safe.
        try:
            n = fut.result()
        except OutputError as e:
            self.spool_errors += 1
            log.error("spool rewrite after a clock step failed", error=str(e))
            return
        log.debug("spooled codes re-mapped", rows=n)

    def publish_stats(self, payload: bytes) -> None:
        self._set_retained(self._topic_stats, payload)

    def publish_info(self, payload: bytes) -> None:
        self._set_retained(self._topic_info, payload)

    def counters(self) -> dict[str, int | float]:
        oldest: float | None = self._disk_oldest_t if self._disk_depth else None
        if (first := self._mem.first()) is not None:
            oldest = first.t_wall if oldest is None else min(oldest, first.t_wall)
        spool = self._spool
        return {
            "published": self.published,
            "spooled": self.spooled,
            "spool_depth": self._disk_depth,
            "spool_dropped": self.spool_dropped + self._mem.dropped,
            "unacked": len(self._mem),
            "lost": self.lost,
            "oldest_unsent_age_s": 0.0 if oldest is None else max(0.0, time.time() - oldest),
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "spool_commits": spool.commits,
            "spool_errors": self.spool_errors,
            "spool_bytes": spool.size_bytes(),
            "spool_max_bytes": spool.max_bytes,
            "spool_full": spool.full_episodes,
            "spool_corrupt": spool.corrupt,
            "spool_salvaged": spool.salvaged,
            "sink_clock_steps": self.clock_steps,
            "connected": int(self.connected),
        }

    async def run(self) -> None:
        """Connect, publish, reconnect with back-off; returns after ``aclose``."""
        if self._closed:
            return  # aclose() came first (a stop right at start): nothing to run
        self._run_task = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as tg:
                flusher = tg.create_task(self._flush_loop())
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
                with contextlib.suppress(BaseException):
                    await task
        self._closed = True
        await self._final_flush()
        # On the spool thread, after what is queued there (a clock-step rewrite is submitted
        # without being awaited): closing the connection under a running statement loses
        # the rewrite and can crash SQLite.
        await self._in_spool_thread(self._spool.close)
        self._executor.shutdown(wait=True)

    # -- connection --

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        try:
            tls = tls_context(s)  # the files are read again: a renewed certificate counts
        except ConfigError as e:  # replaced by one OpenSSL refuses since the config was read
            raise _ConnectionLost(str(e)) from None
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=None if s.password is None else s.password.value,
            will=aiomqtt.Will(self._topic_status, OFFLINE, qos=1, retain=True),
            clean_session=True,
            keepalive=s.keepalive_s,
            timeout=s.publish_timeout_s,
            max_inflight_messages=s.max_inflight,
            tls_context=tls,
            logger=_PAHO_LOGGER,
        )
        # aiomqtt warns past 10 pending calls; up to max_inflight codes plus the
        # retained topics are pending by design while a spool drains.
        client.pending_calls_threshold = s.max_inflight + 10
        return client

    async def _connection_loop(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stop.is_set():
            t_up: float | None = None
            try:
                client = self._client()
                # Before and after: __aenter__ replaces the future when a kick lands
                # between CONNACK and its return.
                _retrieve_disconnect_error(client)
                async with client:
                    _retrieve_disconnect_error(client)
                    t_up = loop.time()
                    self._on_connected()
                    await self._serve(client)
                return  # _serve returns only on stop, after "offline" went out
            except (aiomqtt.MqttError, _ConnectionLost, OSError) as e:
                # str(e) from paho/aiomqtt names a code or a socket error, never
                # the credentials.
                if t_up is None:
                    self.connect_failures += 1
                    log.warning("mqtt connect failed", host=self.settings.host, error=str(e))
                else:
                    log.warning("mqtt connection lost", error=str(e))
            finally:
                self.connected = False
            if t_up is not None and loop.time() - t_up >= self.settings.stable_s:
                failures = 0
            else:
                failures += 1
            delay = self._backoff(failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    def _backoff(self, failures: int) -> float:
        s = self.settings
        base = min(s.reconnect_max_s, s.reconnect_min_s * 2.0 ** max(0, failures - 1))
        return base * self._rng.uniform(0.5, 1.0)

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
            spooled=self._disk_depth,
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.publish(self._topic_status, ONLINE, qos=1, retain=True)
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
                tg.create_task(self._send_codes(client, tg))
                tg.create_task(self._send_retained(client))
                tg.create_task(self._wait_stop())
        except* _Stop:
            stopped = True
        except* aiomqtt.MqttError as eg:
            raise _ConnectionLost(str(eg.exceptions[0])) from None
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
        while (self._mem or self._inflight) and loop.time() < self._stop_deadline:
            await asyncio.sleep(0.01)
        raise _Stop

    async def _send_retained(self, client: aiomqtt.Client) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            while self._dirty:
                topic = self._dirty.pop()
                await client.publish(topic, self._retained[topic], qos=1, retain=True)

    def _set_retained(self, topic: str, payload: bytes) -> None:
        self._retained[topic] = payload
        self._dirty.add(topic)
        self._dirty_event.set()

    # -- codes --

    async def _send_codes(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        window = asyncio.Semaphore(self.settings.max_inflight)
        cursor = 0
        while True:
            batch = await self._next_batch(cursor)
            for item in batch:
                await window.acquire()
                cursor = item.id
                self._inflight[item.id] = item
                tg.create_task(self._publish_code(client, item, window))

    async def _next_batch(self, cursor: int) -> list[QueuedCode]:
        """Unacknowledged codes after ``cursor``: from the disk first, then memory."""
        while True:
            if cursor < self._disk_max_id:
                try:
                    rows = await self._in_spool_thread(self._spool.read, cursor, 256)
                except OutputError as e:
                    self._spool_failed("read", e)
                    await asyncio.sleep(1.0)
                    continue
                items = [self._from_row(r) for r in rows if r.id not in self._acked_on_disk]
                if items:
                    return items
                if rows:
                    cursor = rows[-1].id
                    continue
            self._wake.clear()
            items = [it for it in self._mem.values() if it.id > cursor]
            if items:
                return items
            await self._wake.wait()

    def _from_row(self, row: SpoolRow) -> QueuedCode:
        mem = self._mem.get(row.id)  # still there when its commit just returned
        if mem is not None:
            return mem
        return QueuedCode(row.id, row.seq, row.payload, row.t_submit, None, on_disk=True)

    async def _publish_code(
        self, client: aiomqtt.Client, item: QueuedCode, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(self._topic_codes, item.payload, qos=self.settings.qos)
        finally:
            self._inflight.pop(item.id, None)
            window.release()
        self._acked(item)

    def _acked(self, item: QueuedCode) -> None:
        self.published += 1
        self._mem.pop(item.id)
        if item.on_disk or item.persisting:
            self._pending_deletes.append(item.id)
            self._acked_on_disk.add(item.id)
        if self.on_published is not None:
            if item.t_mono is not None:
                latency = time.monotonic() - item.t_mono
            else:
                latency = max(0.0, time.time() - item.t_wall)
            self.on_published(item.seq, latency)

    # -- spool --

    async def _in_spool_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.spool_commit_s)
            try:
                await self._flush(everything=not self.connected)
            except OutputError as e:
                self._spool_failed("write", e)
            else:
                self._spool_works()

    def _spool_failed(self, what: str, e: OutputError) -> None:
        """Counted every time, logged once per run of failures."""
        self.spool_errors += 1
        self._failing += 1
        if self._failing == 1:
            log.error(f"spool {what} failed; retrying every commit period", error=str(e))

    def _spool_works(self) -> None:
        if self._failing:
            log.info("spool works again", failures=self._failing)
            self._failing = 0

    def _dropped(self, why: str, n: int) -> None:
        """Codes dropped at a bound: counted every time, logged when it starts and ends."""
        if not self._dropping:
            log.warning(f"{why}: dropping the oldest codes", dropped=n)
        self._dropping += n

    def _not_dropping(self) -> None:
        if self._dropping:
            log.info("no longer dropping codes", dropped=self._dropping)
            self._dropping = 0

    async def _flush(self, *, everything: bool, include_persisting: bool = False) -> None:
        now = time.monotonic()
        batch: list[QueuedCode] = []
        for item in self._mem.values():
            if item.persisting and not include_persisting:
                continue
            age_ok = item.t_mono is None or now - item.t_mono >= self.settings.spool_after_s
            if not (everything or age_ok):
                break  # ids and submit times rise together: the rest are younger
            batch.append(item)
        deletes = self._pending_deletes
        if not batch and not deletes:
            return
        self._pending_deletes = []
        for item in batch:
            item.persisting = True
        rows = [SpoolRow(i.id, i.seq, i.t_wall, i.payload) for i in batch]
        try:
            result: CommitResult = await self._in_spool_thread(self._spool.commit, rows, deletes)
        except BaseException:
            for item in batch:
                item.persisting = False
            self._pending_deletes = deletes + self._pending_deletes
            raise
        # The spool took the oldest ``accepted`` (written, or dropped as the oldest); the
        # rest did not fit on a full disk and wait here for the next commit.
        for n, item in enumerate(batch):
            item.persisting = False
            if n < result.accepted:
                item.on_disk = True
                self._mem.pop(item.id)
        self._acked_on_disk.difference_update(deletes)
        self.spooled += result.inserted
        self.spool_dropped += result.dropped
        if result.dropped:
            self._dropped("spool full", result.dropped)
        elif len(self._mem) < self._mem.max_rows and self._mem.bytes < self._mem.max_bytes // 2:
            self._not_dropping()
        self._disk_depth = result.depth
        self._disk_oldest_t = result.oldest_t_submit
        self._disk_max_id = result.max_id

    async def _final_flush(self) -> None:
        error: str | None = None
        try:
            await self._flush(everything=True, include_persisting=True)
        except OutputError as e:
            self.spool_errors += 1
            error = str(e)
        lost = sum(1 for item in self._mem.values() if not item.on_disk)
        if lost or error:
            self.lost += lost
            log.error("codes lost at stop: not delivered and not spooled", lost=lost, error=error)


def _retrieve_disconnect_error(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's disconnect future as seen whenever it fails (we log the cause).

    aiomqtt sets an exception on it when the connection drops, sometimes after the
    ``async with`` has already exited, and only retrieves it through
    ``client.messages``; unseen, asyncio reports "Future exception was never
    retrieved" when it is garbage collected.
    """
    client._disconnected.add_done_callback(_seen)


def _seen(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()

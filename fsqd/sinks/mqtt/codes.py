"""Codes from ``submit`` to PUBACK: ids, the memory backlog, the in-flight window, the spool.

``submit`` never blocks: the code gets an id (increasing) and waits in memory. ``send``
publishes in id order with up to ``max_inflight`` awaiting PUBACK; a code leaves memory on
PUBACK. Once a commit period ``flush_loop`` writes to the spool every code still
unacknowledged after ``spool_after_s`` (all of them while disconnected) and deletes spooled
codes acknowledged since, in one transaction; a healthy link never touches the disk.
Everything on disk is older than everything in memory, so after a reconnect ``send``
resends from the disk first, then memory: order is kept, and a code is sent at least once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import aiomqtt
import structlog

from fsqd.config.mqtt import MqttSettings
from fsqd.errors import OutputError
from fsqd.osthread import named_executor
from fsqd.sinks.base import PublishedCallback
from fsqd.sinks.spool.backlog import Backlog, QueuedCode
from fsqd.sinks.spool.rows import CommitResult, SpoolRow
from fsqd.sinks.spool.store import Spool

__all__ = ["CodeQueue"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class CodeQueue:
    """The codes of one MQTT sink; all methods but the spool's run on the event loop."""

    def __init__(self, settings: MqttSettings, spool_path: Path, *, run_id: str = "") -> None:
        self.settings = settings
        self.topic = settings.topic("codes")
        # on_published(seq, seconds from submit to PUBACK), on the event loop.
        self.on_published: PublishedCallback | None = None
        self.spool = Spool(spool_path, settings.spool_max, settings.spool_max_bytes, run_id=run_id)
        self._executor = named_executor("fsqd-spool")
        self.disk_depth = self.spool.depth()
        self._disk_max_id = self.spool.max_id()
        self._disk_oldest_t = self.spool.oldest_t_submit()
        # Above every id on disk, and never used by another run of this spool.
        self._next_id = self.spool.first_id
        self._mem = Backlog(settings.spool_max, self.spool.max_bytes)
        self._inflight: dict[int, QueuedCode] = {}
        self._pending_deletes: list[int] = []
        self._acked_on_disk: set[int] = set()
        self._wake = asyncio.Event()
        self.closed = False

        self.published = 0
        self.spooled = 0
        self.spool_dropped = 0
        self.lost = 0  # neither delivered nor on disk when the sink closed
        self.spool_errors = 0
        self.clock_steps = 0  # wall-clock steps whose re-mapping was applied to unsent codes
        self._failing = 0  # spool reads/writes failed in a row (one log line per episode)
        self._dropping = 0  # codes dropped in the current full-spool episode
        if self.disk_depth:
            log.info("spool has undelivered codes", path=str(spool_path), codes=self.disk_depth)

    @property
    def busy(self) -> bool:
        """Codes wait in memory or for their PUBACK."""
        return bool(self._mem or self._inflight)

    def submit(self, payload: bytes, seq: int) -> None:
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
        if self.closed or not step_s:
            return
        # Lazily: the payload module pulls in the model card, which `fsqd tail` does not need.
        from fsqd.sinks.payload import shift_code_times

        def shift(payload: bytes) -> bytes:
            return shift_code_times(payload, step_s)

        for item in self._mem.values():
            item.payload = shift(item.payload)
        self._mem.recount()
        if self._disk_max_id or self._mem:
            up_to = self._next_id - 1
            fut = self._executor.submit(self.spool.rewrite, up_to, shift)
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

    def counters(self) -> dict[str, int | float]:
        oldest: float | None = self._disk_oldest_t if self.disk_depth else None
        if (first := self._mem.first()) is not None:
            oldest = first.t_wall if oldest is None else min(oldest, first.t_wall)
        spool = self.spool
        return {
            "published": self.published,
            "spooled": self.spooled,
            "spool_depth": self.disk_depth,
            "spool_dropped": self.spool_dropped + self._mem.dropped,
            "unacked": len(self._mem),
            "lost": self.lost,
            "oldest_unsent_age_s": 0.0 if oldest is None else max(0.0, time.time() - oldest),
            "spool_commits": spool.commits,
            "spool_errors": self.spool_errors,
            "spool_bytes": spool.size_bytes(),
            "spool_max_bytes": spool.max_bytes,
            "spool_full": spool.full_episodes,
            "spool_corrupt": spool.corrupt,
            "spool_salvaged": spool.salvaged,
            "sink_clock_steps": self.clock_steps,
        }

    # -- the in-flight window --

    async def send(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        """Publish in id order, at most ``max_inflight`` awaiting PUBACK, until cancelled."""
        window = asyncio.Semaphore(self.settings.max_inflight)
        cursor = 0
        while True:
            batch = await self._next_batch(cursor)
            for item in batch:
                await window.acquire()
                cursor = item.id
                self._inflight[item.id] = item
                tg.create_task(self._publish(client, item, window))

    async def _next_batch(self, cursor: int) -> list[QueuedCode]:
        """Unacknowledged codes after ``cursor``: from the disk first, then memory."""
        while True:
            if cursor < self._disk_max_id:
                try:
                    rows = await self._in_spool_thread(self.spool.read, cursor, 256)
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

    async def _publish(
        self, client: aiomqtt.Client, item: QueuedCode, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(self.topic, item.payload, qos=self.settings.qos)
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

    # -- the spool --

    async def _in_spool_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def flush_loop(self, connected: Callable[[], bool]) -> None:
        """Every commit period: spool what waited too long (everything while disconnected)."""
        while True:
            await asyncio.sleep(self.settings.spool_commit_s)
            try:
                await self.flush(everything=not connected())
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

    async def flush(self, *, everything: bool, include_persisting: bool = False) -> None:
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
            result: CommitResult = await self._in_spool_thread(self.spool.commit, rows, deletes)
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
        self.disk_depth = result.depth
        self._disk_oldest_t = result.oldest_t_submit
        self._disk_max_id = result.max_id

    async def final_flush(self) -> None:
        error: str | None = None
        try:
            await self.flush(everything=True, include_persisting=True)
        except OutputError as e:
            self.spool_errors += 1
            error = str(e)
        lost = sum(1 for item in self._mem.values() if not item.on_disk)
        if lost or error:
            self.lost += lost
            log.error("codes lost at stop: not delivered and not spooled", lost=lost, error=error)

    async def close(self) -> None:
        """After ``final_flush``: close the spool on its own thread, after what is queued
        there (a clock-step rewrite is submitted without being awaited): closing the
        connection under a running statement loses the rewrite and can crash SQLite."""
        self.closed = True
        await self._in_spool_thread(self.spool.close)
        self._executor.shutdown(wait=True)

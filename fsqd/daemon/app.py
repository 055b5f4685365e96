"""`fsqd run`: the live service, sensor -> windows -> codes -> sinks, in one asyncio loop.

Threads: the acquisition thread reads the sensors into its ring buffer and wakes the
loop; the loop cuts windows (``WindowStream``, cheap) and queues them; one inference
thread runs ``CodePipeline`` on whatever is queued (so the loop never blocks on the
encoder); the loop builds each payload once and hands it to every sink.

Backpressure: the queue in front of inference holds at most ``[window] max_pending``
windows; when inference falls behind, the oldest are dropped and counted. Acquisition
is never blocked by it.

Time: samples carry stream times (CLOCK_MONOTONIC + a fixed offset, see ``clock``);
windows are mapped to wall time only when their payload is built, so a wall-clock
step re-maps everything still unsent and never breaks the stream.

Shutdown (SIGTERM, SIGINT, ``--duration``): notifier.stopping(), stop acquisition,
window what was read (and ``stream.flush()`` the open segment), drain the queue through
inference, publish, final stats, close the sinks and the encoder, exit 0. SIGHUP re-reads
the config (``fsqd.daemon.reload``); the payloads, log lines and STATUS= that report on
the run are ``fsqd.daemon.telemetry``'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from fsqd.backends.base import Encoder
from fsqd.backends.select import open_encoder
from fsqd.behaviour.health import CodeHealth
from fsqd.config.loader import Config
from fsqd.daemon.clock import WallClock, clock_synced
from fsqd.daemon.contracts import (
    Acquisition,
    BandLimited,
    Counters,
    LoggingOverride,
    Notifier,
    NullNotifier,
    ReadHints,
    new_run_id,
)
from fsqd.daemon.placement import placement_for
from fsqd.daemon.reload import Reloading
from fsqd.daemon.states import BehaviourStates
from fsqd.daemon.telemetry import log
from fsqd.errors import FsqdError
from fsqd.metrics import StageTimer
from fsqd.osthread import named_executor
from fsqd.pipeline import CodePipeline, WindowStream
from fsqd.sinks.base import ClockStepAware, Sink
from fsqd.sinks.payload import CodeMessages
from fsqd.stream.plausibility import Finding
from fsqd.stream.windows import WindowBatch
from fsqd.types import CodeBatch

__all__ = ["FINAL_STATS_WAIT_S", "Daemon"]

# Deliveries we still wait for (PUBACK); past this, the oldest are forgotten (spooled long ago).
_MAX_IN_FLIGHT = 100_000
# On stop, how long the final stats wait for the last PUBACKs (the rest is the spool's).
FINAL_STATS_WAIT_S = 1.0


class Daemon(Reloading):
    """One run of the service. ``await run()`` returns when stopped and drained."""

    def __init__(
        self,
        config: Config,
        *,
        acquisition: Acquisition,
        sinks: Sequence[Sink],
        encoder: Encoder | None = None,
        notifier: Notifier | None = None,
        clock: WallClock | None = None,
        duration_s: float | None = None,
        handle_signals: bool = True,
        log_override: LoggingOverride | None = None,
        run_id: str | None = None,
    ) -> None:
        # Command-line --log-format/--log-level win over [logging], on every reload too.
        self.log_override = log_override or LoggingOverride()
        config = dataclasses.replace(config, logging=self.log_override.apply(config.logging))
        self.config = config
        self.acq = acquisition
        self.sinks = list(sinks)
        self.notifier: Notifier = notifier or NullNotifier()
        self.clock = clock or WallClock()
        self.duration_s = duration_s
        self.handle_signals = handle_signals
        self.run_id = run_id or new_run_id()
        self.timer = StageTimer()
        pkg = config.model.package
        if encoder is None:
            encoder = open_encoder(
                pkg, config.model.backend, threads=config.model.threads, hailo=config.hailo
            )
        self.pipeline = CodePipeline(pkg, encoder, timer=self.timer)
        self.hop = config.window.hop or pkg.card.hop
        # Live data: time going back (an NTP step, a re-initialised chip) starts a new
        # segment and is counted, never fatal; the sensor's real clock is followed onto the
        # model's grid with a short low-latency kernel when the rates are close (linear
        # when the chip's own low-pass leaves nothing above the model's Nyquist to fold).
        self.stream = WindowStream(
            pkg,
            acquisition.nominal_rate_hz,
            hop=self.hop,
            max_gap_periods=config.window.max_gap_periods,
            timer=self.timer,
            on_backwards="segment",
            track_clock=True,
            low_latency=True,
            band_limit_hz=(
                acquisition.bandwidth_hz if isinstance(acquisition, BandLimited) else None
            ),
            on_finding=self._implausible,
        )
        self.messages = CodeMessages(self.run_id, pkg.label, self.pipeline.labels)
        cal = pkg.card.calibration
        self.health = CodeHealth(
            cal.code_reference if cal is not None else None,
            threshold=config.health.drift_threshold,
            windows=config.health.drift_windows,
        )
        self._last_health = None
        self._drift_since = time.time()
        self._sensors_state = None
        self.states = (
            None
            if pkg.card.head is None
            else BehaviourStates(
                pkg.card,
                self.hop / pkg.card.sample_rate_hz,
                config.behaviour,
                run=self.run_id,
                sinks=self.sinks,
                correction=lambda: self.clock.correction,
            )
        )
        self._want: Callable[[float, float, int], None] | None = (
            acquisition.want if isinstance(acquisition, ReadHints) else None
        )
        self._window_every_s = self.hop / pkg.card.sample_rate_hz
        self.counters = Counters()
        self.stats_interval_s = config.stats.interval_s
        self.seq = 0
        self._pending: deque[tuple[npt.NDArray[np.float32], float, float]] = deque()
        self._in_flight: dict[int, float] = {}  # seq -> t_end, until the sink has published it
        self._started = time.monotonic()
        self._t_started = time.time()  # for info; a SIGHUP may come before _serve resets it
        self._executor = named_executor("fsqd-infer")
        self.placement = placement_for(self.pipeline.encoder)
        self._reload_task: asyncio.Task[None] | None = None
        self._synced: bool | None = clock_synced()
        for sink in self.sinks:
            sink.on_published = self._published

    def _implausible(self, finding: Finding) -> None:
        # The stage reports each channel group once; the message carries the fix.
        log.warning(
            "implausible sensor values", group=finding.group, kind=finding.kind, fix=str(finding)
        )

    # -- the run --

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._work = asyncio.Event()
        self._stop = asyncio.Event()
        self._reschedule = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False  # stop asked: the pump takes the last samples and ends
        self._input_done = False  # the pump has ended: inference drains the queue and ends
        self._period = self.timer.roll()
        if self.handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self.stop, "SIGTERM")
            loop.add_signal_handler(signal.SIGINT, self.stop, "SIGINT")
            loop.add_signal_handler(signal.SIGHUP, self._sighup)
        if self.duration_s is not None:
            loop.call_later(self.duration_s, self.stop, "duration")
        try:

            def wake() -> None:  # called from the acquisition thread
                loop.call_soon_threadsafe(self._wake.set)

            # What start-up built (modules, the model, the sinks) lives as long as the
            # process: out of the collector's sight, a full collection no longer walks it
            # (16-29 ms of the event loop on x86, the max of a run's latency).
            gc.collect()
            gc.freeze()
            self.acq.start(wake)
            try:
                await self._serve()
            except BaseExceptionGroup as eg:
                raise _first_error(eg) from None
        finally:
            self.acq.stop()
            self._executor.shutdown(wait=True)
            self.pipeline.encoder.close()
            if self.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        return 0

    async def _serve(self) -> None:
        card = self.config.model.package.card
        log.info(
            "started",
            run=self.run_id,
            node=self.config.service.node_id,
            model=self.config.model.package.label,
            backend=self.backend,
            rate_hz=self.acq.nominal_rate_hz,
            window=card.window,
            hop=self.hop,
            sinks=[type(s).__name__ for s in self.sinks],
            clock_synced=self._synced,
        )
        self._t_started = time.time()
        info = self._info_payload()
        self._info = info
        for sink in self.sinks:
            sink.publish_info(info)
        self._drift_since = time.time()
        self._publish_health()
        async with asyncio.TaskGroup() as tg:
            sink_tasks = [tg.create_task(s.run(), name=type(s).__name__) for s in self.sinks]
            pump = tg.create_task(self._pump(), name="pump")
            infer = tg.create_task(self._infer(), name="infer")
            periodic = [
                tg.create_task(self._stats_loop(), name="stats"),
                tg.create_task(self._watchdog_loop(), name="watchdog"),
                tg.create_task(self._status_loop(), name="status"),
                tg.create_task(self._sensors_loop(), name="sensors"),
            ]
            await self._stop.wait()
            # Shutdown order: no new samples, everything read is windowed and coded.
            self.notifier.stopping()
            self.acq.stop()
            self._stopping = True
            self._wake.set()
            await pump
            self._input_done = True
            self._work.set()
            await infer
            if self.states is not None:
                self.states.end()  # the last segment ends with the run
            for t in periodic:
                t.cancel()
            await self._settle(min(FINAL_STATS_WAIT_S, self.config.service.drain_timeout_s))
            self._publish_stats()
            for sink in self.sinks:
                await sink.aclose(self.config.service.drain_timeout_s)
            for t in sink_tasks:
                t.cancel()
        self._summary_line(final=True)

    async def _settle(self, timeout_s: float) -> None:
        """Give the sinks a moment to confirm the last codes, so the final stats count them."""
        deadline = time.monotonic() + timeout_s
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def stop(self, why: str = "stop") -> None:
        if not self._stop.is_set():
            log.info("stopping", reason=why, pending=len(self._pending))
            self._stop.set()

    # -- samples -> windows --

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._check_clock()
            self._take_samples()
            if self._stopping:
                self._take_samples()  # the acquisition thread has stopped: the last ones
                for batch in self.stream.flush():  # the open segment's last resampled samples
                    self._queue(batch)
                return

    def _take_samples(self) -> None:
        for chunk in self.acq.read():
            if not len(chunk):
                continue
            if not self.counters.samples:
                # Model loaded and the sensor delivers: ready, without waiting for a broker.
                log.info("ready", first_sample=float(chunk.t[0]))
                self.notifier.ready()
                self._ready.set()
            self.counters.samples += len(chunk)
            # How old the newest sample is when the loop gets it (FIFO wait, bus, hand-over).
            self.timer.add_seconds("acquire", self.clock.now() - float(chunk.t[-1]))
            for batch in self.stream.push(chunk):
                self._queue(batch)

    def _queue(self, batch: WindowBatch) -> None:
        now = self.clock.now()
        n = len(batch)
        self.counters.windows += n
        for i in range(n):
            t_end = float(batch.t_end[i])
            self.timer.add_seconds("window_ready", now - t_end)
            self._pending.append((batch.x[i], float(batch.t_start[i]), t_end))
        if self._want is not None and n:
            self._want(float(batch.t_end[-1]), self._window_every_s, self.stream.look_ahead)
        over = len(self._pending) - self.config.window.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.counters.dropped += over
            log.debug("inference behind: dropped oldest windows", dropped=over)
        self._work.set()

    # -- windows -> codes --

    async def _infer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._input_done:
                    return
                await self._work.wait()
                self._work.clear()
                continue
            take = min(len(self._pending), self.config.window.max_batch)
            items = [self._pending.popleft() for _ in range(take)]
            batch = WindowBatch(
                np.stack([x for x, _, _ in items]),
                np.array([a for _, a, _ in items]),
                np.array([b for _, _, b in items]),
            )
            if self.placement.inline(take):
                codes, took_s = self._encode_timed(batch)
            else:
                codes, took_s = await loop.run_in_executor(
                    self._executor, self._encode_timed, batch
                )
            self.placement.observe(take, took_s)
            self._emit(batch, codes)

    def _encode_timed(self, batch: WindowBatch) -> tuple[CodeBatch, float]:
        t0 = time.perf_counter()
        codes = self.pipeline.encode_windows(batch)
        return codes, time.perf_counter() - t0

    def _emit(self, batch: WindowBatch, codes: CodeBatch) -> None:
        self._check_clock()
        now = self.clock.now()
        correction = self.clock.correction
        latency = now - batch.t_end
        seq0 = self.seq
        payloads = self.messages(
            seq0,
            codes,
            batch.t_start + correction,
            batch.t_end + correction,
            latency,
            self._synced,
        )
        for payload, t_end in zip(payloads, batch.t_end.tolist(), strict=True):
            seq = self.seq
            self.seq += 1
            self._in_flight[seq] = t_end
            if len(self._in_flight) > _MAX_IN_FLIGHT:
                del self._in_flight[next(iter(self._in_flight))]
            for sink in self.sinks:
                sink.submit_code(payload, seq)
        self.counters.coded += len(codes)
        for change in self.health.observe(codes.index.tolist()):
            self._drift_changed(change)
        if self.states is not None:
            self.states.windows(seq0, codes, batch.t_start, batch.t_end)

    def _published(self, seq: int, latency_s: float) -> None:
        """A sink's acknowledgement (PUBACK, completed write): publish and e2e latency."""
        self.timer.add_seconds("publish", latency_s)
        t_end = self._in_flight.pop(seq, None)
        if t_end is not None:  # None: spooled by an earlier run, or forgotten long ago
            self.timer.add_seconds("e2e", self.clock.now() - t_end)

    def _check_clock(self) -> None:
        step = self.clock.check()
        if step is not None:
            self.counters.clock_steps += 1
            self._synced = clock_synced()
            for sink in self.sinks:
                # Codes a sink still holds (spooled) were built with the old mapping.
                if isinstance(sink, ClockStepAware):
                    sink.clock_stepped(step)
            log.warning(
                "wall clock stepped: unsent windows re-mapped",
                step_s=round(step, 3),
                pending=len(self._pending),
                clock_synced=self._synced,
            )


def _first_error(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a task group: fsqd's own errors first."""
    flat: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            flat.append(e)

    walk(eg)
    for e in flat:
        if isinstance(e, FsqdError):
            return e
    return flat[0]

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
the config: the stats interval and log level apply at once (command-line log settings
still win), anything else is logged as needing a restart, and ``info`` is sent again.
STATUS= goes to the notifier at READY and every ``STATUS_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TextIO, TypeVar

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.backends.base import Encoder
from fsqd.backends.select import encoder_stats, open_encoder
from fsqd.chunk import SampleChunk
from fsqd.clock import SystemClock
from fsqd.config import Config, LoggingConfig, load_config
from fsqd.errors import FsqdError
from fsqd.imu.acquire.acquisition import open_acquisition
from fsqd.metrics import StageTimer
from fsqd.pipeline import CodePipeline, WindowStream
from fsqd.service.clock import WallClock, clock_synced
from fsqd.service.instance import StateDirLock
from fsqd.service.logging import configure_logging
from fsqd.service.systemd import SystemdNotifier
from fsqd.sinks.base import Sink
from fsqd.sinks.payload import CodeMessages, info_payload, stats_payload
from fsqd.stream.plausibility import Finding
from fsqd.stream.windows import WindowBatch
from fsqd.types import CodeBatch

log = structlog.get_logger(__name__)

# Deliveries we still wait for (PUBACK); past this, the oldest are forgotten (spooled long ago).
_MAX_IN_FLIGHT = 100_000
# On stop, how long the final stats wait for the last PUBACKs (the rest is the spool's).
FINAL_STATS_WAIT_S = 1.0
# systemd's STATUS= line: from READY on, this often (the stats period may be minutes).
STATUS_INTERVAL_S = 5.0
# A SIGHUP's config read gives up after this (the file is on a hung mount, say).
RELOAD_TIMEOUT_S = 10.0
T = TypeVar("T")
# The sinks' counters the stats/summary log line carries (a sink reports those it has).
SUMMARY_SINK_COUNTERS = ("published", "spooled", "spool_depth", "spool_dropped", "unacked", "lost")


def new_run_id() -> str:
    """Random per start: the ``run`` of every payload and the spool's rows of this run."""
    return uuid.uuid4().hex[:12]


class Acquisition(Protocol):
    """``fsqd.imu.acquire.acquisition.Acquisition`` as the daemon uses it."""

    nominal_rate_hz: float
    channels: int

    def start(self, wake: Callable[[], None]) -> None: ...
    def read(self) -> list[SampleChunk]: ...
    def status(self) -> Sequence[Any]: ...
    def stop(self) -> None: ...


class Notifier(Protocol):
    watchdog_interval_s: float | None

    def ready(self) -> None: ...
    def status(self, line: str) -> None: ...
    def watchdog(self) -> None: ...
    def stopping(self) -> None: ...
    def reloading(self) -> None: ...


class NullNotifier:
    """No service manager: every notification is a no-op."""

    watchdog_interval_s: float | None = None

    def ready(self) -> None:
        pass

    def status(self, line: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass

    def reloading(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class LoggingOverride:
    """``fsqd run --log-format/--log-level``: None keeps the config file's value."""

    format: str | None = None
    level: str | None = None

    def apply(self, cfg: LoggingConfig) -> LoggingConfig:
        return LoggingConfig(self.format or cfg.format, self.level or cfg.level)


@dataclasses.dataclass
class Counters:
    samples: int = 0
    windows: int = 0  # windows cut from the stream
    coded: int = 0  # windows that went through inference
    dropped: int = 0  # windows dropped because inference fell behind
    clock_steps: int = 0


class Daemon:
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
        # model's grid with the short low-latency kernel when the rates are close.
        self.stream = WindowStream(
            pkg,
            acquisition.nominal_rate_hz,
            hop=self.hop,
            max_gap_periods=config.window.max_gap_periods,
            timer=self.timer,
            on_backwards="segment",
            track_clock=True,
            low_latency=True,
            on_finding=self._implausible,
        )
        self.messages = CodeMessages(self.run_id, pkg.label, self.pipeline.labels)
        # Optional on a source: it reads its FIFOs just after each window completes.
        self._want: Callable[[float, float], None] | None = getattr(acquisition, "want", None)
        self._window_every_s = self.hop / pkg.card.sample_rate_hz
        self.counters = Counters()
        self.stats_interval_s = config.stats.interval_s
        self.seq = 0
        self._pending: deque[tuple[npt.NDArray[np.float32], float, float]] = deque()
        self._in_flight: dict[int, float] = {}  # seq -> t_end, until the sink has published it
        self._started = time.monotonic()
        self._t_started = time.time()  # for info; a SIGHUP may come before _serve resets it
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fsqd-infer")
        self._reload_task: asyncio.Task[None] | None = None
        self._synced: bool | None = clock_synced()
        for sink in self.sinks:
            sink.on_published = self._published

    def _implausible(self, finding: Finding) -> None:
        # The stage reports each channel group once; the message carries the fix.
        log.warning(
            "implausible sensor values", group=finding.group, kind=finding.kind, fix=str(finding)
        )

    @property
    def backend(self) -> str:
        # Read each time: "auto" falls back to the CPU and returns to the NPU at run time.
        return self.pipeline.encoder.name

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
        async with asyncio.TaskGroup() as tg:
            sink_tasks = [tg.create_task(s.run(), name=type(s).__name__) for s in self.sinks]
            pump = tg.create_task(self._pump(), name="pump")
            infer = tg.create_task(self._infer(), name="infer")
            periodic = [
                tg.create_task(self._stats_loop(), name="stats"),
                tg.create_task(self._watchdog_loop(), name="watchdog"),
                tg.create_task(self._status_loop(), name="status"),
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
            for t in periodic:
                t.cancel()
            await self._settle(min(FINAL_STATS_WAIT_S, self.config.service.drain_timeout_s))
            self._publish_stats()
            for sink in self.sinks:
                await sink.aclose(self.config.service.drain_timeout_s)
            for t in sink_tasks:
                t.cancel()
        self._summary_line(final=True)

    def _info_payload(self, config_hash: str | None = None) -> bytes:
        return info_payload(
            run=self.run_id,
            node_id=self.config.service.node_id,
            backend=self.backend,
            card=self.config.model.package.card,
            model_tag=self.config.model.package.label,
            config_hash=config_hash or self.config.hash,
            hop=self.hop,
            started=self._t_started,
            encoder=encoder_stats(self.pipeline.encoder),
        )

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
            self._want(float(batch.t_end[-1]), self._window_every_s)
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
            codes = await loop.run_in_executor(self._executor, self.pipeline.encode_windows, batch)
            self._emit(batch, codes)

    def _emit(self, batch: WindowBatch, codes: CodeBatch) -> None:
        self._check_clock()
        now = self.clock.now()
        correction = self.clock.correction
        latency = now - batch.t_end
        payloads = self.messages(
            self.seq,
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
                hook = getattr(sink, "clock_stepped", None)
                if hook is not None:
                    hook(step)
            log.warning(
                "wall clock stepped: unsent windows re-mapped",
                step_s=round(step, 3),
                pending=len(self._pending),
                clock_synced=self._synced,
            )

    # -- periodic --

    async def _stats_loop(self) -> None:
        while True:
            try:
                # A reload that changes the interval restarts the wait.
                await asyncio.wait_for(self._reschedule.wait(), self.stats_interval_s)
                self._reschedule.clear()
                continue
            except TimeoutError:
                pass
            self._synced = clock_synced()
            self._publish_stats()
            self._summary_line(final=False)

    def _publish_stats(self) -> None:
        self._period = self.timer.roll()
        counters: dict[str, int | float] = {
            "samples": self.counters.samples,
            "gaps": self.stream.gaps.gaps,
            "windows": self.counters.windows,
            "coded": self.counters.coded,
            "dropped": self.counters.dropped,
            "pending": len(self._pending),
            "time_going_back": self.stream.gaps.backwards,
            "clock_steps": self.counters.clock_steps,
        }
        for sink in self.sinks:
            counters.update(sink.counters())
        encoder = encoder_stats(self.pipeline.encoder)
        counters.update({f"encoder_{k}": v for k, v in encoder.items() if _is_number(v)})
        # JSON has no Infinity/NaN: a counter that is not finite is left out, not sent broken.
        counters = {k: v for k, v in counters.items() if _is_number(v)}
        payload = stats_payload(
            run=self.run_id,
            node_id=self.config.service.node_id,
            t=time.time(),
            interval_s=self.stats_interval_s,
            uptime_s=time.monotonic() - self._started,
            backend=self.backend,
            clock_synced=self._synced,
            period=self._period,
            counters=counters,
            sensors=[_plain(s) for s in self.acq.status()],
            plausibility=self.stream.plausibility.stats(),
            encoder=encoder,
        )
        self.last_stats = payload
        for sink in self.sinks:
            sink.publish_stats(payload)

    def _summary_line(self, *, final: bool) -> None:
        """The ``stats``/``summary`` log line: each count once, named as in the stats payload
        (``coded`` codes built, ``published`` acknowledged by the broker or written, ...)."""
        period = self._period
        e2e = period.cumulative.get("e2e") if final else period.stages.get("e2e")
        states = ",".join(str(_plain(s).get("state", "?")) for s in self.acq.status())
        delivery: dict[str, int | float] = {}
        for sink in self.sinks:
            delivery.update(sink.counters())
        fields = {
            "samples": self.counters.samples,
            "windows": self.counters.windows,
            "dropped": self.counters.dropped,
            "coded": self.counters.coded,
            **{k: delivery[k] for k in SUMMARY_SINK_COUNTERS if k in delivery},
            "gaps": self.stream.gaps.gaps,
            "sensors": states,
            "e2e_p50_ms": None if e2e is None else e2e.p50 / 1000,
            "e2e_p99_ms": None if e2e is None else e2e.p99 / 1000,
        }
        log.info("summary" if final else "stats", **fields)

    async def _status_loop(self) -> None:
        """STATUS= for systemctl status: sent at READY, then every few seconds."""
        await self._ready.wait()
        last_t, last_windows = time.monotonic(), self.counters.windows
        self.notifier.status(self.status_line(0.0))
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            now = time.monotonic()
            rate = (self.counters.windows - last_windows) / max(now - last_t, 1e-9)
            last_t, last_windows = now, self.counters.windows
            self.notifier.status(self.status_line(rate))

    def status_line(self, windows_per_s: float) -> str:
        """One line: sensor state and measured rate, windows/s, e2e p99, broker, spooled,
        backend."""
        sensors = [_plain(s) for s in self.acq.status()]
        states = "/".join(str(d.get("state", "?")) for d in sensors) or "?"
        measured = [r for d in sensors if isinstance(r := d.get("rate_hz"), int | float)]
        rate = "/".join(f"{r:.1f}" for r in measured) if measured else "?"
        p99 = self.timer.peek_us("e2e", 99.0)
        e2e = "-" if p99 is None else f"{p99 / 1000:.1f} ms"
        counters: dict[str, int | float] = {}
        for sink in self.sinks:
            counters.update(sink.counters())
        if "connected" not in counters:
            broker = "stdout"
        else:
            broker = "connected" if counters["connected"] else "disconnected"
        spooled = int(counters.get("spool_depth", 0))
        return (
            f"sensors {states} {rate} Hz, {windows_per_s:.1f} windows/s, e2e p99 {e2e}, "
            f"broker {broker}, {spooled} spooled, backend {self.backend}"
        )

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval is None:
            return
        seen = 0  # no sample yet is no progress
        while True:
            # Only while samples still advance: a stuck sensor lets systemd restart us.
            if self.counters.samples != seen:
                seen = self.counters.samples
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    # -- SIGHUP --

    def _sighup(self) -> None:
        """SIGHUP, on the loop: the file is read in a thread, so a slow or stuck read (a
        network mount, a FIFO swapped in) never holds up the stream; past RELOAD_TIMEOUT_S
        the running config stays."""
        if self._reload_task is not None and not self._reload_task.done():
            log.warning("reload already in progress: SIGHUP ignored")
            return
        self.notifier.reloading()
        self._reload_task = asyncio.get_running_loop().create_task(self._reload_in_thread())

    async def _reload_in_thread(self) -> None:
        path = self.config.path
        try:
            new = await asyncio.wait_for(_in_thread(load_config, path), RELOAD_TIMEOUT_S)
        except TimeoutError:
            self._reload_failed(f"{path}: not read within {RELOAD_TIMEOUT_S:g} s")
        except Exception as e:  # FsqdError: one line; anything else still must not stop us
            self._reload_failed(str(e) if isinstance(e, FsqdError) else repr(e))
        else:
            self._apply(new)

    def reload(self) -> None:
        """Read the config file again and apply it, here and now (SIGHUP goes through
        ``_sighup``, which reads it in a thread)."""
        self.notifier.reloading()
        try:
            new = load_config(self.config.path)
        except FsqdError as e:
            self._reload_failed(str(e))
            return
        self._apply(new)

    def _reload_failed(self, why: str) -> None:
        log.error("reload failed: keeping the running config", error=why)
        self.notifier.ready()

    def _apply(self, new: Config) -> None:
        new = dataclasses.replace(new, logging=self.log_override.apply(new.logging))
        old = self.config
        if new.stats.interval_s != old.stats.interval_s:
            self.stats_interval_s = new.stats.interval_s
            self._reschedule.set()
        if new.logging.level != old.logging.level:
            configure_logging(old.logging.format, new.logging.level)
        restart = [
            name
            for name in ("model", "hailo", "window", "mqtt", "homeassistant", "service", "sensors")
            if _differs(getattr(new, name), getattr(old, name))
        ]
        if new.logging.format != old.logging.format:
            restart.append("logging.format")
        log.info(
            "config reloaded",
            applied=["stats.interval_s", "logging.level"],
            needs_restart=restart or None,
            config_hash=new.hash,
        )
        self.config = dataclasses.replace(
            old,
            stats=new.stats,
            logging=dataclasses.replace(new.logging, format=old.logging.format),
        )
        # The retained info names the config hash the file has now (and the encoder's state).
        info = self._info_payload(config_hash=new.hash)
        for sink in self.sinks:
            sink.publish_info(info)
        self.notifier.ready()


def _in_thread(fn: Callable[[Any], T], arg: Any) -> asyncio.Future[T]:
    """``fn(arg)`` in a daemon thread: unlike an executor's, one that never returns (a
    stuck read) is abandoned on timeout and does not hold up the process's exit."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(settle: Callable[[], None]) -> None:
        def on_loop() -> None:
            if not fut.done():  # else it timed out and was cancelled meanwhile
                settle()

        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(on_loop)

    def work() -> None:
        try:
            result = fn(arg)
        except BaseException as e:
            deliver(functools.partial(fut.set_exception, e))
            return
        deliver(functools.partial(fut.set_result, result))

    threading.Thread(target=work, name="fsqd-reload", daemon=True).start()
    return fut


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _differs(a: Any, b: Any) -> bool:
    return bool(a != b)


def _plain(status: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(status) and not isinstance(status, type):
        d = dataclasses.asdict(status)
    elif isinstance(status, dict):
        d = dict(status)
    else:
        d = dict(vars(status))
    return {k: _json_value(v) for k, v in d.items()}


def _json_value(v: Any) -> Any:
    if hasattr(v, "value"):  # an enum (SensorState)
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None  # e.g. a rate not measured yet: JSON has no NaN
    return v


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


# -- building a daemon from a config --


def open_sinks(config: Config, *, stdout: bool, out: TextIO, run_id: str = "") -> list[Sink]:
    """JSON lines when asked, when no broker is configured, or (demo) when none answers."""
    from fsqd.sinks.jsonl import JsonLinesSink

    mqtt = config.mqtt
    if stdout or mqtt is None:
        return [JsonLinesSink(out)]
    if config.service.without_broker == "stdout":
        # The demo's choice: say where the codes go, since it depends on the machine.
        if not broker_answers(mqtt.host, mqtt.port):
            print(
                f"fsqd: no MQTT broker answers at {mqtt.host}:{mqtt.port} "
                f"(TCP connect probe, {PROBE_TIMEOUT_S:g} s): printing codes as JSON lines",
                file=sys.stderr,
            )
            return [JsonLinesSink(out)]
        print(
            f"fsqd: publishing to the MQTT broker at {mqtt.host}:{mqtt.port}, "
            f"topics {mqtt.base_topic}/# (watch with: mosquitto_sub -h {mqtt.host} "
            f"-p {mqtt.port} -t '{mqtt.base_topic}/#' -v)",
            file=sys.stderr,
        )
    from fsqd.sinks.homeassistant import discovery_for
    from fsqd.sinks.mqtt.sink import MqttSink

    card = config.model.package.card
    discovery = discovery_for(
        config.homeassistant,
        mqtt,
        labels=card.head.labels if card.head is not None else None,
        model_name=card.name,
        model_version=card.version,
    )
    sink: Sink = MqttSink(
        mqtt, config.service.state_dir / SPOOL_FILE, discovery=discovery, run_id=run_id
    )
    return [sink]


SPOOL_FILE = "spool.sqlite"


PROBE_TIMEOUT_S = 0.5


def broker_answers(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """A short TCP connect: is anything listening (connection refused comes back at once)?"""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def open_source(config: Config, clock: SystemClock) -> Acquisition:
    acq: Acquisition = open_acquisition(
        config.sensors, config.model.package.card.devices, clock=clock
    )
    return acq


def run_daemon(
    config: Config,
    *,
    duration_s: float | None,
    stdout: bool,
    out: TextIO = sys.stdout,
    acquisition: Acquisition | None = None,
    log_override: LoggingOverride | None = None,
) -> int:
    with contextlib.ExitStack() as held:
        if not stdout and config.mqtt is not None:
            # Before anything else: a second daemon on this state directory would share
            # the spool and the broker client id (BusyError, exit 75, naming the first).
            held.enter_context(StateDirLock(config.service.state_dir))
        return _run_daemon(
            config,
            duration_s=duration_s,
            stdout=stdout,
            out=out,
            acquisition=acquisition,
            log_override=log_override,
        )


def _run_daemon(
    config: Config,
    *,
    duration_s: float | None,
    stdout: bool,
    out: TextIO,
    acquisition: Acquisition | None,
    log_override: LoggingOverride | None,
) -> int:
    logging = (log_override or LoggingOverride()).apply(config.logging)
    configure_logging(logging.format, logging.level)
    run_id = new_run_id()
    sinks = open_sinks(config, stdout=stdout, out=out, run_id=run_id)
    # Samples are stamped on the acquisition clock's timeline (CLOCK_MONOTONIC + the
    # offset it captured); the wall clock is followed from that same offset.
    sample_clock = SystemClock()
    acquisition = acquisition or open_source(config, sample_clock)
    daemon = Daemon(
        config,
        acquisition=acquisition,
        sinks=sinks,
        clock=WallClock(base=sample_clock.epoch_offset),
        notifier=SystemdNotifier.from_environ(),
        duration_s=duration_s,
        log_override=log_override,
        run_id=run_id,
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(daemon.run())
    return 0

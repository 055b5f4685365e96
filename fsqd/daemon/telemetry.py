"""The daemon's reports: the ``info`` and ``stats`` payloads, the ``stats``/``summary`` log
line, systemd's STATUS= line and the watchdog.

Counts are named once, as in the stats payload (``coded`` codes built, ``published``
acknowledged by the broker or written, ...), and every report reads the same counters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any

import structlog

from fsqd.backends.select import encoder_stats
from fsqd.config.loader import Config
from fsqd.daemon.clock import clock_synced
from fsqd.daemon.contracts import Acquisition, Counters, Notifier
from fsqd.daemon.states import BehaviourStates
from fsqd.metrics import Period, StageTimer
from fsqd.pipeline import CodePipeline, WindowStream
from fsqd.sinks.base import Sink
from fsqd.sinks.payload import info_payload, stats_payload

__all__ = ["STATUS_INTERVAL_S", "SUMMARY_SINK_COUNTERS", "Telemetry", "plain"]

# One logger for the whole daemon, whichever module of it logs (the journal's LOGGER field).
log = structlog.get_logger("fsqd.daemon")

# systemd's STATUS= line: from READY on, this often (the stats period may be minutes).
STATUS_INTERVAL_S = 5.0
# The sinks' counters the stats/summary log line carries (a sink reports those it has).
SUMMARY_SINK_COUNTERS = ("published", "spooled", "spool_depth", "spool_dropped", "unacked", "lost")


class Telemetry:
    """The daemon's reporting half (``fsqd.daemon.app.Daemon`` sets the state it reads)."""

    config: Config
    acq: Acquisition
    sinks: list[Sink]
    notifier: Notifier
    pipeline: CodePipeline
    states: BehaviourStates | None
    stream: WindowStream
    timer: StageTimer
    counters: Counters
    run_id: str
    hop: int
    stats_interval_s: float
    last_stats: bytes
    _pending: Any  # a deque of queued windows: only its length is read here
    _period: Period
    _started: float
    _t_started: float
    _synced: bool | None
    _ready: asyncio.Event
    _reschedule: asyncio.Event

    @property
    def backend(self) -> str:
        # Read each time: "auto" falls back to the CPU and returns to the NPU at run time.
        return self.pipeline.encoder.name

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
            sensors=[plain(s) for s in self.acq.status()],
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
        states = ",".join(str(plain(s).get("state", "?")) for s in self.acq.status())
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
        sensors = [plain(s) for s in self.acq.status()]
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


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def plain(status: Any) -> dict[str, Any]:
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

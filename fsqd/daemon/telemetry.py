"""The daemon's reports: the ``info``, ``stats`` and ``health`` payloads, the
``stats``/``summary`` log line, the drift warning, systemd's STATUS= line and the watchdog.

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
from fsqd.behaviour.health import SUSTAIN_CHECKS, CodeHealth, DriftChange, PeriodHealth
from fsqd.config.loader import Config
from fsqd.daemon.clock import clock_synced
from fsqd.daemon.contracts import Acquisition, Counters, Notifier
from fsqd.daemon.states import BehaviourStates
from fsqd.metrics import Period, StageTimer
from fsqd.pipeline import CodePipeline, WindowStream
from fsqd.sinks.base import Sink
from fsqd.sinks.payload import health_payload, info_payload, stats_payload

__all__ = [
    "SENSOR_POLL_S",
    "STATUS_INTERVAL_S",
    "SUMMARY_SINK_COUNTERS",
    "Telemetry",
    "plain",
    "worst_sensor_state",
]

# One logger for the whole daemon, whichever module of it logs (the journal's LOGGER field).
log = structlog.get_logger("fsqd.daemon")

# systemd's STATUS= line: from READY on, this often (the stats period may be minutes).
STATUS_INTERVAL_S = 5.0
# The sinks' counters the stats/summary log line carries (a sink reports those it has).
SUMMARY_SINK_COUNTERS = ("published", "spooled", "spool_depth", "spool_dropped", "unacked", "lost")
# How often the sensors' state is looked at for the health message (a lost IMU makes Home
# Assistant's behaviour entities unavailable within about this long, plus the reader's 2 s).
SENSOR_POLL_S = 0.25  # a lost IMU ends the behaviour segment within this
_SENSOR_STATES = ("ok", "degraded", "lost")  # best to worst


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
    health: CodeHealth
    _last_health: PeriodHealth | None  # the last closed stats period's
    _drift_since: float  # UNIX time drift became what it is
    _sensors_state: str | None  # as last published in the health message

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
        self._last_health = self.health.roll()
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
            health=self._last_health.as_dict(),
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
        health = self._last_health
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
            "perplexity": None if health is None else _rounded(health.perplexity, 2),
            "unseen_share": None if health is None else _rounded(health.unseen_share, 4),
            "jsd": None if health is None else _rounded(health.jsd, 4),
            "drift": None if health is None else health.drift,
        }
        log.info("summary" if final else "stats", **fields)

    # -- code-usage health and the sensors' state: the retained health message --

    def _drift_changed(self, change: DriftChange) -> None:
        """Drift became sustained, or cleared: one log line and a new health message."""
        fields = {
            "jsd": round(change.jsd, 4),
            "threshold": change.threshold,
            "windows": change.windows,
            "checks": SUSTAIN_CHECKS,
        }
        if change.drift:
            log.warning("code usage drifted from the model's reference", **fields)
        else:
            log.info("code usage back near the model's reference", **fields)
        self._drift_since = time.time()
        self._publish_health()

    def _publish_health(self) -> None:
        last = self._last_health
        self._sensors_state = worst_sensor_state(self.acq.status())
        payload = health_payload(
            drift=self.health.drift,
            jsd=None if self.health.jsd is None else round(self.health.jsd, 6),
            perplexity=None if last is None else _rounded(last.perplexity, 6),
            unseen_share=None if last is None else _rounded(last.unseen_share, 6),
            since=self._drift_since,
            sensors=self._sensors_state,
        )
        for sink in self.sinks:
            sink.publish_health(payload)

    async def _sensors_loop(self) -> None:
        """The sensors' state, every SENSOR_POLL_S: a lost sensor ends the behaviour segment
        at once (it hands over no samples, so the pump, woken by samples, would only see it
        when they come back); a change of the worst state is a new health message."""
        while True:
            await asyncio.sleep(SENSOR_POLL_S)
            status = self.acq.status()
            if self.states is not None:
                self.states.check_sensors(status)
            if worst_sensor_state(status) != self._sensors_state:
                self._publish_health()

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


def worst_sensor_state(statuses: Any) -> str:
    """ok < degraded < lost over every sensor (an unknown state counts as degraded)."""
    worst = 0
    for s in statuses:
        state = str(plain(s).get("state", "ok"))
        rank = _SENSOR_STATES.index(state) if state in _SENSOR_STATES else 1
        worst = max(worst, rank)
    return _SENSOR_STATES[worst]


def _rounded(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


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

"""One sensor, read in bursts: init, anchors, FIFO drains, overflow, errors, re-init.

``SensorReader.poll()`` is one step of the acquisition loop for one sensor. It never
raises for a bus problem: an OSError is counted, retried after a back-off that doubles
(5 ms .. 1 s), and after ``REINIT_AFTER`` failures in a row the chip is configured
again from scratch. A FIFO overrun resets the FIFO. A chip that stops producing samples
(it lost power and came back with its registers at reset values) is re-initialised.
Anything that breaks the run of samples starts a new segment and counts what was lost.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.clock import Clock
from fsqd.imu.acquire.config import SensorConfig
from fsqd.imu.acquire.mounting import Calibration
from fsqd.imu.acquire.timing import ANCHOR_EVERY_S, RELOCK_S, SampleClock
from fsqd.imu.bus import RetryingBus, errno_name, is_bus_error
from fsqd.imu.driver import ChipIdError, ImuDriver, MagDriver

log = structlog.get_logger(__name__)

REINIT_AFTER = 3  # failures in a row before the chip is configured again
BACKOFF_S = (0.005, 1.0)  # first and longest wait between retries
LOST_AFTER_S = 2.0  # no samples for this long: the sensor is lost
DEGRADED_FOR_S = 10.0  # an error keeps the sensor degraded this long
SPIN_LEAD_S = 1e-3  # start polling the count this long before a sample is due
SPIN_GRACE_S = 1.5e-3  # give up an anchor this long after the sample was due
MAX_RATE_ERROR = 0.1  # a chip's true period is within 10 % of the estimate
HOLD_S = 2.0  # at a segment start, hold samples this long (at most) for a tight anchor


def _auto_poll_s(imu: ImuDriver) -> float:
    """A burst period that leaves the FIFO 8x headroom, within 10-50 ms (fewer wake-ups
    at low rates, where each costs as much as at high ones)."""
    fifo_s = imu.fifo_capacity / imu.odr_hz
    return min(0.05, max(0.01, fifo_s / 8))


class StallError(OSError):
    """The chip answers but produces no samples (it lost its configuration)."""


@dataclass(frozen=True)
class Block:
    t: npt.NDArray[np.float64]  # UNIX epoch seconds
    x: npt.NDArray[np.float32]  # (n, 9) body axes, SI units
    new_segment: bool


class SensorReader:
    def __init__(
        self,
        config: SensorConfig,
        imu: ImuDriver,
        mag: MagDriver | None,
        clock: Clock,
        bus: RetryingBus | None = None,
    ) -> None:
        self.config = config
        self.bus = bus  # this sensor's view of its bus, counting failed transfers
        self.imu = imu
        self.mag = mag
        self.clock = clock
        self.calibrate = Calibration(config)
        self.nominal_hz = imu.odr_hz
        self.sample_clock = SampleClock(imu.odr_hz, imu.rate_hint_hz)
        self.ready = False
        self.chip_id_error = False
        self.total = 0  # samples delivered in this segment
        self.samples = 0
        self.lost = 0
        self.overruns = 0  # FIFO overruns (the chip's buffer, not the ring's)
        self.errors = 0
        self.reinits = 0
        self.segments = 0
        self.message = ""
        self.inits = 0
        self.other_failures = 0
        self._bus_failures_seen = 0
        self._consecutive = 0
        now = clock.now()
        self._next_attempt = now
        self._last_data = now
        self._last_error_at = -math.inf
        self._next_anchor_at = now
        self._new_segment = True
        self._pending: list[npt.NDArray[np.float32]] = []  # read, waiting for a tight anchor
        self._emitted = 0  # samples of this segment handed out
        self._segment_t0 = now
        self._last_stamp: float | None = None  # monotonic stamp of the newest sample delivered
        self._counted_ahead = 0  # lost samples counted before the gap's size was known
        self._mag_prev: tuple[float, npt.NDArray[np.float64]] | None = None
        self.poll_s = config.poll_ms / 1000 if config.poll_ms is not None else _auto_poll_s(imu)
        self._stall_s = max(0.25, 5.0 / imu.odr_hz, 3 * self.poll_s)

    # -- state --

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def bus_errors(self) -> int:
        """Failed transfers: those repeated by the bus and those that failed a step."""
        return self.bus.failures + self.other_failures if self.bus is not None else self.errors

    @property
    def rate_hz(self) -> float:
        return self.sample_clock.rate_hz

    def state(self) -> str:
        now = self.clock.now()
        if self.chip_id_error or now - self._last_data > LOST_AFTER_S:
            return "lost"
        if self._consecutive or now - self._last_error_at < DEGRADED_FOR_S:
            return "degraded"
        return "ok"

    # -- the step --

    def poll(self, *, anchor: bool = True) -> Block | None:
        """One burst. ``anchor=False``: leave a due edge catch to ``maintain()``, to run
        once the burst's samples are handed over (the acquisition thread does)."""
        if self.clock.now() < self._next_attempt:
            return None
        try:
            if not self.ready:
                self._init()
            if anchor and self.clock.now() >= self._next_anchor_at:
                self._try_anchor()
            block = self._burst()
        except OSError as e:
            self._failed(e)
            return None
        finally:
            self._note_bus_failures()
        self._consecutive = 0
        return block

    def maintain(self) -> None:
        """Catch a FIFO-count edge if one is due (the sample clock's upkeep), apart from
        ``poll(anchor=False)`` so that it runs after a burst is handed over: the catch waits
        for the next sample, up to a period, and a read that a window waits for must not."""
        now = self.clock.now()
        if not self.ready or now < self._next_attempt or now < self._next_anchor_at:
            return
        try:
            self._try_anchor()
        except OSError as e:
            self._failed(e)
        finally:
            self._note_bus_failures()

    def _note_bus_failures(self) -> None:
        """Transfers the bus repeated successfully still make the sensor degraded."""
        if self.bus is not None and self.bus.failures != self._bus_failures_seen:
            self._bus_failures_seen = self.bus.failures
            self._last_error_at = self.clock.now()
            self.message = self.message or self.bus.last_error

    def _init(self) -> None:
        if self.inits:
            self.reinits += 1
        self.inits += 1
        self.imu.init()
        if self.inits == 1:  # the chip's own trim is known now; later, the fit is better
            self.sample_clock.period = 1.0 / self.imu.rate_hint_hz
        if self.mag is not None:
            self.mag.init()
            # Its first sample takes a period; until then the output registers read 0.
            self.clock.sleep(1.5 / self.mag.odr_hz)
        self.chip_id_error = False
        self.ready = True
        self._mag_prev = None
        self._start_segment()
        log.info(
            "sensor configured",
            sensor=self.name,
            driver=self.imu.name,
            odr_hz=self.imu.odr_hz,
            requested_hz=self.config.rate_hz,
            reinit=self.reinits > 0,
        )

    def _start_segment(self) -> None:
        self.sample_clock.restart()
        self.total = 0
        self._emitted = 0
        self._pending = []
        self._segment_t0 = self.clock.now()
        self._new_segment = True
        self._next_anchor_at = self.clock.now()
        self._last_data = self.clock.now()

    def _count(self) -> tuple[float, int, float]:
        tb = self.clock.now()
        c = self.imu.fifo_count()
        return tb, c, self.clock.now()

    def _try_anchor(self) -> None:
        """Catch the FIFO count changing: when the next sample appeared, to a read or two."""
        sc = self.sample_clock
        # After a miss the line is not trusted: spin up to a whole period from now,
        # where an edge must come, instead of waiting where the line says.
        guided = sc.locked and not sc.missed
        tb0, c0, ta0 = self._count()
        if guided:
            wait = sc.expected(self.total + c0) - ta0 - SPIN_LEAD_S
            if wait > 0:
                self.clock.sleep(min(wait, sc.period))
                tb0, c0, ta0 = self._count()
        # Spin at most a period and a bit, whatever the model says.
        deadline = ta0 + sc.period * (1 + MAX_RATE_ERROR) + 2 * SPIN_GRACE_S
        if guided:
            deadline = min(deadline, sc.expected(self.total + c0) + SPIN_GRACE_S)
        prev_tb = tb0
        while True:
            self.clock.tick()
            tb, c, ta = self._count()
            if c != c0:
                if not sc.add_anchor(self.total + c0, prev_tb, ta):
                    self._next_anchor_at = ta  # preempted, or off the line: again soon
                    return
                # Anchors come quickly at first (samples 0, 3, 9, 27, ..) to pin the
                # rate down before an error in the hint can add up, then once a second.
                k = self.total + c0 - sc.lock_k
                self._next_anchor_at = ta + min(ANCHOR_EVERY_S, (2 * k + 3) * sc.period)
                return
            if ta > deadline:
                if guided:
                    sc.missed += 1  # no edge where the line said: the line is off
                self._next_anchor_at = ta  # try again at the next burst
                return
            prev_tb = tb

    def _burst(self) -> Block | None:
        sc = self.sample_clock
        # Every transfer that can fail comes before the FIFO drain: once samples are
        # out of the FIFO, nothing may stop them reaching the ring.
        mag_t, mag = self._mag_reading()
        tb, c, ta = self._count()
        if c == 0:
            if ta - self._last_data > self._stall_s:
                raise StallError(f"no samples for {ta - self._last_data:.2f} s")
            return None
        if sc.tight and self._line_contradicted(tb, c, ta):
            # The line is off (the oscillator moved): catch edges unguided now, two if
            # the first is held as a suspect, and stamp this burst from the new line.
            sc.missed = max(sc.missed, 1)
            self._try_anchor()
            if sc.suspect:
                self._try_anchor()
            tb, c, ta = self._count()
        read = self.imu.read_fifo(c)
        if read.overflow:
            self.overruns += 1
            self.imu.reset_fifo()
            # What the FIFO held is lost now (and what it overwrote, known at the next
            # sample); samples held back for an anchor are lost with them.
            dropped = c + sum(len(p) for p in self._pending)
            self.lost += dropped
            self._counted_ahead += dropped
            log.warning("FIFO overrun: FIFO reset", sensor=self.name, lost=dropped)
            self._start_segment()
            return None
        n = len(read.samples)
        if n == 0:
            return None
        if not sc.locked:
            # Sample total+c-1 existed by ta and sample total+c did not at tb: a wide
            # anchor that carries the stamps until a tight one is caught.
            sc.add_anchor(self.total + c - 1, tb - sc.period, ta)
        x = read.samples.astype(np.float64)
        if read.mag is not None:
            mag_t, mag = ta, read.mag
        if mag is not None:
            x[:, 6:9] = self._interpolate_mag(sc.provisional(self.total, n), mag_t, mag)
        elif np.isnan(x[:, 6:9]).any():
            x[:, 6:9] = 0.0  # no magnetometer at all
        self.total += n
        self._last_data = ta
        self._pending.append(self.calibrate(x))
        # At a segment start, samples wait (briefly) for tight anchors that give the
        # rate, rather than leave with stamps a few ms off (the hint can be 3 % off).
        if not (sc.tight and sc.fitted) and ta - self._segment_t0 < HOLD_S:
            return None
        return self._emit()

    def _line_contradicted(self, tb: float, c: int, ta: float) -> bool:
        """The count read in [tb, ta] says sample total+c-1 existed by ta and sample
        total+c did not at tb; a line that disagrees by more than RELOCK_S is off (a
        count seen late only makes a sample look later, so this never misfires)."""
        sc = self.sample_clock
        k = self.total + c - 1
        return sc.expected(k) > ta + RELOCK_S or sc.expected(k + 1) < tb - RELOCK_S

    def flush(self) -> Block | None:
        """Samples read but held back for a tight anchor, stamped as well as known now."""
        if not self._pending or not self.sample_clock.locked:
            return None
        return self._emit()

    def _emit(self) -> Block:
        sc = self.sample_clock
        x = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        t = sc.times(self._emitted, len(x))
        self._emitted += len(x)
        new_segment = self._new_segment
        if new_segment and self._last_stamp is not None:
            gap = max(0, round((t[0] - self._last_stamp) * sc.rate_hz) - 1)
            more = max(0, gap - self._counted_ahead)
            self.lost += more
            if more:
                log.warning("samples lost", sensor=self.name, lost=more)
        self._counted_ahead = 0
        if new_segment:
            self.segments += 1
        self._new_segment = False
        self._last_stamp = float(t[-1])
        self.samples += len(x)
        return Block(t + self.clock.epoch_offset, x, new_segment)

    def _mag_reading(self) -> tuple[float, npt.NDArray[np.float64] | None]:
        if self.mag is None:
            return 0.0, None
        m = self.mag.read()
        # The output register was latched up to one magnetometer period before the read.
        return self.clock.now() - 0.5 / self.mag.odr_hz, m

    def _interpolate_mag(
        self, t: npt.NDArray[np.float64], mag_t: float, mag: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """The polled field between the previous reading and this one, at each sample time."""
        prev = self._mag_prev
        self._mag_prev = (mag_t, mag)
        if prev is None or mag_t <= prev[0]:
            return np.broadcast_to(mag, (len(t), 3))
        f = np.clip((t - prev[0]) / (mag_t - prev[0]), 0.0, 1.0)[:, None]
        out: npt.NDArray[np.float64] = prev[1] + f * (mag - prev[1])
        return out

    def _failed(self, e: OSError) -> None:
        now = self.clock.now()
        self.errors += 1
        if self.bus is None or not is_bus_error(e):
            self.other_failures += 1  # a wrong chip, a stall: not counted by the bus
        self._consecutive += 1
        self._last_error_at = now
        self.message = f"{errno_name(e)}: {e.strerror or e}" if e.errno else str(e)
        if isinstance(e, ChipIdError):
            self.chip_id_error = True
            self.ready = False
            self._next_attempt = now + BACKOFF_S[1]
            log.error("wrong chip", sensor=self.name, error=str(e))
            return
        if isinstance(e, StallError) or (self.ready and self._consecutive >= REINIT_AFTER):
            self.ready = False
        wait = min(BACKOFF_S[0] * 2 ** (self._consecutive - 1), BACKOFF_S[1])
        if isinstance(e, StallError):
            wait = 0.0
        self._next_attempt = now + wait
        log.warning(
            "sensor read failed",
            sensor=self.name,
            error=self.message,
            attempt=self._consecutive,
            retry_in_s=round(wait, 3),
            reinit=not self.ready,
        )

    def close(self) -> None:
        for dev in (self.imu, self.mag):
            if dev is not None:
                with contextlib.suppress(OSError):
                    dev.close()


__all__ = ["Block", "SensorReader", "StallError"]

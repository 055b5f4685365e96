"""Live acquisition: sensors read in a background thread into a ring buffer.

``open_acquisition(sensors, devices)`` builds the drivers (on real buses or on emulated
chips fed by the simulator) without touching the hardware; ``start(wake)`` starts the
thread, which every ``poll_ms`` drains each sensor's FIFO (``SensorReader``), aligns
several sensors onto the first one's time grid (``Aligner``), writes the rows into a
preallocated ``SampleRing`` and calls ``wake()``. A consumer that cuts windows may
call ``want(t_end, every_s, after)`` after each: the thread then reads the FIFOs when the
sample that completes the next window is due by the first sensor's fitted sample clock
(low latency, whatever the poll period) and skips the periodic reads in between while the
FIFOs have room (fewer wake-ups). The edge catches that keep that clock fitted (a short
spin on the FIFO count, about once a second) run after a read has been handed over, never
before it. The consumer calls ``read()`` (never blocks) for every new sample in order.
Bus trouble never ends the thread: it shows in ``status()`` as a state and counters.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import structlog

from fsqd.chunk import SampleChunk
from fsqd.clock import Clock, SystemClock
from fsqd.errors import ConfigError
from fsqd.imu.acquire.align import Aligner
from fsqd.imu.acquire.config import SensorConfig
from fsqd.imu.acquire.reader import Block, SensorReader
from fsqd.imu.acquire.ring import SampleRing
from fsqd.imu.bus import I2CBus, RetryingBus, open_bus
from fsqd.imu.driver import ImuSettings, get_spec, make_imu, make_mag
from fsqd.osthread import name_os_thread

log = structlog.get_logger(__name__)

CHANNELS = 9
RING_SECONDS = 30.0  # how far the consumer may fall behind before samples are overwritten
WANT_MARGIN_S = 0.5e-3  # read this long after the sample a window waits for is due
WANT_RETRY_S = 1e-3  # a wanted read that did not complete the window: again this much later
WANT_RETRIES = 4  # .. doubling each time, then the periodic reads take over


class SensorState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    LOST = "lost"


@dataclass(frozen=True)
class SensorStatus:
    """A snapshot of one sensor, safe to read from any thread."""

    name: str
    driver: str
    state: SensorState
    rate_hz: float  # measured
    samples: int
    lost: int  # samples the sensor produced that never reached the ring (overrun, gap)
    overruns: int  # ring overruns (slow consumer) + FIFO overruns (late reads)
    errors: int  # failed bus transfers
    reinits: int
    segments: int
    message: str = ""  # the last error, for humans


class Acquisition:
    """One or more sensors read in a background thread into a ring buffer."""

    def __init__(
        self,
        readers: Sequence[SensorReader],
        devices: int,
        *,
        clock: Clock,
        buses: Sequence[I2CBus] = (),
        ring_seconds: float = RING_SECONDS,
    ) -> None:
        if not readers:
            raise ConfigError("no [[sensor]] configured")
        self.readers = list(readers)
        self.devices = devices
        self.clock = clock
        self.buses = list(buses)
        self.nominal_rate_hz = self.readers[0].nominal_hz
        # The chips' own low-pass (the widest): a consumer may skip anti-alias filtering
        # below it (the live resampler's linear kernel).
        self.bandwidth_hz = max(r.imu.bandwidth_hz for r in self.readers)
        self.channels = devices * CHANNELS
        self.duplicate = len(self.readers) < devices
        self.poll_s = min(r.poll_s for r in self.readers)
        capacity = max(1024, int(ring_seconds * self.nominal_rate_hz * 1.1))
        self.ring = SampleRing(capacity, self.channels)
        self.aligner = Aligner(len(self.readers)) if len(self.readers) > 1 else None
        # _step_lock: one step at a time (bus I/O under it); _lock: only the short
        # hand-over (aligner, ring, counters), so status() never waits on the bus.
        self._step_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Window cadence from the consumer (want()): read just after the sample that
        # completes the next window, and (while hints come) skip the periodic reads in
        # between as long as the smallest FIFO keeps half its room.
        self._nudge = threading.Event()
        self._wanted_at = float("inf")  # monotonic time of the next wanted read
        self._sleeping_until = float("inf")  # monotonic time the thread wakes at by itself
        self._cadence: tuple[float, float, int] | None = None  # the last hint's window
        self._want_lock = threading.Lock()  # a hint and the thread's verdict on a read
        self._wanted_t = float("inf")  # stamp (UNIX) of the sample that read waits for
        self._delivered_t = -float("inf")  # newest stamp written to the ring (UNIX)
        self._retries = 0
        self._max_wait_s = max(
            self.poll_s, min(r.imu.fifo_capacity / r.imu.odr_hz for r in self.readers) / 2
        )
        self._thread: threading.Thread | None = None
        self._wake: Callable[[], None] = _nothing
        self._closed = False

    # -- the thread --

    def start(self, wake: Callable[[], None]) -> None:
        if self._thread is not None:
            raise RuntimeError("acquisition already started")
        self._wake = wake
        self._thread = threading.Thread(target=self._run, name="fsqd-acquire", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        name_os_thread("fsqd-acquire")
        log.info("acquisition started", sensors=[r.name for r in self.readers])
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a bug must not kill the thread silently: log and go on
                log.exception("acquisition step failed")
            done = self.clock.now()
            self._served(done)
            self._pause_until(done)
        log.info("acquisition stopped")

    def _pause_until(self, last: float) -> None:
        """Until the periodic read is due, or the read the consumer wants, if sooner;
        with hints coming, the periodic read waits up to half the smallest FIFO."""
        while not self._stop.is_set():
            self._nudge.clear()
            with self._want_lock:
                due = self.next_read_at(last)
                self._sleeping_until = due
            wait = due - self.clock.now()
            if wait <= 0:
                return
            if not isinstance(self.clock, SystemClock):
                self.clock.sleep(wait)
                return
            # Woken by a sooner hint, stop() or the time: look again (a hint that came
            # later than this wake-up did not wake the thread, and moves the read on).
            self._nudge.wait(wait)

    def next_read_at(self, last: float) -> float:
        """Monotonic time of the next read after one that ended at ``last``."""
        wanted = self._wanted_at
        return wanted if wanted < last + self._max_wait_s else last + self.poll_s

    def want(self, t_end: float, every_s: float, after: int = 1) -> None:
        """Consumer hint (from any thread): a window just ended on stream time ``t_end``
        (UNIX) and the next ends ``every_s`` later; it is complete once ``after`` samples
        stamped after that time have arrived (the resampler's look-ahead; 0: the sample
        stamped at that time itself, when there is no resampling).

        The next read is due when that sample is, by the first sensor's fitted sample
        clock (its stamps come from the same line), plus a margin for the line's error.
        Until the clock is locked, the periodic reads go on."""
        aim = self._aim(t_end + every_s, after)
        if aim is None:
            return
        with self._want_lock:
            self._cadence = (t_end, every_s, after)
            self._retries = 0
            self._wanted_t, self._wanted_at = aim
            # The thread already wakes by then (it aimed at this read itself, or at a
            # periodic one): it finds the hint when it wakes; only a sooner one wakes it.
            sooner = self._wanted_at < self._sleeping_until
        if sooner:
            self._nudge.set()

    def _aim(self, t_next: float, after: int) -> tuple[float, float] | None:
        """(stamp, monotonic read time) of the ``after``-th sample past stream time
        ``t_next``; None until the sample clock is locked."""
        sc = self.readers[0].sample_clock
        offset, period = sc.offset, sc.period
        if offset is None:
            return None
        steps = (t_next - self.clock.epoch_offset - offset) / period
        k = round(steps) if after == 0 else math.floor(steps + 1e-6) + after
        return offset + k * period + self.clock.epoch_offset, offset + k * period + WANT_MARGIN_S

    def _served(self, done: float) -> None:
        """After a wanted read: done if it brought the sample waited for; else the sample
        is a little late: again soon (a few times, backing off), then the periodic reads
        take over. Under the lock a hint that came meanwhile is never overwritten.

        Done, the thread aims at the next window's read itself (one window on from the
        last hint): the consumer's hint for it, a moment later, nearly always names the
        same time, so the thread sleeps once per window instead of waking at the periodic
        time to find the hint."""
        with self._want_lock:
            if self._wanted_at > done:  # not due yet, or a new hint came in the meantime
                return
            if self._delivered_t >= self._wanted_t - 0.5 / self.nominal_rate_hz:
                self._wanted_at = float("inf")
                if self._cadence is not None:
                    t_end, every_s, after = self._cadence
                    self._cadence = (t_end + every_s, every_s, after)
                    aim = self._aim(t_end + 2 * every_s, after)
                    if aim is not None:
                        self._wanted_t, self._wanted_at = aim
                return
            self._retries += 1
            self._wanted_at = (
                done + WANT_RETRY_S * 2 ** (self._retries - 1)
                if self._retries <= WANT_RETRIES
                else float("inf")
            )

    def maintain(self) -> None:
        """The edge catches that are due (sample-clock upkeep), after the reads they used
        to hold up by up to a sample period."""
        with self._step_lock:
            for r in self.readers:
                r.maintain()

    def step(self, *, final: bool = False) -> int:
        """One round over every sensor; returns the rows written to the ring.

        ``final``: no bus I/O, only hand over what the readers hold (at stop)."""
        with self._step_lock:
            # Bus I/O (which a hung bus can stretch to seconds) outside _lock.
            blocks = [r.flush() if final else r.poll(anchor=False) for r in self.readers]
            with self._lock:
                written = self._hand_over(blocks)
        if written:
            self._wake()
        if not final:
            self.maintain()
        return written

    def _hand_over(self, blocks: Sequence[Block | None]) -> int:
        """Aligns and writes what the readers gave; no bus I/O (runs under _lock)."""
        if self.aligner is None:
            runs = [(b.t, b.x, b.new_segment) for b in blocks if b is not None]
        else:
            for i, b in enumerate(blocks):
                if b is not None:
                    self.aligner.push(i, b.t, b.x, b.new_segment)
            runs = self.aligner.pop(self.clock.now() + self.clock.epoch_offset)
        written = 0
        for t, x, new_segment in runs:
            if self.duplicate:
                x = np.tile(x, (1, self.devices // (x.shape[1] // CHANNELS)))
            self.ring.write(t, x, new_segment)
            written += len(t)
            self._delivered_t = float(t[-1])
        return written

    # -- the consumer side --

    def read(self) -> list[SampleChunk]:
        """Every sample since the last read, oldest first; never blocks for long."""
        return self.ring.read()

    def status(self) -> list[SensorStatus]:
        with self._lock:
            ring_lost = self.ring.overrun_samples
            ring_overruns = self.ring.overruns
            aligned_away = self.aligner.dropped if self.aligner is not None else 0
            out = []
            for i, r in enumerate(self.readers):
                out.append(
                    SensorStatus(
                        name=r.name,
                        driver=r.imu.name,
                        state=SensorState(r.state()),
                        rate_hz=r.rate_hz,
                        samples=r.samples,
                        lost=r.lost + ring_lost + (aligned_away if i == 0 else 0),
                        overruns=r.overruns + ring_overruns,
                        errors=r.bus_errors,
                        reinits=r.reinits,
                        segments=r.segments,
                        message=r.message,
                    )
                )
            return out

    def stop(self) -> None:
        """Stop and join the thread, power the chips down, close the buses; idempotent."""
        self._stop.set()
        self._nudge.set()
        if self._thread is not None:
            self._thread.join()
        if self._closed:
            return
        self._closed = True
        self.step()  # what the FIFOs hold now
        self.step(final=True)  # and what the readers hold back: nothing vanishes at stop
        for r in self.readers:
            r.close()
        for bus in self.buses:
            bus.close()


def _nothing() -> None:
    pass


def _settings(s: SensorConfig) -> ImuSettings:
    return ImuSettings(s.rate_hz, s.accel_range_g, s.gyro_range_dps, s.mag_range_ut)


def _emulator(driver: str) -> type:
    spec = get_spec(driver)
    module, _, cls = spec.emulator.partition(":")
    if not module:
        raise ConfigError(f"driver {driver!r} has no emulated chip")
    found: type = getattr(importlib.import_module(module), cls)
    return found


def open_acquisition(
    sensors: Sequence[SensorConfig],
    devices: int,
    *,
    clock: Clock | None = None,
    emulated_bus: I2CBus | None = None,
) -> Acquisition:
    """Build the readers for ``sensors`` feeding a model with ``devices`` devices.

    No bus I/O happens here (chips are configured by the thread, with retries).
    ``bus = "emulated"`` sensors share one ``EmulatedBus`` with one emulated chip per
    address, all strapped to one simulated animal; ``emulated_bus`` overrides it (tests).
    """
    from fsqd.imu.emulated.bus import EmulatedBus
    from fsqd.imu.emulated.chip import Signal

    clock = clock or SystemClock()
    if not sensors:
        raise ConfigError("no [[sensor]] configured")
    if devices < 1:
        raise ConfigError(f"the model needs {devices} devices")
    if len(sensors) > devices:
        raise ConfigError(
            f"{len(sensors)} [[sensor]] tables, but the model takes {devices} devices"
        )
    if len(sensors) < devices:
        if sensors[0].fill != "duplicate" or len(sensors) != 1:
            raise ConfigError(
                f"the model takes {devices} devices but {len(sensors)} [[sensor]] is configured; "
                'add one per device, or set fill = "duplicate" on the first to copy it'
            )
        log.warning(
            "one sensor fills every device: its samples are duplicated",
            sensor=sensors[0].name,
            devices=devices,
        )
    buses: dict[int | str, I2CBus] = {}
    readers = []
    emulated = [s for s in sensors if s.is_emulated]
    for s in sensors:
        if s.bus not in buses:
            if s.is_emulated:
                opts = s.emulated
                buses[s.bus] = emulated_bus or EmulatedBus(
                    clock=clock, error_rate=opts.error_rate, seed=opts.seed
                )
            else:
                buses[s.bus] = open_bus(s.bus)
        shared = buses[s.bus]
        if s.is_emulated and emulated_bus is None:
            assert isinstance(shared, EmulatedBus)
            signal = Signal(
                seed=s.emulated.seed,
                devices=max(len(emulated), 1),
                device=emulated.index(s),
                behaviours=s.emulated.behaviours,
            )
            chip_cls = _emulator(s.driver)
            shared.add(
                chip_cls(
                    s.address,
                    clock=clock,
                    signal=signal,
                    oscillator_error=s.emulated.oscillator_error,
                    who_am_i=s.emulated.who_am_i,
                )
            )
            if s.mag_driver is not None and s.mag_address is not None:
                mag_cls = _emulator(s.mag_driver)
                shared.add(mag_cls(s.mag_address, clock=clock, signal=signal))
        bus = RetryingBus(shared)
        imu = make_imu(get_spec(s.driver, "imu"), bus, s.address, _settings(s))
        mag = (
            make_mag(get_spec(s.mag_driver, "mag"), bus, s.mag_address, _settings(s))
            if s.mag_driver is not None and s.mag_address is not None
            else None
        )
        readers.append(SensorReader(s, imu, mag, clock, bus))
    rates = {r.nominal_hz for r in readers}
    if len(rates) > 1:
        raise ConfigError(
            f"sensors run at different rates ({', '.join(f'{r:g}' for r in sorted(rates))} Hz): "
            "give them the same rate_hz"
        )
    return Acquisition(readers, devices, clock=clock, buses=list(buses.values()))


__all__ = ["Acquisition", "SensorState", "SensorStatus", "open_acquisition"]

"""Test doubles for fsqd setups, as ``structlog.testing`` is for structlog: public and stable.

Users test their own configurations with these (fsqd's own tests use them too):

- clocks: ``ManualClock`` (time moves only when told), ``PacedClock`` (a manual clock a
  free-running thread cannot race ahead with), ``JitteryClock`` (a loaded machine's late
  wake-ups and preemption, seeded);
- the emulated hardware: ``EmulatedBus`` (smbus2's calls, in memory, with fault injection)
  and register-level chips (``Lsm6dsoxChip``, ``Ism330dhcxChip``, ``Lis3mdlChip``,
  ``EmulatedIcm20948``, ``EmulatedMpu6500``, ``EmulatedMpu9250``), fed by the simulator
  through a ``Signal``; ``SELF_TEST_FAULTS`` for chips that fail their self-test;
- an emulated acquisition run step by step: ``sensors_from(toml)`` parses ``[[sensor]]``
  tables, ``rig(toml)`` opens them on a manual clock, ``Rig.run(seconds)`` steps the real
  acquisition code over the emulated chips and keeps what it read;
- ``SimulatedAcquisition``: the simulator in real time behind the acquisition's interface,
  for testing what comes after acquisition at the real pace.

Example: the first two seconds of an LSM6DSOX on the emulated bus::

    from fsqd.testing import one_sensor, rig

    r = rig(one_sensor(rate_hz=104))
    r.run(2.0)
    t, x = r.samples()  # timestamps (s) and (n, 9) samples in SI units
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.clock import Clock, ManualClock
from fsqd.daemon.clock import sample_time
from fsqd.imu.acquire.acquisition import (
    Acquisition,
    SensorState,
    SensorStatus,
    open_acquisition,
)
from fsqd.imu.acquire.config import SensorConfig, parse_sensors
from fsqd.imu.emulated.bus import EmulatedBus
from fsqd.imu.emulated.chip import SELF_TEST_FAULTS, EmulatedChip, Signal
from fsqd.imu.emulated.icm20948 import EmulatedIcm20948
from fsqd.imu.emulated.lis3mdl import Lis3mdlChip
from fsqd.imu.emulated.lsm6dsox import Ism330dhcxChip, Lsm6dsoxChip
from fsqd.imu.emulated.mpu9250 import EmulatedMpu6500, EmulatedMpu9250
from fsqd.sim.simulator import SimConfig, Simulator
from fsqd.tomlcheck import Table


def sensors_from(text: str) -> tuple[SensorConfig, ...]:
    """The ``[[sensor]]`` tables of a TOML text, parsed and checked as ``fsqd run`` does."""
    return parse_sensors(Table(tomllib.loads(text), "test.toml").tables("sensor"))


def one_sensor(rate_hz: float = 104, **emulated: float) -> str:
    """A ``[[sensor]]`` table: an emulated LSM6DSOX at 0x6a, ``emulated`` its chip options."""
    extra = "".join(f"{k} = {v}\n" for k, v in emulated.items())
    return (
        '[[sensor]]\nname = "collar"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
        f"address = 0x6a\nrate_hz = {rate_hz}\n[sensor.emulated]\n{extra}"
    )


class JitteryClock(ManualClock):
    """A manual clock on a loaded machine: sleeps overshoot (the thread is woken late,
    now and then by tens of ms) and a busy wait loses the CPU for up to a few ms about
    every ``preempt_every_s`` of spinning. Seeded: the same schedule every run."""

    def __init__(
        self,
        seed: int = 0,
        *,
        late_s: float = 0.04,
        preempt_s: float = 5e-3,
        preempt_every_s: float = 0.02,
    ) -> None:
        super().__init__()
        self.rng = np.random.default_rng([seed, 11])
        self.late_s = late_s
        self.preempt_s = preempt_s
        self.preempt_p = self.resolution / preempt_every_s

    def sleep(self, seconds: float) -> None:
        late = self.rng.exponential(1e-3)
        if self.rng.random() < 0.05:
            late += self.rng.uniform(0.005, self.late_s)
        self.advance(seconds + late)

    def tick(self) -> None:
        preempted = self.rng.random() < self.preempt_p
        self.advance(self.resolution + (self.rng.uniform(2e-4, self.preempt_s) if preempted else 0))


class PacedClock(ManualClock):
    """A manual clock that a free-running thread cannot race ahead with: each sleep
    also takes 1/speed of the time in real time. The acquisition thread of a command
    (``record``) on a bare manual clock runs seconds of time per real millisecond, and
    on a loaded machine outruns its consumer (the ring overruns, status lines are
    skipped); paced, the consumer keeps up whatever the load."""

    def __init__(self, speed: float = 20.0) -> None:
        super().__init__()
        self.speed = speed

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        if seconds > 0:
            time.sleep(seconds / self.speed)


@dataclass
class Rig:
    """An acquisition over emulated chips on a manual clock, and the chunks it read."""

    acq: Acquisition
    clock: Clock
    bus: EmulatedBus
    chunks: list[SampleChunk]

    @property
    def imu(self) -> EmulatedChip:
        return self.bus.chips[0x6A]

    def run(self, seconds: float, *, read: bool = True) -> None:
        """Acquisition steps every poll period for ``seconds`` of manual time."""
        assert isinstance(self.clock, ManualClock)
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.acq.step()
            if read:
                self.chunks += self.acq.read()
            self.clock.sleep(self.acq.poll_s)

    def samples(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        if not self.chunks:
            return np.zeros(0), np.zeros((0, self.acq.channels), np.float32)
        return (
            np.concatenate([c.t for c in self.chunks]),
            np.concatenate([c.x for c in self.chunks]),
        )


def rig(
    text: str, devices: int = 1, *, keep_truth: bool = True, clock: ManualClock | None = None
) -> Rig:
    """Open the ``[[sensor]]`` tables of ``text`` (emulated buses) on a manual clock;
    ``keep_truth`` keeps every chip's true signal for comparison (``chip.truth()``)."""
    clock = clock or ManualClock()
    acq = open_acquisition(sensors_from(text), devices, clock=clock)
    bus = acq.buses[0]
    assert isinstance(bus, EmulatedBus)
    for chip in bus.chips.values():
        chip.keep_truth = keep_truth
    return Rig(acq, clock, bus, [])


class SimulatedAcquisition:
    """The simulator in real time, with the acquisition's interface (no chips, no bus).

    A thread makes samples at ``rate_hz`` stamped on the stream timeline in chunks of
    ``chunk`` samples, as FIFO bursts come, and wakes the daemon: a sensor source for
    testing what sits after acquisition (the daemon, sinks, signals) at the real pace.
    """

    def __init__(self, rate_hz: float = 100.0, devices: int = 1, chunk: int = 2) -> None:
        self.nominal_rate_hz = rate_hz
        self.channels = 9 * devices
        self.chunk = chunk
        self.sim = Simulator(SimConfig(rate_hz=rate_hz, devices=devices, seed=1))
        self._lock = threading.Lock()
        self._out: list[SampleChunk] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.first = True
        self._block = np.zeros((0, self.channels), np.float32)

    def start(self, wake: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=self._run, args=(wake,), daemon=True)
        self._thread.start()

    def _run(self, wake: Callable[[], None]) -> None:
        t0 = time.monotonic()
        k = 0
        period = 1.0 / self.nominal_rate_hz
        while not self._stop.is_set():
            due = t0 + (k + self.chunk - 1) * period
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            x = self._next(self.chunk)
            t = np.array([sample_time(t0 + (k + i) * period) for i in range(self.chunk)])
            with self._lock:
                self._out.append(SampleChunk(t, x, new_segment=self.first))
                self.first = False
                self.samples += self.chunk
            k += self.chunk
            wake()

    def _next(self, n: int) -> npt.NDArray[np.float32]:
        # The simulator makes samples in blocks (its noise is drawn per 4096 samples):
        # a sensor thread that costs little, like a FIFO read.
        while len(self._block) < n:
            self._block = np.concatenate([self._block, self.sim.read(1000).x])
        x, self._block = self._block[:n], self._block[n:]
        return x

    def read(self) -> list[SampleChunk]:
        with self._lock:
            out, self._out = self._out, []
        return out

    def status(self) -> list[SensorStatus]:
        return [
            SensorStatus(
                name="sim",
                driver="simulator",
                state=SensorState.OK,
                rate_hz=self.nominal_rate_hz,
                samples=self.samples,
                lost=0,
                overruns=0,
                errors=0,
                reinits=0,
                segments=1,
            )
        ]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


__all__ = [
    "SELF_TEST_FAULTS",
    "EmulatedBus",
    "EmulatedChip",
    "EmulatedIcm20948",
    "EmulatedMpu6500",
    "EmulatedMpu9250",
    "Ism330dhcxChip",
    "JitteryClock",
    "Lis3mdlChip",
    "Lsm6dsoxChip",
    "ManualClock",
    "PacedClock",
    "Rig",
    "Signal",
    "SimulatedAcquisition",
    "one_sensor",
    "rig",
    "sensors_from",
]

"""Helpers for the sensor tests: emulated sensors on a manual clock, run step by step."""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.config.tomlcheck import Table
from fsqd.sensors.acquire import Acquisition, open_acquisition
from fsqd.sensors.clock import Clock, ManualClock
from fsqd.sensors.config import SensorConfig, parse_sensors
from fsqd.sensors.emulated import EmulatedBus, EmulatedChip
from fsqd.stream.chunk import SampleChunk


def sensors_from(text: str) -> tuple[SensorConfig, ...]:
    return parse_sensors(Table(tomllib.loads(text), "test.toml").tables("sensor"))


def one_sensor(rate_hz: float = 104, **emulated: float) -> str:
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
    clock = clock or ManualClock()
    acq = open_acquisition(sensors_from(text), devices, clock=clock)
    bus = acq.buses[0]
    assert isinstance(bus, EmulatedBus)
    for chip in bus.chips.values():
        chip.keep_truth = keep_truth
    return Rig(acq, clock, bus, [])

"""Helpers for the InvenSense tests: a bus that can be told to fail one kind of transfer,
and the full acquisition path on an emulated chip checked against the simulator's truth."""

from __future__ import annotations

import errno
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from smbus2 import i2c_msg

from fsqd.config.tomlcheck import Table
from fsqd.sensors.acquire import Acquisition, SensorStatus, open_acquisition
from fsqd.sensors.clock import ManualClock
from fsqd.sensors.config import parse_sensors
from fsqd.sensors.emulated import EmulatedBus, EmulatedChip

F64 = npt.NDArray[np.float64]


class SpyBus(EmulatedBus):
    """An EmulatedBus that records i2c_rdwr reads and fails the transfers a rule picks."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.rdwr_reads: list[int] = []  # length of every i2c_rdwr read message
        self.block_reads: list[tuple[int, int]] = []  # (register, length)
        self.fail: Callable[[str, int], int | None] = lambda kind, reg: None

    def _maybe_fail(self, kind: str, reg: int) -> None:
        code = self.fail(kind, reg)
        if code is not None:
            raise OSError(code, os.strerror(code))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        self._maybe_fail("byte", register)
        return super().read_byte_data(i2c_addr, register, force)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        self._maybe_fail("block", register)
        self.block_reads.append((register, length))
        return super().read_i2c_block_data(i2c_addr, register, length, force)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        reg = bytes(i2c_msgs[0])[0] if i2c_msgs and not i2c_msgs[0].flags & 1 else -1
        self._maybe_fail("rdwr", reg)
        self.rdwr_reads += [m.len for m in i2c_msgs if m.flags & 1]
        super().i2c_rdwr(*i2c_msgs)


def fail_once(kind: str, reg: int, code: int = errno.EIO) -> Callable[[str, int], int | None]:
    """A rule failing the next transfer of ``kind`` to ``reg`` (-1: any), then none."""
    armed = [True]

    def rule(k: str, r: int) -> int | None:
        if armed[0] and k == kind and reg in (-1, r):
            armed[0] = False
            return code
        return None

    return rule


@dataclass
class Run:
    acq: Acquisition
    clock: ManualClock
    bus: EmulatedBus
    chip: EmulatedChip
    t: list[F64] = field(default_factory=list)
    x: list[npt.NDArray[np.float32]] = field(default_factory=list)
    seg: list[npt.NDArray[np.int64]] = field(default_factory=list)  # segment of each row
    segments: int = 0

    def step(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.acq.step()
            for chunk in self.acq.read():
                self.segments += chunk.new_segment
                self.t.append(chunk.t)
                self.x.append(chunk.x)
                self.seg.append(np.full(len(chunk), self.segments))
            self.clock.sleep(self.acq.poll_s)

    def samples(self) -> tuple[F64, npt.NDArray[np.float32]]:
        return np.concatenate(self.t), np.concatenate(self.x)

    def status(self) -> SensorStatus:
        return self.acq.status()[0]


def acquisition(
    driver: str,
    address: int,
    rate_hz: float,
    *,
    poll_ms: float | None = 20,
    clock: ManualClock | None = None,
    **emulated: object,
) -> Run:
    """One emulated sensor through ``open_acquisition``; ``poll_ms=None``: the default."""
    extra = "".join(f"{k} = {v}\n" for k, v in emulated.items())
    poll = "" if poll_ms is None else f"poll_ms = {poll_ms}\n"
    text = (
        f'[[sensor]]\nname = "collar"\ndriver = "{driver}"\nbus = "emulated"\n'
        f"address = 0x{address:02x}\nrate_hz = {rate_hz}\naccel_range_g = 16\n"
        f"gyro_range_dps = 2000\n{poll}[sensor.emulated]\n{extra}"
    )
    sensors = parse_sensors(Table(tomllib.loads(text), "test.toml").tables("sensor"))
    clock = clock or ManualClock()
    acq = open_acquisition(sensors, 1, clock=clock)
    bus = acq.buses[0]
    assert isinstance(bus, EmulatedBus)
    chip = bus.chips[address]
    chip.keep_truth = True
    return Run(acq, clock, bus, chip)


def truth_run(
    t: F64, x: npt.NDArray[np.float32], chip: EmulatedChip, *, lsb: float
) -> tuple[F64, F64]:
    """The run of consecutive truth samples that delivered rows ``x`` are, by value.

    The first row is found among the truth samples near its time by its accel and gyro
    values; the rest must follow one for one (no sample lost, none repeated), which the
    caller checks by comparing values. Returns (time errors, truth rows).
    """
    tt, tx = chip.truth()
    near = int(np.argmin(np.abs(tt - t[0])))
    candidates = range(max(0, near - 5), min(len(tt), near + 6))
    first = min(candidates, key=lambda i: float(np.abs(tx[i, :6] - x[0, :6]).max()))
    assert np.abs(tx[first, :3] - x[0, :3]).max() <= lsb, "first sample not in the truth"
    end = first + len(t)
    assert end <= len(tt), "more samples delivered than the chip produced"
    return t - tt[first:end], tx[first:end]


__all__ = ["Run", "SpyBus", "acquisition", "fail_once", "truth_run"]

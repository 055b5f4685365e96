"""Independent drivers on our emulated InvenSense chips, read against our own drivers.

Adafruit's CircuitPython ``adafruit_icm20x`` and ``adafruit_mpu6050`` go through
``busio_shim.EmulatedBusIO``; Pimoroni's ``icm20948`` and ``mpu9250-jmdev`` talk smbus2 to
an ``EmulatedBus`` (jmdev opens its own ``SMBus``: its constructor is pointed at ours).
Their sleeps run on the test's manual clock.

Two identical chips see the same simulated motion (same seed and rate, so sample k has the
same value on both): the other driver configures and reads one through the output
registers, ours configures the other and drains its FIFO. For every sample the other
driver read, both must agree on every full-scale range, axis and unit within one LSB
(jmdev scales the gyro by full scale / 32768 instead of the datasheet's sensitivity, a
0.05-0.1 % difference the tolerance adds). The magnetometers measure at their own
instants, so they are compared on a still animal in a noise-free field, allowing one LSB
and 0.1 uT of drift between the two measurements.
"""

from __future__ import annotations

import importlib
import math
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from busio_shim import EmulatedBusIO, install_micropython_shim

from fsqd.clock import ManualClock
from fsqd.imu.driver import ImuSettings
from fsqd.imu.drivers.icm20948 import Icm20948
from fsqd.imu.drivers.mpu6500 import Mpu6500
from fsqd.imu.drivers.mpu9250 import Mpu9250
from fsqd.imu.emulated import EmulatedBus, Signal
from fsqd.imu.emulated.chip import EmulatedChip
from fsqd.imu.emulated.icm20948 import EmulatedIcm20948
from fsqd.imu.emulated.invensense import BypassPort
from fsqd.imu.emulated.mpu9250 import EmulatedMpu6500, EmulatedMpu9250
from fsqd.sim import simulator as sim

G = 9.80665
RANGES = [(2, 250), (4, 500), (8, 1000), (16, 2000)]
GYRO_LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}
MOVING = Signal(seed=4, behaviours=("walk", "trot", "shake", "turn"))
STILL = Signal(seed=4, behaviours=("rest",))
DRIFT_UT = 0.1
# The AKM dies' axes in the accel/gyro frame, written out here, not taken from the drivers:
# AK09916 in the ICM-20948 (x, -y, -z), InvenSense's compass mounting matrix; AK8963 in the
# MPU-9250 (y, x, -z), Linux inv_mpu_magn_set_orient.
ICM_AK_TO_CHIP = np.diag([1.0, -1.0, -1.0])
MPU_AK_TO_CHIP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

F64 = npt.NDArray[np.float64]


def need(module: str) -> Any:
    """The module, or a skip that says why it cannot be imported."""
    install_micropython_shim()
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - only without the test extra
        pytest.skip(f"{module} cannot be imported: {e}")


def on_clock(clock: ManualClock) -> types.SimpleNamespace:
    """A stand-in for the ``time`` module that sleeps on the manual clock."""
    return types.SimpleNamespace(sleep=clock.sleep, time=clock.now, monotonic=clock.now)


@dataclass
class Ours:
    """Our driver on its own emulated chip, rows kept by the chip's sample index."""

    chip: Any
    drv: Any
    rows: dict[int, npt.NDArray[np.float32]] = field(default_factory=dict)

    @staticmethod
    def start(chip: EmulatedChip, drv_cls: type, settings: ImuSettings) -> Ours:
        drv = drv_cls(EmulatedBus([chip], clock=chip.clock), chip.address, settings)
        drv.init()
        return Ours(chip, drv)

    def drain(self) -> None:
        read = self.drv.read_fifo()
        assert not read.overflow
        n = len(read.samples)
        # the newest row is the sample before what the FIFO still holds
        last = self.chip.produced - 1 - len(self.chip.fifo) // self.drv.decoder.frame
        for i in range(n):
            self.rows[last - n + 1 + i] = read.samples[i]


def compare(
    readings: list[tuple[int, F64]],
    ours: Ours,
    tol: F64,
    columns: slice,
) -> int:
    """Every reading (sample index, values in our units and axes) against our row for that
    sample; returns how many were compared."""
    compared = 0
    for k, theirs in readings:
        row = ours.rows.get(k)
        if row is None:
            continue
        err = np.abs(row[columns] - theirs)
        assert np.all(err <= tol), f"sample {k}: ours {row[columns]} theirs {theirs}"
        compared += 1
    return compared


def sample_reads(
    clock: ManualClock,
    chip: EmulatedChip,
    ours: Ours,
    read: Any,
    n: int = 150,
    *,
    one_sample: bool = True,
) -> list[tuple[int, F64]]:
    """``n`` readings by the other driver with our FIFO drained after each, each of the
    sample current when it started; ``one_sample``: skipped if a sample fell between its
    transfers (a magnetometer read that waits for a measurement spans several)."""
    out = []
    for _ in range(n):
        clock.advance(0.0237)  # not a multiple of the sample period
        chip.advance()
        k = chip.produced
        values = read()
        if chip.produced == k or not one_sample:
            out.append((k - 1, np.asarray(values, float)))
        ours.drain()
    return out


def tolerances(g: float, dps: float, gyro_scale_error: float = 0.0) -> F64:
    acc = G * g / 32768
    gyr = math.radians(1 / GYRO_LSB_PER_DPS[int(dps)]) + math.radians(dps) * gyro_scale_error
    return np.array([acc] * 3 + [gyr] * 3) * 1.01


def quiet_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sim.NOISE, "mag", 0.0)


# -- ICM-20948 --


@pytest.mark.parametrize(("g", "dps"), RANGES)
def test_adafruit_icm20x_reads_what_ours_reads(
    monkeypatch: pytest.MonkeyPatch, g: int, dps: int
) -> None:
    icm = need("adafruit_icm20x")
    clock = ManualClock()
    monkeypatch.setattr(icm, "sleep", clock.sleep)
    chip = EmulatedIcm20948(0x69, clock=clock, signal=MOVING)
    dev = icm.ICM20948(EmulatedBusIO(EmulatedBus([chip], clock=clock)), 0x69)
    dev.accelerometer_range = getattr(icm.AccelRange, f"RANGE_{g}G")
    dev.gyro_range = getattr(icm.GyroRange, f"RANGE_{dps}_DPS")
    assert chip.sampling_rate_hz == pytest.approx(1125 / 11)  # its divisor 10, as ours
    ours = Ours.start(
        EmulatedIcm20948(0x69, clock=clock, signal=MOVING), Icm20948, ImuSettings(100, g, dps)
    )
    reads = sample_reads(clock, chip, ours, lambda: (*dev.acceleration, *dev.gyro))
    assert compare(reads, ours, tolerances(g, dps), slice(0, 6)) >= 60


def test_adafruit_icm20x_finds_and_reads_the_ak09916(monkeypatch: pytest.MonkeyPatch) -> None:
    icm = need("adafruit_icm20x")
    quiet_field(monkeypatch)
    clock = ManualClock()
    monkeypatch.setattr(icm, "sleep", clock.sleep)
    chip = EmulatedIcm20948(0x69, clock=clock, signal=STILL)
    dev = icm.ICM20948(EmulatedBusIO(EmulatedBus([chip], clock=clock)), 0x69)
    assert chip.ak.mode == 0x08  # continuous 100 Hz, as it asked
    ours = Ours.start(EmulatedIcm20948(0x69, clock=clock, signal=STILL), Icm20948, ImuSettings())
    reads = sample_reads(clock, chip, ours, lambda: ICM_AK_TO_CHIP @ np.array(dev.magnetic))
    assert compare(reads, ours, np.full(3, 0.15 + DRIFT_UT), slice(6, 9)) >= 60


@pytest.mark.parametrize(("g", "dps"), RANGES)
def test_pimoroni_icm20948_reads_what_ours_reads(
    monkeypatch: pytest.MonkeyPatch, g: int, dps: int
) -> None:
    pim = need("icm20948")
    clock = ManualClock()
    monkeypatch.setattr(pim, "time", on_clock(clock))
    chip = EmulatedIcm20948(0x69, clock=clock, signal=MOVING)
    dev = pim.ICM20948(i2c_addr=0x69, i2c_bus=EmulatedBus([chip], clock=clock))
    dev.set_accelerometer_full_scale(g)
    dev.set_gyro_full_scale(dps)
    ours = Ours.start(
        EmulatedIcm20948(0x69, clock=clock, signal=MOVING), Icm20948, ImuSettings(100, g, dps)
    )

    def read() -> F64:
        v = np.array(dev.read_accelerometer_gyro_data())
        return np.concatenate([v[:3] * G, np.radians(v[3:])])  # g, dps -> ours

    reads = sample_reads(clock, chip, ours, read)
    assert compare(reads, ours, tolerances(g, dps), slice(0, 6)) >= 60


def test_pimoroni_icm20948_finds_the_ak09916_and_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pimoroni's driver gives the aux master 5 ms per transfer and never sets LP_CONFIG:
    the master runs duty-cycled on its own 1125 Hz clock (the reset value), not once per
    102 Hz gyro sample, so it finds the AK09916 as it does on a real board."""
    pim = need("icm20948")
    quiet_field(monkeypatch)
    clock = ManualClock()
    monkeypatch.setattr(pim, "time", on_clock(clock))
    chip = EmulatedIcm20948(0x69, clock=clock, signal=STILL)
    dev = pim.ICM20948(i2c_addr=0x69, i2c_bus=EmulatedBus([chip], clock=clock))
    assert (0x32, 0x01) in chip.ak.writes  # it found the AK09916 and soft-reset it
    ours = Ours.start(EmulatedIcm20948(0x69, clock=clock, signal=STILL), Icm20948, ImuSettings())
    reads = sample_reads(
        clock,
        chip,
        ours,
        lambda: ICM_AK_TO_CHIP @ np.array(dev.read_magnetometer_data()),
        one_sample=False,
    )
    assert compare(reads, ours, np.full(3, 0.15 + DRIFT_UT), slice(6, 9)) >= 60
    temp = dev.read_temperature()  # (raw - 21) / 333.87 + 21: its own 21-LSB offset
    assert temp == pytest.approx(25.0, abs=0.1)


# -- MPU-9250 / MPU-6500 --


@pytest.mark.parametrize(("g", "dps"), RANGES)
def test_adafruit_mpu6050_reads_what_ours_reads(
    monkeypatch: pytest.MonkeyPatch, g: int, dps: int
) -> None:
    """Adafruit's MPU6050 driver checks WHO_AM_I 0x68: the emulated MPU-6500 answers that
    for it (the registers it uses are the MPU-6050's)."""
    mpu = need("adafruit_mpu6050")
    clock = ManualClock()
    monkeypatch.setattr(mpu, "sleep", clock.sleep)
    chip = EmulatedMpu6500(0x68, clock=clock, signal=MOVING, who_am_i=0x68)
    dev = mpu.MPU6050(EmulatedBusIO(EmulatedBus([chip], clock=clock)), 0x68)
    dev.accelerometer_range = {2: 0, 4: 1, 8: 2, 16: 3}[g]
    dev.gyro_range = {250: 0, 500: 1, 1000: 2, 2000: 3}[dps]
    dev.filter_bandwidth = mpu.Bandwidth.BAND_184_HZ  # DLPF on: 1 kHz base, as ours
    dev.sample_rate_divisor = 9  # 100 Hz, as ours
    assert chip.sampling_rate_hz == pytest.approx(100.0)
    ours = Ours.start(
        EmulatedMpu6500(0x68, clock=clock, signal=MOVING), Mpu6500, ImuSettings(100, g, dps)
    )
    reads = sample_reads(clock, chip, ours, lambda: (*dev.acceleration, *dev.gyro))
    assert compare(reads, ours, tolerances(g, dps), slice(0, 6)) >= 60


def jmdev(
    monkeypatch: pytest.MonkeyPatch, clock: ManualClock, chip: EmulatedMpu9250, g: int, dps: int
) -> Any:
    """mpu9250-jmdev on ``chip``, the AK8963 through bypass, at our 100 Hz."""
    jm = need("mpu9250_jmdev.mpu_9250")
    regs = need("mpu9250_jmdev.registers")
    bus = EmulatedBus([chip], clock=clock)
    bus.add(BypassPort([chip], clock=clock))  # type: ignore[list-item]
    monkeypatch.setattr(jm, "smbus", types.SimpleNamespace(SMBus=lambda _: bus))
    monkeypatch.setattr(jm, "time", on_clock(clock))
    codes = {2: 0, 4: 1, 8: 2, 16: 3}, {250: 0, 500: 1, 1000: 2, 2000: 3}
    dev = jm.MPU9250(
        address_ak=0x0C,
        address_mpu_master=0x68,
        bus=1,
        gfs=codes[1][dps],
        afs=codes[0][g],
        mfs=regs.AK8963_BIT_16,
        mode=regs.AK8963_MODE_C100HZ,
    )
    dev.configure()
    # jmdev runs the MPU at 8 kHz with the DLPF off; its own writes bring it to ours
    dev.writeMaster(regs.CONFIG, 0x01)
    dev.writeMaster(regs.SMPLRT_DIV, 9)
    assert chip.sampling_rate_hz == pytest.approx(100.0)
    return dev


@pytest.mark.parametrize(("g", "dps"), RANGES)
def test_mpu9250_jmdev_reads_what_ours_reads(
    monkeypatch: pytest.MonkeyPatch, g: int, dps: int
) -> None:
    clock = ManualClock()
    chip = EmulatedMpu9250(0x68, clock=clock, signal=MOVING)
    dev = jmdev(monkeypatch, clock, chip, g, dps)
    ours = Ours.start(
        EmulatedMpu9250(0x68, clock=clock, signal=MOVING), Mpu9250, ImuSettings(100, g, dps)
    )

    def read() -> F64:
        a = np.array(dev.readAccelerometerMaster()) * G
        w = np.radians(np.array(dev.readGyroscopeMaster()))
        return np.concatenate([a, w])

    scale_error = abs((dps / 32768) * GYRO_LSB_PER_DPS[dps] - 1)  # its full scale / 32768
    reads = sample_reads(clock, chip, ours, read)
    assert compare(reads, ours, tolerances(g, dps, scale_error), slice(0, 6)) >= 60


def test_mpu9250_jmdev_reads_the_ak8963_as_ours_does(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_field(monkeypatch)
    clock = ManualClock()
    asa = (0x90, 0xC4, 0x70)
    chip = EmulatedMpu9250(0x68, clock=clock, signal=STILL, asa=asa)
    dev = jmdev(monkeypatch, clock, chip, 16, 2000)
    ours = Ours.start(
        EmulatedMpu9250(0x68, clock=clock, signal=STILL, asa=asa), Mpu9250, ImuSettings()
    )
    reads = sample_reads(
        clock, chip, ours, lambda: MPU_AK_TO_CHIP @ np.array(dev.readMagnetometerMaster())
    )
    lsb = 0.15 * (max(asa) + 128) / 256
    assert compare(reads, ours, np.full(3, lsb + DRIFT_UT), slice(6, 9)) >= 60
    assert dev.readTemperatureMaster() == pytest.approx(25.0, abs=0.01)

"""Adafruit's CircuitPython drivers (an independent reading of the ST datasheets) on our
emulated chips, through ``busio_shim``: their initialisation must work as on silicon, and
their readings must equal our drivers' for the same simulated motion, at every full
scale, on every axis, in the same units.

Two chips wear the same simulated animal (same seed and device): Adafruit's driver reads
one through the output registers, ours drains the other's FIFO. Both chips' sample
clocks are restarted at one instant after each configuration, so sample k is the same
motion on both; each comparison reads mid-period, when both hold sample k.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from busio_shim import EmulatedBusIO, install_micropython_shim

from fsqd.clock import ManualClock
from fsqd.imu.driver import ImuSettings
from fsqd.imu.drivers import lis3mdl as mreg
from fsqd.imu.drivers import lsm6dsox as reg
from fsqd.imu.drivers.lis3mdl import Lis3mdl
from fsqd.imu.drivers.lsm6dsox import Ism330dhcx, Lsm6dsox
from fsqd.imu.emulated import EmulatedBus, Signal
from fsqd.imu.emulated.lis3mdl import Lis3mdlChip
from fsqd.imu.emulated.lsm6dsox import ST_XL_G, Ism330dhcxChip, Lsm6dsoxChip
from fsqd.units import G

install_micropython_shim()
try:
    import adafruit_lis3mdl
    import adafruit_lsm6ds
    import adafruit_lsm6ds.ism330dhcx
    from adafruit_lsm6ds import AccelRange, GyroRange
    from adafruit_lsm6ds.ism330dhcx import ISM330DHCX
    from adafruit_lsm6ds.lsm6dsox import LSM6DSOX
except ImportError as e:  # the `test` extra installs them
    pytest.skip(f"Adafruit CircuitPython drivers not importable: {e}", allow_module_level=True)

MOTIONS = [("rest",), ("shake", "turn")]
ODR_104 = reg.internal_rate_hz(4)
READ_AT = (10, 37, 80)  # sample indices compared, after each (re)configuration


def on_manual_clock(monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> None:
    """Adafruit's settle delays (time.sleep) pass on the chips' clock, as they would."""
    modules: tuple[ModuleType, ...] = (adafruit_lsm6ds, adafruit_lsm6ds.ism330dhcx)
    for module in (*modules, adafruit_lis3mdl):
        monkeypatch.setattr(module, "sleep", clock.sleep)


def in_step(clock: ManualClock, *chips: Lsm6dsoxChip | Lis3mdlChip) -> Callable[[int], None]:
    """Restart the chips' sample clocks together; returns 'go to the middle of the
    period in which sample k is the newest'."""
    rate = chips[0].sampling_rate_hz
    for chip in chips:
        chip.start_sampling(rate)
    t0 = clock.now()

    def to_sample(k: int) -> None:
        clock.advance(t0 + (k + 1.5) / rate - clock.now())

    return to_sample


IMU_CASES = [
    (Lsm6dsoxChip, LSM6DSOX, Lsm6dsox, [(2, 125), (4, 250), (8, 500), (16, 1000), (4, 2000)]),
    (Ism330dhcxChip, ISM330DHCX, Ism330dhcx, [(2, 125), (8, 500), (16, 2000), (4, 4000)]),
]


@pytest.mark.parametrize("motion", MOTIONS, ids=["rest", "moving"])
@pytest.mark.parametrize(("chip_cls", "theirs_cls", "ours_cls", "ranges"), IMU_CASES)
def test_adafruit_lsm6ds_reads_what_our_driver_reads(
    monkeypatch: pytest.MonkeyPatch,
    chip_cls: type[Lsm6dsoxChip],
    theirs_cls: type[LSM6DSOX],
    ours_cls: type[Lsm6dsox],
    ranges: list[tuple[int, int]],
    motion: tuple[str, ...],
) -> None:
    clock = ManualClock()
    signal = Signal(seed=11, behaviours=motion)
    theirs = chip_cls(0x6A, clock=clock, signal=signal)
    ours = chip_cls(0x6B, clock=clock, signal=signal)
    bus = EmulatedBus([theirs, ours], clock=clock)
    on_manual_clock(monkeypatch, clock)
    sox = theirs_cls(EmulatedBusIO(bus), 0x6A)
    accel_ranges = {2: AccelRange.RANGE_2G, 4: AccelRange.RANGE_4G}
    accel_ranges |= {8: AccelRange.RANGE_8G, 16: AccelRange.RANGE_16G}
    gyro_ranges = {dps: getattr(GyroRange, f"RANGE_{dps}_DPS") for _, dps in ranges}
    gyro_max = 0.0
    for g, dps in ranges:
        sox.accelerometer_range = accel_ranges[g]
        sox.gyro_range = gyro_ranges[dps]
        drv = ours_cls(bus, 0x6B, ImuSettings(rate_hz=104, accel_range_g=g, gyro_range_dps=dps))
        drv.init()
        assert (drv.accel_g, drv.gyro_dps, theirs.gyro_lsb()) == (g, dps, ours.gyro_lsb())
        accel_step, gyro_step = drv.accel_lsb, drv.gyro_lsb  # one code, in SI units
        to_sample = in_step(clock, theirs, ours)
        for k in READ_AT:
            to_sample(k)
            a, w = np.array(sox.acceleration), np.array(sox.gyro)
            mine = drv.read_fifo(drv.fifo_count()).samples[-1].astype(np.float64)
            np.testing.assert_allclose(a, mine[0:3], rtol=0, atol=accel_step * 1.001)
            np.testing.assert_allclose(w, mine[3:6], rtol=0, atol=gyro_step * 1.001)
            gyro_max = max(gyro_max, float(np.abs(w).max()))
        assert theirs.produced == ours.produced == READ_AT[-1] + 1
    if motion == ("rest",):
        assert np.linalg.norm(a) == pytest.approx(G, abs=0.3) and gyro_max < 0.1
    else:
        assert gyro_max > 0.5  # the comparison saw real rotation


@pytest.mark.parametrize(("chip_cls", "theirs_cls"), [(Lsm6dsoxChip, LSM6DSOX)])
def test_adafruit_lsm6ds_initialises_the_emulated_chip_as_silicon(
    monkeypatch: pytest.MonkeyPatch, chip_cls: type[Lsm6dsoxChip], theirs_cls: type[LSM6DSOX]
) -> None:
    """WHO_AM_I, SW_RESET polled until it clears, BDU, 104 Hz, 4 g, 250 dps, I3C bit."""
    clock = ManualClock()
    chip = chip_cls(0x6A, clock=clock, signal=Signal(behaviours=("rest",)))
    chip.left_by_another_program()  # Adafruit's reset must undo it, INT1 cleared by hand
    chip.on_write(reg.INT1_CTRL, 0)
    chip.on_write(reg.CTRL4_C, 0)
    bus = EmulatedBus([chip], clock=clock)
    on_manual_clock(monkeypatch, clock)
    sox = theirs_cls(EmulatedBusIO(bus), 0x6A)
    r = chip.registers
    assert chip.written(reg.CTRL3_C)[0] == reg.BDU | reg.IF_INC | 0x20 | reg.SW_RESET
    assert (r[reg.CTRL3_C], r[reg.CTRL1_XL], r[reg.CTRL2_G]) == (0x44, 0x48, 0x40)
    assert (r[reg.CTRL6_C], r[reg.FIFO_CTRL4], r[reg.CTRL10_C]) == (0, 0, 0)  # reset
    # Adafruit's _i3c_disable is declared twice; the second, bit 0 of CTRL9_XL, wins.
    assert r[reg.CTRL9_XL] == 0xE1
    assert np.linalg.norm(sox.acceleration) == pytest.approx(G, abs=0.3)
    assert sox.temperature == pytest.approx(chip.die_temperature_c(), abs=0.01)
    assert 18 < sox.temperature < 32


def test_adafruit_lsm6ds_sees_the_self_test_stimulus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stimulus the emulator adds is in the output registers any driver reads."""
    clock = ManualClock()
    chip = Lsm6dsoxChip(0x6A, clock=clock, signal=Signal(seed=2, behaviours=("rest",)))
    bus = EmulatedBus([chip], clock=clock)
    on_manual_clock(monkeypatch, clock)
    sox = LSM6DSOX(EmulatedBusIO(bus), 0x6A)
    before = np.array(sox.acceleration)
    bus.write_byte_data(0x6A, reg.CTRL5_C, reg.ST_XL_POSITIVE)
    clock.advance(0.1)
    change = (np.array(sox.acceleration) - before) / G * 1000  # mg
    expected = chip.self_test_response(*ST_XL_G) * 1000
    np.testing.assert_allclose(change, expected, atol=25)  # noise 30 mm/s^2 -> ~3 mg


@pytest.mark.parametrize("motion", MOTIONS, ids=["rest", "moving"])
def test_adafruit_lis3mdl_reads_what_our_driver_reads(
    monkeypatch: pytest.MonkeyPatch, motion: tuple[str, ...]
) -> None:
    clock = ManualClock()
    signal = Signal(seed=5, behaviours=motion)
    theirs = Lis3mdlChip(0x1C, clock=clock, signal=signal)
    ours = Lis3mdlChip(0x1E, clock=clock, signal=signal)
    bus = EmulatedBus([theirs, ours], clock=clock)
    on_manual_clock(monkeypatch, clock)
    mag = adafruit_lis3mdl.LIS3MDL(EmulatedBusIO(bus), 0x1C)  # UHP, 155 Hz, continuous
    assert theirs.registers[mreg.CTRL_REG1] == 0x62 and theirs.sampling_rate_hz == 155
    ranges = adafruit_lis3mdl.Range
    spread = []
    for gauss in (4, 8, 12, 16):
        mag.range = getattr(ranges, f"RANGE_{gauss}_GAUSS")
        drv = Lis3mdl(bus, 0x1E, ImuSettings(mag_range_ut=gauss * 100))
        drv.init()
        assert drv.range_ut == gauss * 100
        to_sample = in_step(clock, theirs, ours)
        for k in READ_AT:
            to_sample(k)
            field = np.array(mag.magnetic)
            np.testing.assert_allclose(field, drv.read(), rtol=0, atol=drv.lsb_ut * 1.001)
            spread.append(field)
        assert 25 < np.linalg.norm(field) < 70
    turned = np.ptp(np.array(spread), axis=0).max()
    assert turned > 10 if motion != ("rest",) else turned < 5  # uT


def test_adafruit_lis3mdl_reset_and_units(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    chip = Lis3mdlChip(0x1C, clock=clock, keep_truth=True, signal=Signal(behaviours=("rest",)))
    bus = EmulatedBus([chip], clock=clock)
    on_manual_clock(monkeypatch, clock)
    bus.write_byte_data(0x1C, mreg.CTRL_REG2, 0x60)  # left at 16 gauss
    mag = adafruit_lis3mdl.LIS3MDL(EmulatedBusIO(bus), 0x1C)
    assert chip.written(mreg.CTRL_REG2)[1] == 0x64  # SOFT_RST, read-modify-write
    assert mag.range == adafruit_lis3mdl.Range.RANGE_4_GAUSS
    clock.advance(0.02)
    field = mag.magnetic  # the newest sample, in uT
    _, truth = chip.truth()
    np.testing.assert_allclose(field, truth[-1, 6:9], atol=100 / 6842 / 2 + 1e-9)
    assert 25 < np.linalg.norm(field) < 65

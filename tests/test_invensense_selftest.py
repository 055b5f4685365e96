"""The InvenSense self-tests through the driver API on the emulated chips: the factory
trim codes, the responses the emulators give for them, and failing chips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsqd.clock import ManualClock
from fsqd.imu.driver import ImuSettings
from fsqd.imu.drivers.akm import AK8963
from fsqd.imu.drivers.icm20948 import Icm20948
from fsqd.imu.drivers.invensense_selftest import (
    ak8963_self_test,
    judge_accel_gyro,
    judge_mag,
    trim_lsb,
)
from fsqd.imu.drivers.mpu6500 import Mpu6500
from fsqd.imu.drivers.mpu9250 import Mpu9250
from fsqd.imu.emulated import EmulatedBus, Signal
from fsqd.imu.emulated.akm import SELF_TEST_LSB, EmulatedAk
from fsqd.imu.emulated.icm20948 import EmulatedIcm20948
from fsqd.imu.emulated.mpu9250 import EmulatedMpu6500, EmulatedMpu9250
from fsqd.imu.selftest import SelfTestable, SelfTestReport

STILL = Signal(behaviours=("rest",))  # the procedure needs a device that does not move
CHIPS = {
    "mpu9250": (EmulatedMpu9250, Mpu9250, 0x68),
    "mpu6500": (EmulatedMpu6500, Mpu6500, 0x68),
    "icm20948": (EmulatedIcm20948, Icm20948, 0x69),
}


def run(name: str, **chip_kw: object) -> tuple[SelfTestReport, object, object]:
    chip_cls, drv_cls, address = CHIPS[name]
    clock = ManualClock()
    chip = chip_cls(address, clock=clock, signal=STILL, **chip_kw)  # type: ignore[arg-type]
    drv = drv_cls(EmulatedBus([chip], clock=clock), address, ImuSettings())  # type: ignore[arg-type]
    assert isinstance(drv, SelfTestable)
    return drv.self_test(), chip, drv


def failing(report: SelfTestReport) -> set[str]:
    return {f"{a.sensor} {a.axis}" for a in report.axes if not a.passed}


@pytest.mark.parametrize("name", ["mpu9250", "icm20948"])
def test_a_good_chip_passes_against_its_factory_trim(name: str) -> None:
    report, _, drv = run(name)
    assert report.passed and report.chip == name
    ratios = [a for a in report.axes if a.unit == "%"]
    assert len(ratios) == 6 and all(abs(a.measured - 100) < 3 for a in ratios)
    assert [a.sensor for a in report.axes].count("gyro offset") == 3
    mag = [a for a in report.axes if a.sensor == "mag"]
    assert [(a.low, a.high) for a in mag][2] == (
        (-3200, -800) if name == "mpu9250" else (-1000, -200)
    )
    assert any("factory trim codes" in n for n in report.notes)
    # left reset, and init() brings it up as usual
    drv.init()  # type: ignore[attr-defined]


def test_the_chip_is_left_reset() -> None:
    _, chip, _ = run("mpu9250")
    assert isinstance(chip, EmulatedMpu9250)
    assert chip.written(0x6B)[-1] == 0x80  # H_RESET
    assert chip.written(0x1B)[-2:] == [0xE0, 0x00] and chip.written(0x1C)[-2:] == [0xE0, 0x00]
    _, icm, _ = run("icm20948")
    assert isinstance(icm, EmulatedIcm20948)
    assert icm.written_in(0, 0x06)[-1] == 0x80  # DEVICE_RESET
    assert icm.written_in(2, 0x02) == [0x38, 0x00] and icm.written_in(2, 0x15) == [0x1C, 0x00]


@pytest.mark.parametrize("name", ["mpu9250", "icm20948"])
def test_without_trim_codes_the_absolute_limits_apply(name: str) -> None:
    report, _, _ = run(name, self_test_trim=(0,) * 6)
    assert report.passed
    units = {(a.sensor, a.unit) for a in report.axes}
    assert ("accel", "mg") in units and ("gyro", "dps") in units and ("accel", "%") not in units
    accel = [a for a in report.axes if a.sensor == "accel"]
    assert all((a.low, a.high) == (225, 675) and 400 < a.measured < 520 for a in accel)
    assert any("absolute limits" in n for n in report.notes)


@pytest.mark.parametrize(
    ("name", "fault", "fails"),
    [
        ("mpu9250", {"gyro_y": 0.3}, {"gyro y"}),  # 30 % of the trim: under 50 %
        ("mpu9250", {"accel_x": 1.6}, {"accel x"}),  # 160 %: over 150 %
        ("mpu9250", {"accel_z": 0.4}, {"accel z"}),
        ("mpu9250", {"mag_z": 0.3}, {"mag z"}),  # -495 LSB: not below -800
        ("mpu9250", {"mag_x": 8.0}, {"mag x"}),  # 256 LSB: over 200
        ("icm20948", {"gyro_z": 0.0}, {"gyro z"}),
        ("icm20948", {"accel_y": 1.6}, {"accel y"}),
        ("icm20948", {"mag_z": 2.0}, {"mag z"}),  # -1120 LSB: below -1000
        ("icm20948", {"mag_y": -6.0}, {"mag y"}),
    ],
)
def test_a_failing_chip_fails_on_that_axis_only(
    name: str, fault: dict[str, float], fails: set[str]
) -> None:
    report, _, _ = run(name, self_test_fault=fault)
    assert not report.passed and failing(report) == fails


@pytest.mark.parametrize(
    ("fault", "fails"), [({"gyro_x": 0.3}, {"gyro x"}), ({"accel_y": 0.2}, {"accel y"})]
)
def test_absolute_limits_catch_a_weak_response_too(
    fault: dict[str, float], fails: set[str]
) -> None:
    report, _, _ = run("icm20948", self_test_trim=(0,) * 6, self_test_fault=fault)
    assert failing(report) == fails


def test_mpu6500_has_no_magnetometer_to_test() -> None:
    report, _, _ = run("mpu6500")
    assert report.passed and {a.sensor for a in report.axes} == {"accel", "gyro", "gyro offset"}


def test_a_magnetometer_that_never_gets_ready_fails() -> None:
    report, _, _ = run("mpu9250", mag_measure_s=0.5)  # never done within 4 x tSM
    assert failing(report) == {"mag x", "mag y", "mag z"}
    assert any("no self-test measurement" in n for n in report.notes)


def ak8963_self_test_on(ak: EmulatedAk, keep_bit16: bool) -> list[float]:
    """The AK8963 procedure on ``ak`` through a direct aux transfer; ``keep_bit16=False``
    drops the 16-bit output bit from every mode write, so the die measures in 14 bits."""
    now = [0.0]
    field = np.zeros(3)

    def aux(reg: int, value: int | None) -> int:
        if value is None:
            ak.tick(now[0], field)
            return ak.read(reg)
        if reg == AK8963.CNTL1 and not keep_bit16:
            value &= ~AK8963.BIT_16
        ak.write(reg, value, now[0], field)
        return 0

    def sleep(s: float) -> None:
        now[0] += s

    notes: list[str] = []
    results = ak8963_self_test(aux, sleep, bytes(ak.asa), notes)
    assert all(a.passed for a in results), (results, notes)
    return [a.measured for a in results]


def test_an_ak8963_measuring_in_14_bits_is_scaled_by_its_st2_bitm() -> None:
    """A die left in 14-bit output (0.6 uT/LSB) reports a quarter of the 16-bit codes;
    ST2.BITM says so, and the self-test reads the same field as in 16 bits."""
    ak16, ak14 = EmulatedAk("ak8963"), EmulatedAk("ak8963")
    sixteen = ak8963_self_test_on(ak16, keep_bit16=True)
    fourteen = ak8963_self_test_on(ak14, keep_bit16=False)
    codes16 = np.frombuffer(bytes(ak16.regs[0x03:0x09]), "<i2")
    codes14 = np.frombuffer(bytes(ak14.regs[0x03:0x09]), "<i2")  # the data registers kept
    assert codes14 == pytest.approx(codes16 / 4, abs=1)
    assert fourteen == pytest.approx(sixteen, abs=4.0)  # one 14-bit LSB is 4 16-bit LSB
    assert fourteen[2] == pytest.approx(SELF_TEST_LSB["ak8963"][2], abs=4.0)


def test_the_trim_formula_and_the_judgement() -> None:
    assert trim_lsb(0) == 0 and trim_lsb(1) == 2620
    assert trim_lsb(101) == pytest.approx(2620 * 1.01**100)
    otp = trim_lsb(0x80)
    normal = [0.0, 0.0, 16384.0, 131.0 * 25, 0.0, 0.0]
    # accel x at 49 % and y at 151 % fail, z at 100 %; gyro x offset of 25 dps fails
    stim = [0.49 * otp, 1.51 * otp, 16384.0 + otp, 131.0 * 25 + otp, otp, -otp]
    res = judge_accel_gyro(np.array(normal), np.array(stim), bytes([0x80] * 3), bytes([0x80] * 3))
    bad = {f"{a.sensor} {a.axis}" for a in res if not a.passed}
    assert bad == {"accel x", "accel y", "gyro offset x"}  # a negative response counts
    assert all(a.high == math.inf for a in res if a.sensor == "gyro")
    mag = judge_mag("ak8963", np.array([200.0, -201.0, -799.0]))
    assert [a.passed for a in mag] == [True, False, False]

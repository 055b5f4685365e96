"""Built-in self-tests of the ST chips (AN5272, AN4602) and `fsqd probe --self-test`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RunCli

from fsqd.clock import ManualClock
from fsqd.commands import probe
from fsqd.imu.driver import DriverSpec, ImuSettings
from fsqd.imu.drivers import lis3mdl as mreg
from fsqd.imu.drivers import lsm6dsox as reg
from fsqd.imu.drivers.lis3mdl import Lis3mdl
from fsqd.imu.drivers.lsm6dsox import Ism330dhcx, Lsm6dsox
from fsqd.imu.emulated import EmulatedBus, Signal
from fsqd.imu.emulated.chip import SELF_TEST_FAULTS
from fsqd.imu.emulated.lis3mdl import ST_GAUSS, Lis3mdlChip
from fsqd.imu.emulated.lsm6dsox import ST_G_DPS, ST_XL_G, Ism330dhcxChip, Lsm6dsoxChip
from fsqd.imu.selftest import AxisResult, SelfTestable, SelfTestReport

IMUS = [(Lsm6dsoxChip, Lsm6dsox, 50.0), (Ism330dhcxChip, Ism330dhcx, 90.0)]


def imu_rig(
    chip_cls: type[Lsm6dsoxChip], fault: str | None = None, behaviours: tuple[str, ...] = ("rest",)
) -> tuple[ManualClock, Lsm6dsoxChip, EmulatedBus]:
    clock = ManualClock()
    signal = Signal(seed=3, behaviours=behaviours)
    chip = chip_cls(0x6A, clock=clock, signal=signal, self_test_fault=fault)
    return clock, chip, EmulatedBus([chip], clock=clock)


def by_axis(report: SelfTestReport) -> dict[str, AxisResult]:
    return {f"{a.sensor} {a.axis}": a for a in report.axes}


@pytest.mark.parametrize(("chip_cls", "driver_cls", "accel_min"), IMUS)
def test_imu_self_test_measures_the_chip_response(
    chip_cls: type[Lsm6dsoxChip], driver_cls: type[Lsm6dsox], accel_min: float
) -> None:
    _, chip, bus = imu_rig(chip_cls)
    drv = driver_cls(bus, 0x6A)
    assert isinstance(drv, SelfTestable)
    report = drv.self_test()
    assert report.passed and (report.chip, report.address) == (drv.name, 0x6A)
    assert [(a.sensor, a.axis, a.unit) for a in report.axes] == [
        (s, x, u) for s, u in (("accel", "mg"), ("gyro", "dps")) for x in "xyz"
    ]
    axes = by_axis(report)
    # What the emulated chip adds with the stimulus on, measured to 2 % (settled, averaged).
    accel_mg = chip.self_test_response(*ST_XL_G) * 1000
    gyro_dps = chip.self_test_response(*ST_G_DPS)
    for i, x in enumerate("xyz"):
        assert axes[f"accel {x}"].measured == pytest.approx(accel_mg[i], rel=0.02)
        assert axes[f"gyro {x}"].measured == pytest.approx(gyro_dps[i], rel=0.02)
        assert (axes[f"accel {x}"].low, axes[f"accel {x}"].high) == (accel_min, 1700.0)
        assert (axes[f"gyro {x}"].low, axes[f"gyro {x}"].high) == (150.0, 700.0)


def test_imu_self_test_follows_an5272_and_leaves_the_chip_reset() -> None:
    clock, chip, bus = imu_rig(Lsm6dsoxChip)
    drv = Lsm6dsox(bus, 0x6A, ImuSettings(rate_hz=208))
    drv.self_test()
    assert chip.written(reg.CTRL1_XL) == [0x38, 0]  # 52 Hz, 4 g; then off
    assert chip.written(reg.CTRL2_G) == [0x5C, 0]  # 208 Hz, 2000 dps; then off
    assert chip.written(reg.CTRL5_C) == [0x01, 0, 0x04, 0]  # positive stimulus, each
    assert chip.written(reg.CTRL9_XL) == [0xE2]  # I3C off during the test too
    assert chip.registers[reg.CTRL3_C] == reg.IF_INC  # reset again at the end
    assert chip.sampling_rate_hz == 0 and not chip.i3c_only
    drv.init()  # ready for use
    clock.advance(0.1)
    assert drv.fifo_count() > 10


@pytest.mark.parametrize("fault", SELF_TEST_FAULTS)
def test_imu_self_test_fails_a_faulty_chip(fault: str) -> None:
    _, _, bus = imu_rig(Lsm6dsoxChip, fault)
    report = Lsm6dsox(bus, 0x6A).self_test()
    assert not report.passed
    failing = {k for k, a in by_axis(report).items() if not a.passed}
    if fault.startswith("dead-"):
        assert failing == {f"accel {fault[-1]}", f"gyro {fault[-1]}"}
    else:
        assert len(failing) == 6


def test_mag_self_test_measures_the_coil_field_in_gauss() -> None:
    clock = ManualClock()
    chip = Lis3mdlChip(0x1C, clock=clock, signal=Signal(seed=3, behaviours=("rest",)))
    bus = EmulatedBus([chip], clock=clock)
    drv = Lis3mdl(bus, 0x1C)
    report = drv.self_test()
    assert report.passed
    want = chip.self_test_response(*ST_GAUSS)
    limits = [(1.0, 3.0), (1.0, 3.0), (0.1, 1.0)]
    for a, w, lim in zip(report.axes, want, limits, strict=True):
        assert (a.sensor, a.unit, (a.low, a.high)) == ("mag", "gauss", lim)
        assert a.measured == pytest.approx(w, rel=0.02, abs=0.002)
    assert chip.written(mreg.CTRL_REG2) == [0x04, 0x40, 0x04]  # reset; 12 gauss; reset
    assert chip.written(mreg.CTRL_REG1) == [0x1C, 0x1D, 0x1C]  # 80 Hz LP; ST on; off
    assert chip.registers[mreg.CTRL_REG3] == 0x03 and chip.sampling_rate_hz == 0
    drv.init()
    clock.advance(0.02)
    assert 25 < np.linalg.norm(drv.read()) < 65


@pytest.mark.parametrize("fault", ["dead-z", "weak", "strong"])
def test_mag_self_test_fails_a_faulty_chip(fault: str) -> None:
    clock = ManualClock()
    chip = Lis3mdlChip(0x1E, clock=clock, self_test_fault=fault)
    report = Lis3mdl(EmulatedBus([chip], clock=clock), 0x1E).self_test()
    failing = [a.axis for a in report.axes if not a.passed]
    assert failing == (["z"] if fault == "dead-z" else ["x", "y", "z"])


def test_a_chip_that_never_has_data_breaks_the_self_test_off() -> None:
    _, chip, bus = imu_rig(Lsm6dsoxChip)
    chip.start_sampling = lambda odr_hz: None  # type: ignore[method-assign]
    with pytest.raises(OSError, match="no new sample within 192 ms"):
        Lsm6dsox(bus, 0x6A).self_test()


def test_unknown_self_test_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="dead-x, dead-y"):
        Lsm6dsoxChip(0x6A, clock=ManualClock(), self_test_fault="dead-w")


# -- fsqd probe --self-test --


def test_probe_self_test_emulated_passes(run_cli: RunCli) -> None:
    code, out, err = run_cli("probe", "--emulated", "--self-test", "--seconds", "0.2")
    assert code == 0, err
    lines = out.splitlines()
    st = [line.split() for line in lines if line.strip().startswith("self-test ")]
    # 2 ST IMUs x 6 axes + the LIS3MDL's 3; MPU-6500 accel, gyro and gyro offset x 3;
    # ICM-20948 the same + its AK09916's 3: every one within its limits
    assert len(st) == 15 + 9 + 12 and all(words[-1] == "PASS" for words in st)
    assert "        self-test gyro  z:" in out and "(allowed 150 .. 700)  PASS" in out
    assert "(allowed 0.1 .. 1)  PASS" in out  # LIS3MDL z, gauss
    assert "(allowed -1000 .. -200)  PASS" in out  # AK09916 z, LSB
    # Every driver is found through the protocol: none is left without a self-test.
    assert "no self-test" not in out


def test_probe_self_test_fails_on_a_faulty_emulated_chip(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        "probe", "--emulated", "--self-test", "--seconds", "0.2", "--emulated-fault",
        "lsm6dsox:dead-y",
    )  # fmt: skip
    assert code == 74
    assert err.strip() == "fsqd: error: self-test failed: lsm6dsox@0x6b"
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert len(failing) == 2 and all(" y: " in line for line in failing)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--emulated", "--emulated-fault", "lsm6dsox:melted"), "FAULT one of dead-x"),
        (("--emulated", "--emulated-fault", "bmx160:dead-x"), "unknown  driver 'bmx160'"),
        (("--bus", "1", "--emulated-fault", "lsm6dsox:weak"), "only applies with --emulated"),
    ],
)
def test_probe_emulated_fault_usage(run_cli: RunCli, args: tuple[str, ...], message: str) -> None:
    code, _, err = run_cli("probe", "--self-test", *args)
    assert code == 64 and message in err.replace("unknown driver", "unknown  driver")


def found_on(bus: EmulatedBus) -> list[probe.Found]:
    return [f for f in probe.scan(bus) if f.spec is not None]


def test_probe_bus_reports_each_failing_chip() -> None:
    clock = ManualClock()
    signal = Signal(seed=1, behaviours=("rest",))
    bus = EmulatedBus(
        [
            Lsm6dsoxChip(0x6A, clock=clock, signal=signal, self_test_fault="strong"),
            Lis3mdlChip(0x1C, clock=clock, signal=signal, self_test_fault="weak"),
        ],
        clock=clock,
    )
    out: list[str] = []
    failed: list[str] = []
    assert probe.probe_bus("emulated", bus, 0.3, clock, out, self_test=True, failed=failed) == 1
    assert failed == ["lis3mdl@0x1c", "lsm6dsox@0x6a"]
    assert sum(line.endswith("FAIL") for line in out) == 9
    assert "readings plausible" in "\n".join(out)  # the burst ran as usual


def test_a_self_test_the_bus_breaks_off_is_a_failure() -> None:
    clock = ManualClock()
    bus = EmulatedBus([Lsm6dsoxChip(0x6A, clock=clock)], clock=clock)
    (found,) = found_on(bus)
    bus.fail_next(0x6A, 50)
    failed: list[str] = []
    (line,) = probe.self_test_lines(bus, found, failed)
    assert line.startswith("        self-test: FAIL, broken off: [Errno 5]")
    assert failed == ["lsm6dsox@0x6a"]


class _Reporter:
    """Any driver with ``self_test()`` (the InvenSense ones, later) is picked up."""

    def __init__(self, bus: object, address: int, settings: ImuSettings) -> None:
        self.address = address

    def self_test(self) -> SelfTestReport:
        axes = (AxisResult("accel", "x", 12.0, 50.0, 1700.0, "mg"),)
        return SelfTestReport("other", self.address, axes)


def test_probe_picks_up_any_self_testable_driver() -> None:
    clock = ManualClock()
    bus = EmulatedBus([Lsm6dsoxChip(0x6A, clock=clock)], clock=clock)
    spec = DriverSpec("other", "imu", "", (0x6A,), (0x0F, 0x6C), _Reporter)
    failed: list[str] = []
    lines = probe.self_test_lines(bus, probe.Found(0x6A, spec), failed)
    assert lines == ["        self-test accel x:    12.00 mg    (allowed 50 .. 1700)  FAIL"]
    assert failed == ["other@0x6a"]


@pytest.mark.parametrize("chip", ["lis3mdl", "mpu6500", "icm20948", "ism330dhcx"])
def test_probe_emulated_fault_reaches_every_kind_of_chip(run_cli: RunCli, chip: str) -> None:
    """The CLI's failing-chip option breaks the named chip, whatever its family's emulator."""
    code, out, err = run_cli(
        "probe", "--emulated", "--self-test", "--seconds", "0.2", "--emulated-fault",
        f"{chip}:dead-z",
    )  # fmt: skip
    assert code == 74
    # One error line, last; a loaded machine may log a FIFO overrun of another chip before it.
    errors = [line for line in err.splitlines() if line.startswith("fsqd: error:")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0]
    assert errors[0].startswith(f"fsqd: error: self-test failed: {chip}@0x")
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert failing and all(" z: " in line for line in failing)

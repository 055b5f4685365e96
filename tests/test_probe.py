"""`fsqd probe`: naming chips by WHO_AM_I, burst checks, the usual Pi problems."""

from __future__ import annotations

import errno
from pathlib import Path
from types import ModuleType

import pytest
from conftest import RunCli
from hailo_support import fake_hailo

from fsqd.clock import ManualClock
from fsqd.commands import probe
from fsqd.imu.emulated import EmulatedBus, EmulatedChip, Signal
from fsqd.imu.emulated.icm20948 import EmulatedIcm20948
from fsqd.imu.emulated.lis3mdl import Lis3mdlChip
from fsqd.imu.emulated.lsm6dsox import Ism330dhcxChip, Lsm6dsoxChip
from fsqd.imu.emulated.mpu9250 import EmulatedMpu9250

__all__ = ["fake_hailo"]  # a fixture


def test_probe_emulated_names_chips_and_checks_readings(run_cli: RunCli) -> None:
    code, out, err = run_cli("probe", "--emulated", "--seconds", "0.5")
    assert code == 0, err
    assert "0x6a  ism330dhcx" in out or "0x6a  lsm6dsox" in out
    assert "0x1c  lis3mdl" in out
    assert "Hz measured (ODR 104)" in out
    assert "readings plausible" in out
    assert "acquisition" not in out  # log lines go to stderr


def _scan(*chips: EmulatedChip) -> list[probe.Found]:
    clock = ManualClock()
    bus = EmulatedBus(chips, clock=clock)
    return probe.scan(bus)


def test_scan_tells_the_twins_apart_and_reports_strangers() -> None:
    clock = ManualClock()
    found = _scan(
        Lsm6dsoxChip(0x6A, clock=clock),
        Ism330dhcxChip(0x6B, clock=clock),
        Lis3mdlChip(0x1E, clock=clock),
        Lsm6dsoxChip(0x1C, clock=clock, who_am_i=0x99),
    )
    named = {(f.address, f.spec.name if f.spec else None) for f in found}
    assert {(0x6A, "lsm6dsox"), (0x6B, "ism330dhcx"), (0x1E, "lis3mdl")} <= named
    stranger = next(f for f in found if f.address == 0x1C)
    assert stranger.spec is None and "0x0F = 0x99" in stranger.note


def _burst(at_rest: bool, mag_offset_ut: float = 0.0, accel_gain: float = 1.0) -> probe.Burst:
    clock = ManualClock()
    behaviours = ("rest",) if at_rest else ("shake",)
    imu = Lsm6dsoxChip(0x6A, clock=clock, signal=Signal(seed=2, behaviours=behaviours))
    mag = Lis3mdlChip(0x1C, clock=clock, signal=Signal(seed=2, behaviours=behaviours))
    bus = EmulatedBus([imu, mag], clock=clock)
    if accel_gain != 1.0:
        imu_accept = imu.accept

        def weak(x: object) -> None:
            y = x.copy()  # type: ignore[attr-defined]
            y[:, 0:3] *= accel_gain
            imu_accept(y)

        imu.accept = weak  # type: ignore[method-assign]
    if mag_offset_ut:
        original = mag.accept

        def strong(x: object) -> None:
            original(x + mag_offset_ut)  # type: ignore[operator]

        mag.accept = strong  # type: ignore[method-assign]
    found = {f.address: f for f in probe.scan(bus)}
    return probe.measure(bus, found[0x6A], found[0x1C], 1.0, clock)


def test_burst_at_rest_is_plausible() -> None:
    b = _burst(at_rest=True)
    assert b.problems == []
    assert b.rate_hz == pytest.approx(104.17, rel=1e-3)
    assert 95 < b.samples < 110
    assert b.field_ut is not None and 25 < b.field_ut < 65


def test_burst_while_moving_and_near_iron_says_so() -> None:
    b = _burst(at_rest=False)
    assert any("moving" in p for p in b.problems)
    b = _burst(at_rest=True, mag_offset_ut=80.0)
    assert any("25-65 uT" in p for p in b.problems)
    b = _burst(at_rest=True, accel_gain=0.5)  # a wrong scale, as if in g / 2
    assert any("at rest, expected 9.81" in p for p in b.problems)


def test_no_i2c_bus_says_enable_it(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "list_buses", lambda: [])
    code, _, err = run_cli("probe")
    assert code == 66 and "I2C is not enabled" in err and "raspi-config" in err


def test_permission_denied_names_the_group(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr("fsqd.imu.bus.SMBus", denied)
    code, _out, err = run_cli("probe", "--bus", "1")
    assert code == 66 and "/dev/i2c-1: permission denied" in err and "i2c" in err


def test_nothing_on_the_bus(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fsqd.commands.probe.open_bus", lambda name: EmulatedBus())
    code, out, err = run_cli("probe", "--bus", "/dev/i2c-7")
    assert code == 66 and "no known IMU found" in err
    assert "/dev/i2c-7: no known chip answers" in out and "pull-ups" in out


def test_missing_bus_path(run_cli: RunCli, tmp_path: Path) -> None:
    code, _, err = run_cli("probe", "--bus", str(tmp_path / "i2c-3"))
    assert code == 66 and "no such I2C bus" in err


@pytest.mark.parametrize("bank", [1, 2, 3])
def test_scan_names_an_icm20948_left_in_another_bank(bank: int) -> None:
    clock = ManualClock()
    icm = EmulatedIcm20948(0x69, clock=clock)
    mpu = EmulatedMpu9250(0x68, clock=clock)
    bus = EmulatedBus([icm, mpu], clock=clock)
    bus.write_byte_data(0x69, 0x7F, bank << 4)  # left there by another program
    writes: list[tuple[int, int, int]] = []
    write = bus.write_byte_data

    def spy(addr: int, reg: int, value: int, force: bool | None = None) -> None:
        writes.append((addr, reg, value))
        write(addr, reg, value)

    bus.write_byte_data = spy  # type: ignore[method-assign]
    found = {(f.address, f.spec.name if f.spec else None) for f in probe.scan(bus)}
    assert (0x69, "icm20948") in found and (0x68, "mpu9250") in found
    assert icm.bank == 0
    assert writes == [(0x69, 0x7F, 0x00)]  # one bank select, and only on the banked chip


def test_probe_reports_the_hailo_device(run_cli: RunCli, fake_hailo: ModuleType) -> None:
    code, out, err = run_cli("probe", "--emulated", "--seconds", "0.3")
    assert code == 0, err
    line = out.splitlines()[-1]
    assert line.startswith("Hailo: 0000:01:00.0  Hailo-8 (HAILO8), firmware 4.23.0")
    assert "HailoRT 4.23.0" in line


def test_probe_says_when_the_hailo_device_is_missing_or_busy(fake_hailo: ModuleType) -> None:
    fake_hailo.STATE.devices = []
    assert "no Hailo device found" in probe.accelerator_lines()[0]
    fake_hailo.reset().identify_status = 74
    (line,) = probe.accelerator_lines()
    assert line.startswith("Hailo: 0000:01:00.0  cannot be opened: status 74")


def test_probe_without_hailort_says_so(run_cli: RunCli) -> None:
    code, out, _ = run_cli("probe", "--emulated", "--seconds", "0.3")
    assert code == 0
    assert out.splitlines()[-1].startswith("Hailo: HailoRT not installed")

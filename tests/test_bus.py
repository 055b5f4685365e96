"""The I2C bus protocol, burst reads, the emulated bus and its faults, the retrying bus."""

from __future__ import annotations

import errno
import inspect
import os
from pathlib import Path

import pytest
from smbus2 import SMBus, i2c_msg

from fsqd.clock import ManualClock
from fsqd.errors import NoInputError
from fsqd.imu.bus import BLOCK_MAX, I2CBus, RetryingBus, open_bus, read_burst
from fsqd.imu.emulated import EmulatedBus, EmulatedChip
from fsqd.imu.emulated.lsm6dsox import Lsm6dsoxChip

PROTOCOL_CALLS = [n for n, v in vars(I2CBus).items() if callable(v) and not n.startswith("_")]


def test_protocol_is_the_smbus2_calls_drivers_use() -> None:
    assert sorted(PROTOCOL_CALLS) == sorted(
        [
            "read_byte_data",
            "write_byte_data",
            "read_i2c_block_data",
            "write_i2c_block_data",
            "i2c_rdwr",
            "close",
        ]
    )


@pytest.mark.parametrize("name", PROTOCOL_CALLS)
def test_emulated_bus_has_smbus2_signatures(name: str) -> None:
    real = inspect.signature(getattr(SMBus, name))
    fake = inspect.signature(getattr(EmulatedBus, name))
    proto = inspect.signature(getattr(I2CBus, name))
    assert list(fake.parameters) == list(real.parameters) == list(proto.parameters)


class Spy:
    """Records which smbus2 call each transfer used."""

    def __init__(self, bus: EmulatedBus) -> None:
        self.bus = bus
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        self.calls.append(name)
        return getattr(self.bus, name)


def _chip_bus() -> tuple[ManualClock, EmulatedChip, EmulatedBus]:
    clock = ManualClock()
    chip = EmulatedChip(0x50, clock=clock)
    chip.registers[:] = bytes(range(256))
    return clock, chip, EmulatedBus([chip], clock=clock)


@pytest.mark.parametrize("n", [1, 31, 32])
def test_read_burst_small_uses_block_read(n: int) -> None:
    _, _, bus = _chip_bus()
    spy = Spy(bus)
    assert read_burst(spy, 0x50, 0x10, n) == bytes(range(0x10, 0x10 + n))  # type: ignore[arg-type]
    assert spy.calls == ["read_i2c_block_data"]


@pytest.mark.parametrize("n", [33, 200])
def test_read_burst_large_uses_one_combined_transaction(n: int) -> None:
    _, _, bus = _chip_bus()
    spy = Spy(bus)
    assert read_burst(spy, 0x50, 0x20, n) == bytes((0x20 + i) & 0xFF for i in range(n))  # type: ignore[arg-type]
    assert spy.calls == ["i2c_rdwr"]


def test_block_calls_refuse_more_than_32_bytes_like_smbus2() -> None:
    _, _, bus = _chip_bus()
    with pytest.raises(ValueError, match="32"):
        bus.read_i2c_block_data(0x50, 0, BLOCK_MAX + 1)
    with pytest.raises(ValueError, match="32"):
        bus.write_i2c_block_data(0x50, 0, [0] * (BLOCK_MAX + 1))


def test_writes_are_recorded_and_rdwr_writes_after_the_register() -> None:
    _, chip, bus = _chip_bus()
    bus.write_byte_data(0x50, 0x10, 0xAB)
    bus.write_i2c_block_data(0x50, 0x20, [1, 2])
    bus.i2c_rdwr(i2c_msg.write(0x50, [0x30, 7, 8]))
    assert chip.writes == [(0x10, 0xAB), (0x20, 1), (0x21, 2), (0x30, 7), (0x31, 8)]
    assert bus.read_byte_data(0x50, 0x31) == 8


def test_nobody_at_an_address_is_a_nack() -> None:
    _, _, bus = _chip_bus()
    with pytest.raises(OSError) as e:
        bus.read_byte_data(0x51, 0)
    assert e.value.errno == errno.EREMOTEIO


def test_closed_bus_refuses_transfers() -> None:
    _, _, bus = _chip_bus()
    bus.close()
    with pytest.raises(OSError) as e:
        bus.read_byte_data(0x50, 0)
    assert e.value.errno == errno.EBADF


def test_error_rate_injects_the_three_pi_errnos_and_counts_them() -> None:
    _, _, bus = _chip_bus()
    bus.error_rate = 0.3
    seen = []
    for _ in range(400):
        try:
            bus.read_byte_data(0x50, 0)
        except OSError as e:
            seen.append(e.errno)
    assert set(seen) == {errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT}
    assert 80 < len(seen) < 160
    assert sum(bus.injected.values()) == len(seen)


def test_hang_blocks_for_the_adapter_timeout_then_times_out() -> None:
    clock, _, bus = _chip_bus()
    bus.hang(2.5)
    t0 = clock.now()
    for expected in (1.0, 2.0, 2.5):
        with pytest.raises(OSError) as e:
            bus.read_byte_data(0x50, 1)
        assert e.value.errno == errno.ETIMEDOUT
        assert clock.now() - t0 == pytest.approx(expected, abs=1e-3)
    assert bus.read_byte_data(0x50, 1) == 1


def test_a_chip_that_disappears_comes_back_power_cycled() -> None:
    clock, chip, bus = _chip_bus()
    bus.write_byte_data(0x50, 0x10, 0x55)
    bus.disappear(0x50, 1.0)
    with pytest.raises(OSError) as e:
        bus.read_byte_data(0x50, 0x10)
    assert e.value.errno == errno.EREMOTEIO
    clock.advance(1.0)
    assert bus.read_byte_data(0x50, 0x10) == 0  # registers back at reset values
    assert chip.power_cycles == 1


def test_retrying_bus_repeats_bus_errors_and_counts_them() -> None:
    _, _, bus = _chip_bus()
    bus.error_rate = 0.3
    retrying = RetryingBus(bus, attempts=3)
    ok = 0
    for _ in range(200):
        try:
            retrying.read_byte_data(0x50, 5)
            ok += 1
        except OSError:
            pass
    assert ok >= 190  # 0.3^3 = 2.7 % fail all three attempts
    assert retrying.failures == sum(bus.injected.values())


def test_retrying_bus_does_not_repeat_other_errors() -> None:
    _, _, bus = _chip_bus()
    bus.close()
    retrying = RetryingBus(bus)
    with pytest.raises(OSError):
        retrying.read_byte_data(0x50, 0)
    assert retrying.failures == 1


def test_open_bus_missing_device_says_enable_i2c(tmp_path: Path) -> None:
    with pytest.raises(NoInputError, match=r"no such I2C bus .*enable"):
        open_bus(str(tmp_path / "i2c-9"))
    with pytest.raises(NoInputError, match="/dev/i2c-250"):
        open_bus(250)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_open_bus_permission_denied_names_the_i2c_group(tmp_path: Path) -> None:
    dev = tmp_path / "i2c-1"
    dev.write_bytes(b"")
    dev.chmod(0)
    with pytest.raises(NoInputError, match=r"permission denied.*'i2c' group"):
        open_bus(str(dev))


def test_emulated_lsm6dsox_fifo_rolls_over_in_one_burst() -> None:
    clock = ManualClock()
    chip = Lsm6dsoxChip(0x6A, clock=clock)
    bus = EmulatedBus([chip], clock=clock)
    bus.write_byte_data(0x6A, 0x09, 0x44)  # batch both at 104 Hz
    bus.write_byte_data(0x6A, 0x0A, 0x06)  # continuous
    bus.write_byte_data(0x6A, 0x10, 0x40)
    bus.write_byte_data(0x6A, 0x11, 0x40)
    clock.advance(0.1)
    words = bus.read_byte_data(0x6A, 0x3A)
    assert words == 20  # 10 samples x (gyro + accel) at 104.17 Hz in 0.1 s
    raw = read_burst(bus, 0x6A, 0x78, 7 * words)
    tags = [raw[i] >> 3 for i in range(0, len(raw), 7)]
    assert tags == [1, 2] * 10
    assert [(raw[i] >> 1) & 3 for i in range(0, len(raw), 14)] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert bus.read_byte_data(0x6A, 0x3A) == 0


def test_open_bus_permission_error_from_smbus2(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr("fsqd.imu.bus.SMBus", denied)
    with pytest.raises(NoInputError, match=r"/dev/i2c-1: permission denied .*usermod -aG i2c"):
        open_bus(1)

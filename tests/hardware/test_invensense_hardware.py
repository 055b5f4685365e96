"""ICM-20948 and MPU-9250 / MPU-6500 breakouts on a real Raspberry Pi I2C bus.

Wire the board to the Pi's I2C pins (3V3, GND, SDA = GPIO 2, SCL = GPIO 3), enable I2C
(``raspi-config`` > Interface Options > I2C), lay the board flat and still, then:

    FSQD_HARDWARE=1 pytest -v tests/hardware/test_invensense_hardware.py

Options (environment): ``FSQD_I2C_BUS`` (default 1), ``FSQD_ICM20948_ADDRESS`` (default
0x69; 0x68 with AD0 low), ``FSQD_MPU9250_ADDRESS`` (default 0x68; 0x69 with AD0 high),
``FSQD_MPU_DRIVER`` ("mpu9250" by default; "mpu6500" for a board without magnetometer).
A chip that does not answer is skipped with a line saying which variable to set. At
1 kHz the Pi's default 100 kHz I2C clock is too slow for 20-byte MPU-9250 frames: use
``dtparam=i2c_arm_baudrate=400000`` in config.txt.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Iterator

import numpy as np
import pytest

from fsqd.config.tomlcheck import Table
from fsqd.sensors.acquire import open_acquisition
from fsqd.sensors.bus import I2CBus, open_bus
from fsqd.sensors.config import parse_sensors
from fsqd.sensors.driver import ChipIdError, ImuDriver, ImuSettings, get_spec, make_imu
from fsqd.sensors.selftest import SelfTestable
from fsqd.sensors.sim import G

pytestmark = pytest.mark.hardware

BUS = int(os.environ.get("FSQD_I2C_BUS", "1"))
MPU_DRIVER = os.environ.get("FSQD_MPU_DRIVER", "mpu9250")
CHIPS = {
    "icm20948": ("icm20948", int(os.environ.get("FSQD_ICM20948_ADDRESS", "0x69"), 0)),
    "mpu": (MPU_DRIVER, int(os.environ.get("FSQD_MPU9250_ADDRESS", "0x68"), 0)),
}
SETTINGS = ImuSettings(rate_hz=100, accel_range_g=8, gyro_range_dps=1000)


@pytest.fixture(params=sorted(CHIPS))
def chip(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, I2CBus, ImuDriver]]:
    driver, address = CHIPS[request.param]
    bus = open_bus(BUS)
    imu = make_imu(get_spec(driver, "imu"), bus, address, SETTINGS)
    try:
        imu.init()
    except (ChipIdError, OSError) as e:
        bus.close()
        var = "FSQD_ICM20948_ADDRESS" if driver == "icm20948" else "FSQD_MPU9250_ADDRESS"
        pytest.skip(f"no {driver} at 0x{address:02x} on bus {BUS} ({e}); set {var}")
    yield driver, address, bus, imu
    imu.close()
    bus.close()


def test_at_rest_gravity_field_and_rate(chip: tuple[str, int, I2CBus, ImuDriver]) -> None:
    driver, _, _, imu = chip
    imu.reset_fifo()
    wait = 0.6 * imu.fifo_capacity / imu.odr_hz  # the MPU-9250's 512 bytes hold 250 ms
    time.sleep(wait)
    read = imu.read_fifo()
    n = len(read.samples)
    assert not read.overflow
    assert abs(n - wait * imu.odr_hz) <= 0.1 * wait * imu.odr_hz + 2  # filled at its ODR
    x = read.samples.astype(np.float64)
    assert np.linalg.norm(x[:, 0:3], axis=1).mean() == pytest.approx(G, abs=0.8)
    assert np.abs(x[:, 3:6].mean(axis=0)).max() < 0.1  # rad/s: still, bias included
    if imu.has_mag:
        field = np.linalg.norm(x[:, 6:9], axis=1)
        assert 20 < np.median(field) < 70, f"{driver}: |B| = {np.median(field):.1f} uT"
    else:
        assert np.isnan(x[:, 6:9]).all()


def test_a_long_burst_and_an_overflow(chip: tuple[str, int, I2CBus, ImuDriver]) -> None:
    _, _, _, imu = chip
    imu.reset_fifo()
    time.sleep(0.15)  # more than 32 bytes: one i2c_rdwr
    read = imu.read_fifo()
    assert not read.overflow and len(read.samples) >= 10
    time.sleep(1.5 * imu.fifo_capacity / imu.odr_hz)
    assert imu.read_fifo().overflow
    imu.reset_fifo()
    time.sleep(0.1)
    read = imu.read_fifo()
    assert not read.overflow
    assert np.linalg.norm(read.samples[:, 0:3], axis=1).mean() == pytest.approx(G, abs=0.8)


def test_self_test_on_a_still_board(chip: tuple[str, int, I2CBus, ImuDriver]) -> None:
    """The chips' own self-test against their factory trim: keep the board still."""
    _, _, _, imu = chip
    assert isinstance(imu, SelfTestable)
    report = imu.self_test()
    failed = [a for a in report.axes if not a.passed]
    assert report.passed, f"failing axes {failed}; {report.notes}"
    imu.init()  # it left the chip reset


@pytest.mark.parametrize("which", sorted(CHIPS))
def test_acquisition_for_five_seconds(which: str) -> None:
    driver, address = CHIPS[which]
    text = (
        f'[[sensor]]\nname = "hw"\ndriver = "{driver}"\nbus = {BUS}\n'
        f"address = 0x{address:02x}\nrate_hz = 100\n"
    )
    sensors = parse_sensors(Table(tomllib.loads(text), "hw.toml").tables("sensor"))
    acq = open_acquisition(sensors, 1)
    acq.start(lambda: None)
    try:
        time.sleep(5.0)
        chunks = acq.read()
        status = acq.status()[0]
    finally:
        acq.stop()
    if status.state == "lost" or not chunks:
        pytest.skip(f"no {driver} at 0x{address:02x} on bus {BUS}: {status.message}")
    t = np.concatenate([c.t for c in chunks])
    assert status.lost == 0 and status.overruns == 0 and status.segments == 1
    assert status.rate_hz == pytest.approx(acq.nominal_rate_hz, rel=0.05)
    steps = np.diff(t) * status.rate_hz
    assert steps.min() > 0.8 and steps.max() < 1.2  # evenly spaced, never backwards
    assert abs(t[-1] - time.time()) < 1.0  # UNIX time, not drifting away

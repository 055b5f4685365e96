"""The ST chips on a real bus: built-in self-tests, and clean first samples after init.

Run with:  FSQD_HARDWARE=1 pytest tests/hardware   (optional FSQD_I2C_BUS=1)
Keep the board still: the self-tests measure the stimulus against a steady signal.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from fsqd.commands.probe import scan
from fsqd.imu.bus import RetryingBus, open_bus
from fsqd.imu.driver import ImuSettings
from fsqd.imu.drivers.lsm6dsox import Lsm6dsox
from fsqd.imu.selftest import SelfTestable

pytestmark = pytest.mark.hardware

BUS: int | str = os.environ.get("FSQD_I2C_BUS", "1")
BUS = int(BUS) if str(BUS).isdigit() else BUS
ST_CHIPS = ("lsm6dsox", "ism330dhcx", "lis3mdl")


def test_every_st_chip_passes_its_self_test() -> None:
    bus = open_bus(BUS)
    try:
        found = [f for f in scan(bus) if f.spec is not None and f.spec.name in ST_CHIPS]
        if not found:
            pytest.skip(f"no ST chip on bus {BUS}")
        for f in found:
            assert f.spec is not None
            driver = f.spec.factory(RetryingBus(bus), f.address, ImuSettings())
            assert isinstance(driver, SelfTestable)
            report = driver.self_test()
            failing = [(a.sensor, a.axis, a.measured, a.unit) for a in report.axes if not a.passed]
            assert report.passed, f"{f.spec.name}@0x{f.address:02x}: {failing}"
    finally:
        bus.close()


def test_first_samples_after_init_are_clean() -> None:
    """No bootstrap word (about +4 g) survives init, on a chip that was just running."""
    bus = open_bus(BUS)
    try:
        imus = [f for f in scan(bus) if f.spec is not None and f.spec.name in ST_CHIPS[:2]]
        if not imus:
            pytest.skip(f"no LSM6DSOX / ISM330DHCX on bus {BUS}")
        spec, address = imus[0].spec, imus[0].address
        assert spec is not None
        drv = spec.factory(RetryingBus(bus), address, ImuSettings(accel_range_g=4))
        assert isinstance(drv, Lsm6dsox)
        for _ in range(3):  # a start, then re-inits
            drv.init()
            time.sleep(0.2)
            x = drv.read_fifo(drv.fifo_count()).samples
            assert len(x) >= 15
            assert np.abs(x[:, :3]).max() < 3 * 9.81  # at rest: nowhere near 4 g
        drv.close()
    finally:
        bus.close()

"""Against a real IMU on a real I2C bus (a Pi with a breakout board).

Run with:  FSQD_HARDWARE=1 pytest tests/hardware
Optional:  FSQD_I2C_BUS=1 (number or /dev path), FSQD_IMU_ADDRESS=0x6a.
Put the board down flat and still: the gravity check expects it at rest.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from fsqd.commands.probe import scan
from fsqd.imu.acquire.acquisition import SensorState, open_acquisition
from fsqd.imu.acquire.config import SensorConfig
from fsqd.imu.bus import open_bus

pytestmark = pytest.mark.hardware

BUS: int | str = os.environ.get("FSQD_I2C_BUS", "1")
BUS = int(BUS) if str(BUS).isdigit() else BUS


def _found() -> tuple[str, int, str | None, int | None]:
    bus = open_bus(BUS)
    try:
        found = scan(bus)
    finally:
        bus.close()
    imus = [f for f in found if f.spec is not None and f.spec.kind == "imu"]
    want = os.environ.get("FSQD_IMU_ADDRESS")
    if want:
        imus = [f for f in imus if f.address == int(want, 0)]
    assert imus, f"no known IMU on bus {BUS}: {[(hex(f.address), f.note) for f in found]}"
    imu = imus[0]
    assert imu.spec is not None
    mag = next(
        (f for f in found if f.spec is not None and f.spec.name == imu.spec.companion_mag), None
    )
    return (
        imu.spec.name,
        imu.address,
        mag.spec.name if mag and mag.spec else None,
        (mag.address if mag else None),
    )


@pytest.mark.parametrize("rate", [104, 833])
def test_real_chip_streams_without_loss(rate: int) -> None:
    driver, address, mag_driver, mag_address = _found()
    config = SensorConfig(
        name="hw",
        driver=driver,
        bus=BUS,
        address=address,
        rate_hz=rate,
        mag_driver=mag_driver,
        mag_address=mag_address,
    )
    acq = open_acquisition([config], 1)
    acq.start(lambda: None)
    chunks = []
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        time.sleep(0.1)
        chunks += acq.read()
    acq.stop()
    chunks += acq.read()
    st = acq.status()[0]
    assert st.state != SensorState.LOST, st.message
    assert st.lost == 0 and st.segments == 1 and st.overruns == 0
    t = np.concatenate([c.t for c in chunks])
    x = np.concatenate([c.x for c in chunks])
    assert np.all(np.diff(t) > 0)
    assert abs(t[-1] - time.time()) < 1.0  # UNIX time, now-ish
    assert st.rate_hz == pytest.approx(acq.nominal_rate_hz, rel=0.05)
    assert len(t) == pytest.approx(5.0 * st.rate_hz, rel=0.1)
    g = np.linalg.norm(x[:, 0:3], axis=1)
    assert np.median(g) == pytest.approx(9.81, abs=0.6), "is the board lying still?"
    if mag_driver is not None:
        assert 20 < np.median(np.linalg.norm(x[:, 6:9], axis=1)) < 80

"""ST's self-test procedure, shared by the LSM6DSOX / ISM330DHCX and LIS3MDL drivers.

AN5272 (LSM6DSOX; ST's lsm6dsox_self_test.c) and AN4602 (LIS3MDL; lis3mdl_self_test.c)
follow one recipe: with the sensor running in its self-test configuration, the mean of 5
new samples (after one dropped) without the stimulus, then the stimulus on, a wait for it
to settle, and the mean of 5 more; the response is |with - without| per axis, in LSB,
judged against the datasheet's limits. The driver sets the configuration up before and
switches the sensor off after.

The LSM6DSOX's configuration (AN5272): accelerometer at 52 Hz, +-4 g; gyro at 208 Hz,
+-2000 dps; positive stimulus; 100 ms to settle after every change.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from fsqd.imu.bus import I2CBus
from fsqd.imu.selftest import mean_of_new_samples

ST_XL_CTRL1 = 0x38  # LSM6DSOX CTRL1_XL: 52 Hz, 4 g
ST_G_CTRL2 = 0x5C  # LSM6DSOX CTRL2_G: 208 Hz, 2000 dps
ST_SETTLE_S = 0.1
ST_XL_MG_PER_LSB, ST_G_DPS_PER_LSB = 0.122, 0.070


def stimulus_response(
    bus: I2CBus,
    address: int,
    sleep: Callable[[float], None],
    *,
    status: tuple[int, int],
    out: int,
    period_s: float,
    stimulus: Callable[[bool], None],
    settle_s: float,
) -> list[float]:
    """|mean with the stimulus - mean without| per axis, in LSB. ``status``: the status
    register and its data-ready bit; ``out``: the first of the six little-endian output
    bytes; ``stimulus(on)`` switches the self-test stimulus on or off (off at the end)."""

    def ready() -> bool:
        return bool(bus.read_byte_data(address, status[0]) & status[1])

    def read() -> tuple[int, ...]:
        return struct.unpack("<hhh", bytes(bus.read_i2c_block_data(address, out, 6)))

    off = mean_of_new_samples(ready, read, sleep, period_s)
    stimulus(True)
    sleep(settle_s)
    on = mean_of_new_samples(ready, read, sleep, period_s)
    stimulus(False)
    return [abs(a - b) for a, b in zip(on, off, strict=True)]


__all__ = [
    "ST_G_CTRL2",
    "ST_G_DPS_PER_LSB",
    "ST_SETTLE_S",
    "ST_XL_CTRL1",
    "ST_XL_MG_PER_LSB",
    "stimulus_response",
]

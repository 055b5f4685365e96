"""The two AKM magnetometers inside InvenSense 9-axis parts: register maps and conversion.

- AK8963, the die inside the MPU-9250 (and MPU-9255): WIA 0x00 = 0x48, ST1 0x02,
  HXL..HZH 0x03..0x08 little-endian, ST2 0x09, CNTL1 0x0A, CNTL2 0x0B (soft reset),
  factory sensitivity adjustment ASAX..ASAZ 0x10..0x12, readable only in fuse-ROM mode.
  16-bit output is 0.15 uT/LSB; each axis is scaled by ``(ASA + 128) / 256``
  (datasheet: ``H_adj = H * ((ASA - 128) * 0.5 / 128 + 1)``, the Linux inv_mpu_magn.c form).
- AK09916, the die inside the ICM-20948: WIA1 0x00 = 0x48, WIA2 0x01 = 0x09, ST1 0x10,
  HXL..HZH 0x11..0x16 little-endian, TMPS 0x17 (dummy), ST2 0x18, CNTL2 0x31 (mode),
  CNTL3 0x32 (soft reset). Always 16-bit, 0.15 uT/LSB, no adjustment values.

Both latch their data registers until ST2 is read, so every read of the data ends with ST2.

Their axes are not the accel/gyro axes of the die they sit in. In the accel/gyro frame:
- AK8963 in the MPU-9250: ``(x, y, z) = (ak_y, ak_x, -ak_z)`` (Linux
  ``inv_mpu_magn_set_orient``: "x <- y, y <- x, z <- -z"),
- AK09916 in the ICM-20948: ``(x, y, z) = (ak_x, -ak_y, -ak_z)`` (InvenSense's compass
  mounting matrix diag(1, -1, -1), as SparkFun's library writes it into the DMP).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

AKM_ADDRESS = 0x0C
UT_PER_LSB = 0.15  # 16-bit output, both parts

ST1_DRDY = 0x01  # a new measurement since the last read
ST1_DOR = 0x02  # a measurement was skipped (data overrun)
ST2_HOFL = 0x08  # magnetic overflow (|X| + |Y| + |Z| >= 4912 uT): the value is invalid
ST2_BITM = 0x10  # AK8963 only: the measurement's output width (1: 16-bit, 0: 14-bit)


class AK8963:
    WIA = 0x00
    WIA_VALUE = 0x48
    ST1 = 0x02
    HXL = 0x03
    ST2 = 0x09
    CNTL1 = 0x0A
    CNTL2 = 0x0B
    ASTC = 0x0C
    ASAX = 0x10
    SRST = 0x01  # CNTL2
    ASTC_SELF = 0x40  # ASTC: the self-test source on
    BIT_16 = 0x10  # CNTL1 output bit: 16-bit
    MODE_POWER_DOWN = 0x00
    MODE_SINGLE = 0x01
    MODE_CONT_8HZ = 0x02
    MODE_CONT_100HZ = 0x06
    MODE_SELF_TEST = 0x08
    MODE_FUSE_ROM = 0x0F
    MAX_RATE_HZ = 100.0  # continuous mode 2
    # Single measurements triggered by the MPU's aux master: a measurement takes up to
    # 9 ms (tSM, 7.2 ms typical), so Linux (INV_MPU_MAGN_FREQ_HZ_MAX) triggers at 50 Hz
    # at most, leaving room for the master's own transfers and clock tolerance.
    TRIGGER_MAX_HZ = 50.0
    # Data as the MPU's I2C master copies it: ST1, HXL..HZH, ST2 (8 bytes from ST1).
    READ_FROM = ST1
    READ_LEN = 8

    @staticmethod
    def sensitivity(asa: bytes) -> npt.NDArray[np.float64]:
        """uT per LSB for each of the AK8963's own axes, from the three fuse-ROM bytes."""
        adj = (np.frombuffer(asa, np.uint8).astype(np.float64) + 128.0) / 256.0
        out: npt.NDArray[np.float64] = UT_PER_LSB * adj
        return out

    # rows: accel/gyro axes; columns: the AK8963's axes
    TO_CHIP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


class AK09916:
    WIA1 = 0x00
    WIA2 = 0x01
    WIA2_VALUE = 0x09
    ST1 = 0x10
    HXL = 0x11
    ST2 = 0x18
    CNTL2 = 0x31
    CNTL3 = 0x32
    SRST = 0x01  # CNTL3
    MODE_POWER_DOWN = 0x00
    MODE_SINGLE = 0x01
    MODE_CONT_10HZ = 0x02
    MODE_CONT_20HZ = 0x04
    MODE_CONT_50HZ = 0x06
    MODE_CONT_100HZ = 0x08
    MODE_SELF_TEST = 0x10
    MAX_RATE_HZ = 100.0
    # ST1, HXL..HZH, TMPS, ST2: 9 bytes from ST1, as SparkFun's library reads them.
    READ_FROM = ST1
    READ_LEN = 9
    TO_CHIP = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def hold_valid(
    mag: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], last: npt.NDArray[np.float64] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.float64] | None]:
    """Sample-and-hold: each row without a valid reading repeats the latest valid one.

    ``last`` is the latest valid row from earlier reads (None at a segment start). Returns
    the filled rows, which rows have a value at all (False only before the first valid
    reading of a segment), and the new ``last``.
    """
    n = len(mag)
    idx = np.where(valid, np.arange(n), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.empty_like(mag)
    have = idx >= 0
    out[have] = mag[idx[have]]
    if last is not None:
        out[~have] = last
        have = np.ones(n, bool)
    new_last = out[-1].copy() if n and have[-1] else last
    return out, have, new_last


__all__ = [
    "AK09916",
    "AK8963",
    "AKM_ADDRESS",
    "ST1_DOR",
    "ST1_DRDY",
    "ST2_BITM",
    "ST2_HOFL",
    "UT_PER_LSB",
]

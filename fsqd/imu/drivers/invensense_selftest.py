"""The InvenSense self-test arithmetic, shared by the MPU-9250/6500 and ICM-20948 drivers.

Accelerometer and gyroscope (the MPU-9250 self-test application note, and InvenSense's own
drivers for the MPU-6500 and ICM-20948, which use the same numbers): at +-2 g and
+-250 dps, 1 kHz, 200 samples are averaged with the self-test stimulus off and 200 with
it on; the difference is the self-test response. The factory measured it too and wrote a
code per axis into SELF_TEST_X/Y/Z_GYRO/ACCEL; the response it promises is
``ST_OTP = 2620 / 2^FS * 1.01^(code - 1)`` LSB (FS = 0 here). Pass when:

- gyro: response / ST_OTP > 50 %; with no trim (code 0) |response| >= 60 dps;
- accel: 50 % < response / ST_OTP < 150 %; with no trim 225 mg <= |response| <= 675 mg;
- gyro offset (stimulus off) within +-20 dps: a still device reads its zero-rate offset.

The response is taken as a magnitude (InvenSense's drivers differ on its sign). The device
must be still while it runs: motion between the two 200-sample averages reads as response.

Magnetometers (AK8963, AK09916 datasheets): a self-test measurement of an internal
source, in 16-bit LSB, after the AK8963's sensitivity adjustment (ASA); AK8963: X, Y
-200..200, Z -3200..-800; AK09916: X, Y -200..200, Z -1000..-200. Both drivers reach
the die through their aux I2C master's one-shot transfers, so the procedures here take
that transfer as a function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from fsqd.imu.drivers.akm import AK09916, AK8963, ST1_DRDY, ST2_BITM, ST2_HOFL
from fsqd.imu.selftest import AxisResult

F64 = npt.NDArray[np.float64]
# One transfer to the magnetometer: (register, byte to write or None to read) -> byte read
Aux = Callable[[int, int | None], int]

ST_SAMPLES = 200
ST_SETTLE_S = 0.02  # after the stimulus is switched, before averaging (InvenSense: 20 ms)
ACCEL_LSB_PER_G = 16384.0  # +-2 g
GYRO_LSB_PER_DPS = 131.0  # +-250 dps
GYRO_RATIO_MIN = 0.5
ACCEL_RATIO = (0.5, 1.5)
GYRO_ABS_MIN_DPS = 60.0
ACCEL_ABS_MG = (225.0, 675.0)
GYRO_OFFSET_MAX_DPS = 20.0
AXES = ("x", "y", "z")
MAG_LIMITS = {  # 16-bit LSB, sensitivity-adjusted: (low, high) per axis
    "ak8963": ((-200.0, 200.0), (-200.0, 200.0), (-3200.0, -800.0)),
    "ak09916": ((-200.0, 200.0), (-200.0, 200.0), (-1000.0, -200.0)),
}
AK_MEASURE_S = 0.009  # the longest single (or self-test) measurement


def trim_lsb(code: int) -> float:
    """The self-test response a factory trim code promises, LSB at FS 0 (0: no trim)."""
    return 0.0 if code == 0 else 2620.0 * 1.01 ** (code - 1)


def average(read: Callable[[], F64], sleep: Callable[[float], None], period_s: float) -> F64:
    """The mean of ``ST_SAMPLES`` readings of the output registers, one per sample period."""
    total = np.zeros(6)
    for _ in range(ST_SAMPLES):
        sleep(period_s)
        total += read()
    out: F64 = total / ST_SAMPLES
    return out


def judge_accel_gyro(
    normal: F64, stimulated: F64, gyro_codes: bytes, accel_codes: bytes
) -> list[AxisResult]:
    """Results for the averages (accel x, y, z, gyro x, y, z in LSB at +-2 g / +-250 dps)
    without and with the stimulus, and the factory trim codes."""
    response = np.abs(stimulated - normal)
    out: list[AxisResult] = []
    for i, axis in enumerate(AXES):
        otp = trim_lsb(accel_codes[i])
        if otp:
            lo, hi = ACCEL_RATIO
            out.append(AxisResult("accel", axis, 100 * response[i] / otp, 100 * lo, 100 * hi, "%"))
        else:
            mg = 1000 * response[i] / ACCEL_LSB_PER_G
            out.append(AxisResult("accel", axis, mg, *ACCEL_ABS_MG, "mg"))
    for i, axis in enumerate(AXES):
        otp = trim_lsb(gyro_codes[i])
        value = response[3 + i]
        if otp:
            out.append(
                AxisResult("gyro", axis, 100 * value / otp, 100 * GYRO_RATIO_MIN, math.inf, "%")
            )
        else:
            dps = value / GYRO_LSB_PER_DPS
            out.append(AxisResult("gyro", axis, dps, GYRO_ABS_MIN_DPS, math.inf, "dps"))
    for i, axis in enumerate(AXES):
        offset = normal[3 + i] / GYRO_LSB_PER_DPS
        lim = GYRO_OFFSET_MAX_DPS
        out.append(AxisResult("gyro offset", axis, offset, -lim, lim, "dps"))
    return out


def judge_mag(model: str, adjusted_lsb: F64) -> list[AxisResult]:
    """Results for a magnetometer's self-test measurement (16-bit LSB, ASA applied)."""
    return [
        AxisResult("mag", axis, float(adjusted_lsb[i]), lo, hi, "LSB")
        for i, (axis, (lo, hi)) in enumerate(zip(AXES, MAG_LIMITS[model], strict=True))
    ]


def _await_drdy(aux: Aux, st1: int, sleep: Callable[[float], None]) -> bool:
    for _ in range(8):  # up to 4 x tSM (9 ms)
        sleep(AK_MEASURE_S / 2)
        if aux(st1, None) & ST1_DRDY:
            return True
    return False


def ak8963_self_test(
    aux: Aux, sleep: Callable[[float], None], asa: bytes, notes: list[str]
) -> list[AxisResult]:
    """The AK8963 datasheet's procedure, from power-down: ASTC.SELF, self-test mode, wait
    for DRDY, read the data and ST2, ASTC off, power-down. ``asa``: its fuse-ROM ASA."""
    aux(AK8963.ASTC, AK8963.ASTC_SELF)
    aux(AK8963.CNTL1, AK8963.BIT_16 | AK8963.MODE_SELF_TEST)
    ready = _await_drdy(aux, AK8963.ST1, sleep)
    data = bytes(aux(AK8963.HXL + i, None) for i in range(6))
    st2 = aux(AK8963.ST2, None)
    aux(AK8963.ASTC, 0x00)
    aux(AK8963.CNTL1, AK8963.MODE_POWER_DOWN)
    raw = np.frombuffer(data, "<i2").astype(np.float64) * (1.0 if st2 & ST2_BITM else 4.0)
    adjusted = raw * (np.frombuffer(asa, np.uint8) + 128.0) / 256.0
    if not ready:
        notes.append("AK8963: no self-test measurement became ready")
        adjusted[:] = np.nan
    if st2 & ST2_HOFL:
        notes.append("AK8963: magnetic overflow (ST2.HOFL) in the self-test measurement")
    notes.append(f"AK8963 ASA {asa.hex(' ')}; mag in 16-bit LSB after the ASA adjustment")
    return judge_mag("ak8963", adjusted)


def ak09916_self_test(
    aux: Aux, sleep: Callable[[float], None], notes: list[str]
) -> list[AxisResult]:
    """The AK09916's procedure: power-down, self-test mode, wait for DRDY, read the data
    and ST2 (the die powers itself down after the measurement)."""
    aux(AK09916.CNTL2, AK09916.MODE_POWER_DOWN)
    aux(AK09916.CNTL2, AK09916.MODE_SELF_TEST)
    ready = _await_drdy(aux, AK09916.ST1, sleep)
    data = bytes(aux(AK09916.HXL + i, None) for i in range(6))
    st2 = aux(AK09916.ST2, None)
    raw = np.frombuffer(data, "<i2").astype(np.float64)
    if not ready:
        notes.append("AK09916: no self-test measurement became ready")
        raw[:] = np.nan
    if st2 & ST2_HOFL:
        notes.append("AK09916: magnetic overflow (ST2.HOFL) in the self-test measurement")
    notes.append("mag in AK09916 LSB (0.15 uT)")
    return judge_mag("ak09916", raw)


def trims_note(gyro_codes: bytes, accel_codes: bytes) -> str:
    codes = " ".join(f"{c:#04x}" for c in (*gyro_codes, *accel_codes))
    missing = "" if all((*gyro_codes, *accel_codes)) else " (0: no trim, absolute limits used)"
    return f"factory trim codes gyro x y z, accel x y z: {codes}{missing}"


__all__ = [
    "MAG_LIMITS",
    "ST_SAMPLES",
    "ST_SETTLE_S",
    "Aux",
    "ak09916_self_test",
    "ak8963_self_test",
    "average",
    "judge_accel_gyro",
    "judge_mag",
    "trim_lsb",
    "trims_note",
]

"""ST LIS3MDL magnetometer, polled once per burst (it has no FIFO).

Registers (ST datasheet; Adafruit_CircuitPython_LIS3MDL agrees): WHO_AM_I 0x0F = 0x3D;
CTRL_REG1 0x20 = TEMP_EN[7] OM[6:5] DO[4:2] FAST_ODR[1]; CTRL_REG2 0x21 = FS[6:5]
REBOOT[3] SOFT_RST[2]; CTRL_REG3 0x22 = MD[1:0] (0 = continuous, 3 = power-down, the
reset value); CTRL_REG4 0x23 = OMZ[3:2]; CTRL_REG5 0x24 = BDU[6]; OUT_X_L 0x28 ..
OUT_Z_H 0x2D little-endian. With FAST_ODR the rate follows the mode: ultra-high
performance 155 Hz, high 300 Hz, medium 560 Hz, low power 1000 Hz.

It runs in ultra-high-performance mode at 155 Hz (lowest noise); the acquisition
interpolates between consecutive readings at each IMU sample's time.

Self-test (AN4602, ST's lis3mdl_self_test.c; the procedure in ``st_selftest``): soft
reset, +-12 gauss, 80 Hz low-power mode, continuous; the mean of 5 samples (after one
dropped) without and with CTRL_REG1's ST bit (60 ms to settle); the difference must be
1-3 gauss on X and Y, 0.1-1 gauss on Z.
Reported in gauss, the datasheet's unit for these limits (1 gauss = 100 uT).
"""

from __future__ import annotations

import contextlib

import numpy as np
import numpy.typing as npt

from fsqd.imu.bus import I2CBus
from fsqd.imu.driver import ChipIdError, DriverSpec, ImuSettings, at_least, register
from fsqd.imu.drivers.invensense import sleeper
from fsqd.imu.drivers.st_selftest import stimulus_response
from fsqd.imu.selftest import SelfTestReport, axis_results

WHO_AM_I = 0x0F
CTRL_REG1, CTRL_REG2, CTRL_REG3, CTRL_REG4, CTRL_REG5 = 0x20, 0x21, 0x22, 0x23, 0x24
STATUS_REG = 0x27
OUT_X_L = 0x28
TEMP_OUT_L, TEMP_OUT_H = 0x2E, 0x2F
SOFT_RST, REBOOT = 0x04, 0x08  # CTRL_REG2
TEMP_EN, ST = 0x80, 0x01  # CTRL_REG1
ZYXDA = 0x08
TEMP_LSB_PER_C = 8.0
OM_UHP = 0x03
FAST_ODR = 0x02
MD_CONTINUOUS, MD_POWER_DOWN = 0x00, 0x03
BDU = 0x40
FAST_ODR_HZ = {0: 1000.0, 1: 560.0, 2: 300.0, 3: 155.0}  # OM -> rate with FAST_ODR
DO_HZ = (0.625, 1.25, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
# Full scale in uT -> (FS code, LSB per gauss); 1 gauss = 100 uT.
FULL_SCALE: dict[float, int] = {400.0: 0, 800.0: 1, 1200.0: 2, 1600.0: 3}
LSB_PER_GAUSS = {0: 6842.0, 1: 3421.0, 2: 2281.0, 3: 1711.0}
RESET_POLLS, POLL_S = 50, 0.001
ST_CTRL_REG1 = 0x1C  # low-power mode, 80 Hz
ST_FS_CODE = 2  # +-12 gauss
ST_LIMITS_GAUSS = ((1.0, 3.0), (1.0, 3.0), (0.1, 1.0))
ST_WAIT_S = (0.020, 0.020, 0.060)  # after the rate, after continuous mode, after ST on


class Lis3mdl:
    name = "lis3mdl"
    who_am_i = 0x3D

    def __init__(self, bus: I2CBus, address: int, settings: ImuSettings | None = None) -> None:
        settings = settings or ImuSettings()
        self.bus = bus
        self.address = address
        self.odr_hz = FAST_ODR_HZ[OM_UHP]
        self.range_ut, self.fs_code = at_least(settings.mag_range_ut, FULL_SCALE)
        self.lsb_ut = 100.0 / LSB_PER_GAUSS[self.fs_code]
        self.sleep = sleeper(bus)

    def _check_who_am_i(self) -> None:
        found = self.bus.read_byte_data(self.address, WHO_AM_I)
        if found != self.who_am_i:
            raise ChipIdError(
                f"0x{self.address:02x}: WHO_AM_I (0x{WHO_AM_I:02X}) reads 0x{found:02X}, "
                f"expected 0x{self.who_am_i:02X} for a LIS3MDL"
            )

    def _soft_reset(self) -> None:
        self.bus.write_byte_data(self.address, CTRL_REG2, SOFT_RST)
        for _ in range(RESET_POLLS):
            if not self.bus.read_byte_data(self.address, CTRL_REG2) & SOFT_RST:
                return
            self.sleep(POLL_S)
        raise OSError(f"0x{self.address:02x}: soft reset did not complete")

    def init(self) -> None:
        self._check_who_am_i()
        self._soft_reset()
        w = self.bus.write_byte_data
        w(self.address, CTRL_REG1, OM_UHP << 5 | FAST_ODR)
        w(self.address, CTRL_REG2, self.fs_code << 5)
        w(self.address, CTRL_REG4, OM_UHP << 2)  # Z axis in the same mode
        w(self.address, CTRL_REG5, BDU)
        w(self.address, CTRL_REG3, MD_CONTINUOUS)

    def read(self) -> npt.NDArray[np.float64]:
        raw = bytes(self.bus.read_i2c_block_data(self.address, OUT_X_L, 6))
        if raw == bytes(6):
            # Exactly zero on three noisy axes: not measuring (reset by a brown-out, or
            # powered down), so the sensor must be configured again.
            raise OSError(f"0x{self.address:02x}: magnetometer reads all zero (not sampling)")
        return np.frombuffer(raw, "<i2").astype(np.float64) * self.lsb_ut

    def self_test(self) -> SelfTestReport:
        """AN4602: the field the self-test coil adds, per axis, in gauss."""
        self._check_who_am_i()
        self._soft_reset()
        w = self.bus.write_byte_data
        w(self.address, CTRL_REG5, BDU)
        w(self.address, CTRL_REG2, ST_FS_CODE << 5)
        w(self.address, CTRL_REG1, ST_CTRL_REG1)
        self.sleep(ST_WAIT_S[0])
        w(self.address, CTRL_REG3, MD_CONTINUOUS)
        self.sleep(ST_WAIT_S[1])
        response = stimulus_response(
            self.bus,
            self.address,
            self.sleep,
            status=(STATUS_REG, ZYXDA),
            out=OUT_X_L,
            period_s=1 / DO_HZ[(ST_CTRL_REG1 >> 2) & 0x07],
            stimulus=lambda on: w(self.address, CTRL_REG1, ST_CTRL_REG1 | (ST if on else 0)),
            settle_s=ST_WAIT_S[2],
        )
        w(self.address, CTRL_REG3, MD_POWER_DOWN)
        self._soft_reset()
        gauss = [lsb / LSB_PER_GAUSS[ST_FS_CODE] for lsb in response]
        return SelfTestReport(
            self.name,
            self.address,
            axis_results("mag", gauss, ST_LIMITS_GAUSS, "gauss"),
            ("AN4602: +-12 gauss, 80 Hz low-power mode",),
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.bus.write_byte_data(self.address, CTRL_REG3, MD_POWER_DOWN)


register(
    DriverSpec(
        name="lis3mdl",
        kind="mag",
        description="ST LIS3MDL magnetometer",
        addresses=(0x1C, 0x1E),
        who_am_i=(WHO_AM_I, Lis3mdl.who_am_i),
        factory=Lis3mdl,
        emulator="fsqd.imu.emulated.lis3mdl:Lis3mdlChip",
    )
)

__all__ = ["FULL_SCALE", "Lis3mdl"]

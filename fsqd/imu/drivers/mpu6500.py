"""MPU-6500 (accel + gyro) over I2C: the register map and FIFO driver the MPU-9250 builds on.

Registers (MPU-9250 register map rev 1.6; Linux drivers/iio/imu/inv_mpu6050):

- WHO_AM_I 0x75: 0x71 MPU-9250, 0x73 MPU-9255 (same AK8963), 0x70 MPU-6500,
  0x68 MPU-6050/MPU-9150 (an older register set, not supported).
- PWR_MGMT_1 0x6B (0x80 reset, 0x01 PLL clock), SMPLRT_DIV 0x19, CONFIG 0x1A (DLPF_CFG;
  FIFO_MODE bit 6 = 0: a full FIFO overwrites its oldest bytes), GYRO_CONFIG 0x1B
  (FS_SEL bits 4:3, FCHOICE_B 1:0 = 0), ACCEL_CONFIG 0x1C (FS_SEL bits 4:3),
  ACCEL_CONFIG2 0x1D (A_DLPF_CFG). With the DLPF on, ODR = 1 kHz / (1 + SMPLRT_DIV):
  100 Hz exactly (divider 9).
- FIFO_EN 0x23 (accel 0x08, gyro xyz 0x70, aux slave 0 0x01), USER_CTRL 0x6A (FIFO_EN
  0x40, I2C_MST_EN 0x20, FIFO_RST 0x04), INT_ENABLE 0x38 / INT_STATUS 0x3A (FIFO
  overflow bit 4, cleared by reading), FIFO_COUNTH 0x72 (13-bit count), FIFO_R_W 0x74.
  The FIFO holds 512 bytes: 25 frames of 20 bytes with the magnetometer, 42 without.

``Mpu6500`` leaves hooks for the magnetometer (``_decoder``, ``_init_mag``,
``_mag_self_test``) that ``fsqd.imu.drivers.mpu9250.Mpu9250`` fills in.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from fsqd.imu.bus import I2CBus
from fsqd.imu.driver import ChipIdError, DriverSpec, ImuSettings, register
from fsqd.imu.drivers.akm import AK8963
from fsqd.imu.drivers.invensense import F64, FrameDecoder, InvenSenseDriver
from fsqd.imu.drivers.invensense_selftest import (
    ST_SETTLE_S,
    average,
    judge_accel_gyro,
    trims_note,
)
from fsqd.imu.selftest import AxisResult, SelfTestReport

ADDRESSES = (0x68, 0x69)  # AD0 low / high

SELF_TEST_X_GYRO = 0x00  # factory trim codes, x y z
SELF_TEST_X_ACCEL = 0x0D
SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
ACCEL_CONFIG2 = 0x1D
FIFO_EN = 0x23
INT_PIN_CFG = 0x37
INT_ENABLE = 0x38
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
PWR_MGMT_2 = 0x6C
FIFO_COUNTH = 0x72
FIFO_R_W = 0x74
WHO_AM_I = 0x75

H_RESET = 0x80
CLKSEL_PLL = 0x01
FIFO_ACCEL = 0x08
FIFO_GYRO = 0x70
FIFO_SLV0 = 0x01
UC_FIFO_EN = 0x40
UC_I2C_MST_EN = 0x20
UC_FIFO_RST = 0x04
INT_FIFO_OFLOW = 0x10
ST_ENABLE = 0xE0  # GYRO_CONFIG X/Y/ZGYRO_Cten, ACCEL_CONFIG X/Y/ZA_ST; FS 250 dps / 2 g
ST_DLPF = 2  # CONFIG and ACCEL_CONFIG2 during the self-test: 92 / 99 Hz, 1 kHz

INTERNAL_HZ = 1000.0  # with DLPF_CFG 1..6
FIFO_BYTES = 512
# -3 dB bandwidths by DLPF_CFG (1 kHz internal rate only for 1..6)
GYRO_DLPF_HZ = {1: 184.0, 2: 92.0, 3: 41.0, 4: 20.0, 5: 10.0, 6: 5.0}
ACCEL_DLPF_HZ = {1: 218.1, 2: 99.0, 3: 44.8, 4: 21.2, 5: 10.2, 6: 5.05}
RESET_S = 0.1  # register reset and PLL start (Linux: INV_MPU6050_POWER_UP_TIME)

WHO_AM_I_NAMES = {
    0x71: "an MPU-9250",
    0x73: "an MPU-9255",
    0x70: "an MPU-6500 (no magnetometer; many boards sold as MPU-9250 carry one)",
    0x68: "an MPU-6050 or MPU-9150 (an older register set)",
    0x74: "an MPU-6515",
    0x98: "an ICM-20689",
    0x12: "an ICM-20602",
    0xEA: "not this family (0xEA at 0x00 is an ICM-20948)",
}


class Mpu6500(InvenSenseDriver):
    """The accel + gyro part; ``Mpu9250`` adds the magnetometer."""

    name = "mpu6500"
    who_am_i: tuple[int, ...] = (0x70,)
    has_mag = False
    fifo_bytes = FIFO_BYTES
    base_hz = INTERNAL_HZ
    gyro_dlpf_hz = GYRO_DLPF_HZ
    accel_dlpf_hz = ACCEL_DLPF_HZ
    fifo_r_w = FIFO_R_W

    def __init__(self, bus: I2CBus, address: int, settings: ImuSettings) -> None:
        super().__init__(bus, address, settings)
        self.mag_divider = max(0, math.ceil(self.odr_hz / AK8963.TRIGGER_MAX_HZ - 1e-9) - 1)
        self.found = ""  # the part WHO_AM_I names, e.g. "MPU-9255"
        self._master_divider = 0

    def _first_decoder(self) -> FrameDecoder:
        return self._decoder(None)

    def _decoder(self, mag_ut_per_lsb: F64 | None) -> FrameDecoder:
        return FrameDecoder(self.ranges)

    # -- registers --

    def _w(self, reg: int, value: int) -> None:
        self.bus.write_byte_data(self.address, reg, value)

    def _r(self, reg: int) -> int:
        return self.bus.read_byte_data(self.address, reg)

    def _set_divider(self, div: int) -> None:
        self._w(SMPLRT_DIV, div)
        self._master_divider = div

    def _count_bytes(self) -> int:
        hi, lo = self.bus.read_i2c_block_data(self.address, FIFO_COUNTH, 2)
        return ((hi & 0x1F) << 8) | lo

    def _overflowed(self) -> bool:
        return bool(self._r(INT_STATUS) & INT_FIFO_OFLOW)

    # -- the driver protocol --

    def check_identity(self) -> None:
        value = self._r(WHO_AM_I)
        if value in self.who_am_i:
            self.found = WHO_AM_I_NAMES[value].removeprefix("an ")
            return
        what = WHO_AM_I_NAMES.get(value, "no chip fsqd knows")
        hint = ""
        for spec_name, values in (("mpu9250", (0x71, 0x73)), ("mpu6500", (0x70,))):
            if value in values and spec_name != self.name:
                hint = f': use driver = "{spec_name}"'
        raise ChipIdError(
            f"WHO_AM_I (0x75) 0x{value:02x} at 0x{self.address:02x} is {what}, "
            f"not an {self.name.upper().replace('MPU', 'MPU-')}{hint}"
        )

    def init(self) -> None:
        self.check_identity()
        self._w(PWR_MGMT_1, H_RESET)
        self.sleep(RESET_S)
        self._w(PWR_MGMT_1, CLKSEL_PLL)
        self._w(PWR_MGMT_2, 0x00)  # every accel and gyro axis on
        self._w(USER_CTRL, 0x00)
        self._w(FIFO_EN, 0x00)
        self._w(CONFIG, self.gyro_dlpf)  # FIFO_MODE 0: overwrite the oldest when full
        self._w(GYRO_CONFIG, self.ranges.gyro_code << 3)  # FCHOICE_B 00: DLPF on
        self._w(ACCEL_CONFIG, self.ranges.accel_code << 3)
        self._w(ACCEL_CONFIG2, self.accel_dlpf)  # ACCEL_FCHOICE_B 0: DLPF on
        self._w(INT_ENABLE, INT_FIFO_OFLOW)
        master = self._init_mag()
        self._set_divider(self.divider)
        fifo_en = FIFO_ACCEL | FIFO_GYRO | (FIFO_SLV0 if self.has_mag else 0)
        self._w(FIFO_EN, fifo_en)
        self.reset_fifo(master)

    def _init_mag(self) -> int:
        """USER_CTRL bits the magnetometer needs (none here)."""
        return 0

    def reset_fifo(self, master: int | None = None) -> None:
        if master is None:
            master = UC_I2C_MST_EN if self.has_mag else 0
        self._w(USER_CTRL, master | UC_FIFO_RST)
        self._w(USER_CTRL, master | UC_FIFO_EN)
        self._r(INT_STATUS)  # clears a stale overflow flag
        self.drain.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._w(USER_CTRL, 0x00)
            self._w(PWR_MGMT_1, 0x40)  # SLEEP

    # -- self-test (fsqd.imu.drivers.invensense_selftest) --

    def self_test(self) -> SelfTestReport:
        """Accel and gyro self-test against the factory trim (and the AK8963's); leaves
        the chip reset."""
        self.check_identity()
        self._w(PWR_MGMT_1, H_RESET)
        self.sleep(RESET_S)
        self._w(PWR_MGMT_1, CLKSEL_PLL)
        self._w(PWR_MGMT_2, 0x00)
        self._set_divider(0)  # 1 kHz
        self._w(CONFIG, ST_DLPF)
        self._w(ACCEL_CONFIG2, ST_DLPF)
        self._w(GYRO_CONFIG, 0x00)  # +-250 dps
        self._w(ACCEL_CONFIG, 0x00)  # +-2 g
        self.sleep(ST_SETTLE_S)
        period = 1 / INTERNAL_HZ
        normal = average(self._outputs, self.sleep, period)
        self._w(GYRO_CONFIG, ST_ENABLE)
        self._w(ACCEL_CONFIG, ST_ENABLE)
        self.sleep(ST_SETTLE_S)
        stimulated = average(self._outputs, self.sleep, period)
        self._w(GYRO_CONFIG, 0x00)
        self._w(ACCEL_CONFIG, 0x00)
        gyro = bytes(self.bus.read_i2c_block_data(self.address, SELF_TEST_X_GYRO, 3))
        accel = bytes(self.bus.read_i2c_block_data(self.address, SELF_TEST_X_ACCEL, 3))
        axes = judge_accel_gyro(normal, stimulated, gyro, accel)
        notes = [f"{self.found} at 0x{self.address:02x}", trims_note(gyro, accel)]
        axes += self._mag_self_test(notes)
        self._w(PWR_MGMT_1, H_RESET)
        self.sleep(RESET_S)
        return SelfTestReport(self.name, self.address, tuple(axes), tuple(notes))

    def _outputs(self) -> F64:
        """ACCEL_XOUT..GYRO_ZOUT (TEMP_OUT between them skipped), LSB."""
        raw = bytes(self.bus.read_i2c_block_data(self.address, ACCEL_XOUT_H, 14))
        v = np.frombuffer(raw, ">i2").astype(np.float64)
        return np.concatenate([v[0:3], v[4:7]])

    def _mag_self_test(self, notes: list[str]) -> list[AxisResult]:
        return []


register(
    DriverSpec(
        name="mpu6500",
        kind="imu",
        description="InvenSense MPU-6500: accel + gyro, no magnetometer",
        addresses=ADDRESSES,
        who_am_i=(WHO_AM_I, 0x70),
        factory=Mpu6500,
        emulator="fsqd.imu.emulated.mpu9250:EmulatedMpu6500",
    )
)

__all__ = ["ADDRESSES", "WHO_AM_I_NAMES", "Mpu6500"]

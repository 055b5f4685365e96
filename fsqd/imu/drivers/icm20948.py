"""ICM-20948 (accel + gyro + AK09916 magnetometer) over I2C.

Registers live in four banks chosen by REG_BANK_SEL (0x7F in every bank, bank << 4);
the driver remembers the bank it selected and switches only when it must, so a FIFO
drain (all in bank 0) costs no bank writes. From the ICM-20948 datasheet (DS-000189)
and SparkFun's register map:

- bank 0: WHO_AM_I 0x00 = 0xEA, USER_CTRL 0x03 (FIFO_EN 0x40, I2C_MST_EN 0x20),
  LP_CONFIG 0x05, PWR_MGMT_1 0x06 (0x80 reset, 0x01 auto clock), PWR_MGMT_2 0x07,
  INT_ENABLE_2 0x12 / INT_STATUS_2 0x1B (FIFO overflow, cleared by reading),
  I2C_MST_STATUS 0x17, FIFO_EN_1 0x66 (aux slave 0), FIFO_EN_2 0x67 (accel 0x10, gyro
  xyz 0x0E), FIFO_RST 0x68 (hold 0x1F, release 0x00), FIFO_MODE 0x69 (0: stream, the
  oldest bytes are overwritten), FIFO_COUNTH 0x70 (13-bit count), FIFO_R_W 0x72;
- bank 2: GYRO_SMPLRT_DIV 0x00, GYRO_CONFIG_1 0x01 (DLPFCFG 5:3, FS_SEL 2:1, FCHOICE 0),
  ODR_ALIGN_EN 0x09, ACCEL_SMPLRT_DIV_1/2 0x10/0x11 (12 bits), ACCEL_CONFIG 0x14;
- bank 3: the aux I2C master (I2C_MST_CTRL 0x01, slave 0 at 0x03..0x05, slave 4 at
  0x13..0x17).

Sample rate: ODR = 1125 Hz / (1 + divider) for both sensors. The datasheet gives 1.1 kHz
for the gyro, but the chip runs at 1125 Hz (measured: pimoroni/icm20948-python#17), which
is also what InvenSense's own DMP code uses. So 100 Hz is not reachable: divider 10 gives
102.27 Hz, the nearest, and the resampler takes the stream to the model's rate.

FIFO size: 512 bytes, as the datasheet (DS-000189, section 1 and 6.9) gives it; the FIFO
count has 13 bits, and the author of the ICM20948_WE library reports 4096 bytes on his
parts. The driver takes 512: a bigger FIFO then only means it drains more often than it
must, while assuming 4096 on a 512-byte part overflows every drain the acquisition
defers (24 frames of 21 bytes are 0.23 s at 102.27 Hz; it may wait 0.95 s). So
``fifo_capacity`` is 21 frames (the head-room rule keeps three frames free).

Rate hint: bank 1 TIMEBASE_CORRECTION_PLL (0x28) holds the factory-measured error of
the chip's clock, sign and magnitude, in steps of 1/1270; InvenSense's own driver
(``inv_get_odr_in_units`` in the eMD sources) turns it into the true sample period
``nominal * 1270 / (1270 + trim)`` while the gyro runs. That is the rate the sample clock
starts from, before the measured anchors refine it.

The magnetometer is read as SparkFun's library reads it: AK09916 in continuous 100 Hz mode
(CNTL2 = 0x08), the ICM's aux I2C master (slave 0) copying its nine bytes ST1..ST2 into
EXT_SLV_SENS_DATA at every sample, and the FIFO taking them with the accel and gyro words
(21-byte frames). At 102.27 Hz about one frame in 44 finds no new measurement (ST1.DRDY
clear) and repeats the previous one: sample-and-hold, with up to 10 ms of age.
The AK09916's axes are mapped to the accel/gyro frame as (x, -y, -z).
"""

from __future__ import annotations

import contextlib

import numpy as np
import numpy.typing as npt

from fsqd.imu.bus import I2CBus
from fsqd.imu.driver import ChipIdError, DriverSpec, ImuSettings, register
from fsqd.imu.drivers.akm import AK09916, AKM_ADDRESS, UT_PER_LSB
from fsqd.imu.drivers.invensense import FrameDecoder, InvenSenseDriver
from fsqd.imu.drivers.invensense_selftest import (
    ST_SETTLE_S,
    ak09916_self_test,
    average,
    judge_accel_gyro,
    trims_note,
)
from fsqd.imu.selftest import SelfTestReport

ADDRESSES = (0x69, 0x68)  # AD0 high is the default on the Adafruit and SparkFun boards

REG_BANK_SEL = 0x7F
# bank 0
WHO_AM_I = 0x00
USER_CTRL = 0x03
LP_CONFIG = 0x05
PWR_MGMT_1 = 0x06
PWR_MGMT_2 = 0x07
INT_ENABLE_2 = 0x12
I2C_MST_STATUS = 0x17
INT_STATUS_2 = 0x1B
ACCEL_XOUT_H = 0x2D
FIFO_EN_1 = 0x66
FIFO_EN_2 = 0x67
FIFO_RST = 0x68
FIFO_MODE = 0x69
FIFO_COUNTH = 0x70
FIFO_R_W = 0x72
# bank 1
SELF_TEST_X_GYRO = 0x02  # factory trim codes, x y z
SELF_TEST_X_ACCEL = 0x0E
TIMEBASE_CORRECTION_PLL = 0x28
# bank 2
GYRO_SMPLRT_DIV = 0x00
GYRO_CONFIG_1 = 0x01
GYRO_CONFIG_2 = 0x02
ODR_ALIGN_EN = 0x09
ACCEL_SMPLRT_DIV_1 = 0x10
ACCEL_SMPLRT_DIV_2 = 0x11
ACCEL_CONFIG = 0x14
ACCEL_CONFIG_2 = 0x15
# bank 3
I2C_MST_CTRL = 0x01
I2C_MST_DELAY_CTRL = 0x02
I2C_SLV0_ADDR = 0x03
I2C_SLV0_REG = 0x04
I2C_SLV0_CTRL = 0x05
I2C_SLV4_ADDR = 0x13
I2C_SLV4_REG = 0x14
I2C_SLV4_CTRL = 0x15
I2C_SLV4_DO = 0x16
I2C_SLV4_DI = 0x17

WHO_AM_I_VALUE = 0xEA
DEVICE_RESET = 0x80
CLKSEL_AUTO = 0x01
UC_FIFO_EN = 0x40
UC_I2C_MST_EN = 0x20
UC_I2C_MST_RST = 0x02
FIFO_ACCEL = 0x10
FIFO_GYRO = 0x0E
FIFO_SLV0 = 0x01
FIFO_OVERFLOW_EN_0 = 0x01
FCHOICE = 0x01
MST_CLK_345KHZ = 0x07
MST_P_NSR = 0x10
SLV_READ = 0x80
SLV_EN = 0x80
SLV4_DONE = 0x40
SLV4_NACK = 0x10

BASE_HZ = 1125.0
FIFO_BYTES = 512  # DS-000189; see the module notes
GYRO_DLPF_HZ = {0: 196.6, 1: 151.8, 2: 119.5, 3: 51.2, 4: 23.9, 5: 11.6, 6: 5.7, 7: 361.4}
ACCEL_DLPF_HZ = {0: 246.0, 2: 111.4, 3: 50.4, 4: 23.9, 5: 11.5, 6: 5.7, 7: 473.0}
AUX_DIVIDER = 0  # the master runs at 1125 Hz while the magnetometer is set up
RESET_S = 0.1
AK_RESET_S = 0.01  # after the AK09916's soft reset
AK_PERIOD_S = 0.01  # continuous 100 Hz mode: the first measurement is ready after this
MAG_STARTS = 10  # aux master resets before an absent AK09916 is believed (SparkFun: 10)
GYRO_ST_EN = 0x38  # GYRO_CONFIG_2: X/Y/ZGYRO_CTEN
ACCEL_ST_EN = 0x1C  # ACCEL_CONFIG_2: AX/AY/AZ_ST_EN_REG
ST_DLPF = 2  # GYRO/ACCEL DLPFCFG during the self-test: 119.5 / 111.4 Hz

WHO_AM_I_NAMES = {
    0xEA: "an ICM-20948",
    0xE1: "an ICM-20649 (no magnetometer)",
    0xE0: "an ICM-20648 (no magnetometer)",
}


class Icm20948(InvenSenseDriver):
    name = "icm20948"
    has_mag = True
    fifo_bytes = FIFO_BYTES
    base_hz = BASE_HZ
    gyro_dlpf_hz = GYRO_DLPF_HZ
    accel_dlpf_hz = ACCEL_DLPF_HZ
    fifo_r_w = FIFO_R_W

    def __init__(self, bus: I2CBus, address: int, settings: ImuSettings) -> None:
        super().__init__(bus, address, settings)  # rate_hint_hz: until init() reads the trim
        self.clock_trim = 0
        self._bank: int | None = None  # None: unknown, select before the next access
        self._master_period = 1 / BASE_HZ

    def _first_decoder(self) -> FrameDecoder:
        return FrameDecoder(self.ranges, AK09916.READ_LEN, np.full(3, UT_PER_LSB), AK09916.TO_CHIP)

    # -- banked registers --

    def _select(self, bank: int) -> None:
        if self._bank != bank:
            self._bank = None  # a failed write leaves the chip's bank unknown
            self.bus.write_byte_data(self.address, REG_BANK_SEL, bank << 4)
            self._bank = bank

    def _w(self, bank: int, reg: int, value: int) -> None:
        self._select(bank)
        self.bus.write_byte_data(self.address, reg, value)

    def _r(self, bank: int, reg: int) -> int:
        self._select(bank)
        return self.bus.read_byte_data(self.address, reg)

    def _count_bytes(self) -> int:
        self._select(0)
        hi, lo = self.bus.read_i2c_block_data(self.address, FIFO_COUNTH, 2)
        return ((hi & 0x1F) << 8) | lo

    def _overflowed(self) -> bool:
        return bool(self._r(0, INT_STATUS_2) & 0x1F)

    # -- the driver protocol --

    def check_identity(self) -> None:
        self._bank = None  # after a power cycle or another program, the bank is unknown
        value = self._r(0, WHO_AM_I)
        if value == WHO_AM_I_VALUE:
            return
        what = WHO_AM_I_NAMES.get(value, "no chip fsqd knows")
        hint = ""
        if value in (0x71, 0x73, 0x70):  # an MPU's register 0 is self-test data, rarely this
            hint = ' (an MPU-9250/6500 answers WHO_AM_I at 0x75: try driver = "mpu9250")'
        raise ChipIdError(
            f"WHO_AM_I (bank 0, 0x00) 0x{value:02x} at 0x{self.address:02x} is {what}, "
            f"not an ICM-20948 (0xEA){hint}"
        )

    def init(self) -> None:
        self.check_identity()
        self._w(0, PWR_MGMT_1, DEVICE_RESET)
        self._bank = 0  # a reset selects bank 0
        self.sleep(RESET_S)
        self._w(0, PWR_MGMT_1, CLKSEL_AUTO)  # awake, best clock
        self._w(0, PWR_MGMT_2, 0x00)  # every accel and gyro axis on
        self._w(0, LP_CONFIG, 0x00)  # accel, gyro and aux master sample continuously
        self._w(0, USER_CTRL, 0x00)
        self._w(0, INT_ENABLE_2, FIFO_OVERFLOW_EN_0)
        self._w(2, GYRO_CONFIG_1, (self.gyro_dlpf << 3) | (self.ranges.gyro_code << 1) | FCHOICE)
        self._w(2, ACCEL_CONFIG, (self.accel_dlpf << 3) | (self.ranges.accel_code << 1) | FCHOICE)
        self._w(2, ODR_ALIGN_EN, 0x01)
        pll = self._r(1, TIMEBASE_CORRECTION_PLL)
        self.clock_trim = pll if pll < 0x80 else -(pll & 0x7F)
        self.rate_hint_hz = self.odr_hz * (1270 + self.clock_trim) / 1270
        self._set_divider(AUX_DIVIDER)
        self._init_mag()
        self._set_divider(self.divider)
        self.sleep(2 / self.odr_hz + AK_PERIOD_S)  # the first frame already holds a reading
        self._w(0, FIFO_EN_1, FIFO_SLV0)
        self._w(0, FIFO_EN_2, FIFO_ACCEL | FIFO_GYRO)
        self._w(0, FIFO_MODE, 0x00)
        self.reset_fifo()

    def _set_divider(self, div: int) -> None:
        self._master_period = (1 + div) / BASE_HZ  # the aux master runs once per sample
        self._w(2, GYRO_SMPLRT_DIV, div)
        self._w(2, ACCEL_SMPLRT_DIV_1, div >> 8)
        self._w(2, ACCEL_SMPLRT_DIV_2, div & 0xFF)

    def _aux(self, reg: int, value: int | None) -> int:
        """One transfer to the AK09916 through aux slave 4; returns the byte read (or 0)."""
        if value is None:
            self._w(3, I2C_SLV4_ADDR, SLV_READ | AKM_ADDRESS)
        else:
            self._w(3, I2C_SLV4_ADDR, AKM_ADDRESS)
            self._w(3, I2C_SLV4_DO, value)
        self._w(3, I2C_SLV4_REG, reg)
        self._w(3, I2C_SLV4_CTRL, SLV_EN)
        period = self._master_period
        for _ in range(10):
            self.sleep(period / 2)
            status = self._r(0, I2C_MST_STATUS)
            if status & SLV4_NACK:
                raise ChipIdError(
                    f"no AK09916 magnetometer answers behind the ICM-20948 at "
                    f"0x{self.address:02x} (aux I2C NACK at 0x{AKM_ADDRESS:02x})"
                )
            if status & SLV4_DONE:
                return self._r(3, I2C_SLV4_DI) if value is None else 0
        raise OSError(
            f"aux I2C transfer to the AK09916 did not finish within {5e3 * period:.0f} ms"
        )

    def _start_mag(self) -> None:
        """Aux master on, the AK09916 reset and identified."""
        self._w(3, I2C_MST_CTRL, MST_P_NSR | MST_CLK_345KHZ)
        self._w(3, I2C_MST_DELAY_CTRL, 0x00)
        self._w(0, USER_CTRL, UC_I2C_MST_EN)
        self._reach_mag()
        self.sleep(AK_RESET_S)
        self._identify_mag("ICM-20948", "AK09916", ("WIA2", AK09916.WIA2), AK09916.WIA2_VALUE)

    def _init_mag(self) -> None:
        self._start_mag()
        self._aux(AK09916.CNTL2, AK09916.MODE_CONT_100HZ)
        self._w(3, I2C_SLV0_ADDR, SLV_READ | AKM_ADDRESS)
        self._w(3, I2C_SLV0_REG, AK09916.READ_FROM)
        self._w(3, I2C_SLV0_CTRL, SLV_EN | AK09916.READ_LEN)

    def _reach_mag(self) -> None:
        """Soft-reset the AK09916. After a device reset the aux master sometimes reaches
        nothing until it is reset itself (SparkFun's library resets it up to 10 times), so
        a NACK is believed only after that."""
        for attempt in range(MAG_STARTS):
            try:
                self._aux(AK09916.CNTL3, AK09916.SRST)
                return
            except ChipIdError:
                if attempt == MAG_STARTS - 1:
                    raise
                self._w(0, USER_CTRL, UC_I2C_MST_EN | UC_I2C_MST_RST)
                self.sleep(AK_RESET_S)

    def reset_fifo(self) -> None:
        self._w(0, USER_CTRL, UC_I2C_MST_EN)
        self._w(0, FIFO_RST, 0x1F)
        self._w(0, FIFO_RST, 0x00)
        self._w(0, USER_CTRL, UC_I2C_MST_EN | UC_FIFO_EN)
        self._r(0, INT_STATUS_2)  # clears a stale overflow flag
        self.drain.clear()

    def close(self) -> None:
        """The AK09916 measures on its own in continuous mode: power it down first."""
        with contextlib.suppress(OSError):
            self._w(3, I2C_SLV0_CTRL, 0x00)
            self._aux(AK09916.CNTL2, AK09916.MODE_POWER_DOWN)
        with contextlib.suppress(OSError):
            self._w(0, USER_CTRL, 0x00)
            self._w(0, PWR_MGMT_1, 0x41)  # SLEEP, auto clock

    # -- self-test (fsqd.imu.drivers.invensense_selftest) --

    def self_test(self) -> SelfTestReport:
        """Accel and gyro self-test against the factory trim in bank 1, and the AK09916's;
        leaves the chip reset."""
        self.check_identity()
        self._w(0, PWR_MGMT_1, DEVICE_RESET)
        self._bank = 0
        self.sleep(RESET_S)
        self._w(0, PWR_MGMT_1, CLKSEL_AUTO)
        self._w(0, PWR_MGMT_2, 0x00)
        self._w(0, LP_CONFIG, 0x00)
        self._w(2, GYRO_CONFIG_1, (ST_DLPF << 3) | FCHOICE)  # +-250 dps
        self._w(2, ACCEL_CONFIG, (ST_DLPF << 3) | FCHOICE)  # +-2 g
        self._set_divider(0)  # 1125 Hz
        self.sleep(ST_SETTLE_S)
        period = 1 / BASE_HZ
        normal = average(self._outputs, self.sleep, period)
        self._w(2, GYRO_CONFIG_2, GYRO_ST_EN)
        self._w(2, ACCEL_CONFIG_2, ACCEL_ST_EN)
        self.sleep(ST_SETTLE_S)
        stimulated = average(self._outputs, self.sleep, period)
        self._w(2, GYRO_CONFIG_2, 0x00)
        self._w(2, ACCEL_CONFIG_2, 0x00)
        gyro = bytes(self._r(1, SELF_TEST_X_GYRO + i) for i in range(3))
        accel = bytes(self._r(1, SELF_TEST_X_ACCEL + i) for i in range(3))
        axes = judge_accel_gyro(normal, stimulated, gyro, accel)
        notes = [f"ICM-20948 at 0x{self.address:02x}", trims_note(gyro, accel)]
        self._start_mag()
        axes += ak09916_self_test(self._aux, self.sleep, notes)
        self._w(0, PWR_MGMT_1, DEVICE_RESET)
        self._bank = 0
        self.sleep(RESET_S)
        return SelfTestReport(self.name, self.address, tuple(axes), tuple(notes))

    def _outputs(self) -> npt.NDArray[np.float64]:
        """ACCEL_XOUT..GYRO_ZOUT (bank 0), LSB."""
        self._select(0)
        raw = bytes(self.bus.read_i2c_block_data(self.address, ACCEL_XOUT_H, 12))
        return np.frombuffer(raw, ">i2").astype(np.float64)


register(
    DriverSpec(
        name="icm20948",
        kind="imu",
        description="TDK InvenSense ICM-20948: accel + gyro + AK09916 magnetometer (FIFO)",
        addresses=ADDRESSES,
        who_am_i=(WHO_AM_I, WHO_AM_I_VALUE),
        who_am_i_bank=(REG_BANK_SEL, 0x00),
        factory=Icm20948,
        emulator="fsqd.imu.emulated.icm20948:EmulatedIcm20948",
    )
)

__all__ = ["ADDRESSES", "WHO_AM_I_NAMES", "Icm20948"]

"""MPU-9250 / MPU-9255: an MPU-6500 (``fsqd.imu.drivers.mpu6500``) and an AK8963
magnetometer in one package.

The magnetometer is read as the Linux driver and InvenSense's own motion driver read it:
by the MPU's aux I2C master, so its data lands in EXT_SENS_DATA and from there in the same
FIFO frame as accel and gyro, stamped by the same sample clock. Slave 0 reads ST1..ST2 (8
bytes), slave 1 then writes CNTL1 = 0x11 (16-bit single measurement), both every
``1 + I2C_MST_DLY`` samples so the AK8963 is triggered at <= 50 Hz, as Linux does
(``inv_mpu_magn_set_rate``, INV_MPU_MAGN_FREQ_HZ_MAX): a measurement takes up to 9 ms,
and at 100 Hz the next read would come 10 ms after the trigger, less the master's own
transfers and the clocks' tolerance. So at 100 Hz every second frame reads the
measurement triggered two samples (20 ms) earlier, and the frame between repeats the
same bytes: the magnetometer is sample-and-hold of its latest reading, 20-30 ms old. ST2
is checked per frame: HOFL (overflow) marks a reading invalid (the previous one is held),
BITM says whether the die measured in 16 bits (0.15 uT/LSB) or 14 (0.6 uT/LSB, after a
reset of the die), and the row is scaled by what it says. Bypass mode
(INT_PIN_CFG 0x37 bit 1, the AK8963 on the Pi's own bus at 0x0C) would need separate polls
with their own timestamps, and two MPU-9250s on one bus would both answer at 0x0C.
Setup of the AK8963 (soft reset, WIA = 0x48, fuse-ROM sensitivity ASA) goes through aux
slave 4's one-shot transfers.
"""

from __future__ import annotations

import contextlib

import numpy as np

from fsqd.imu.driver import ChipIdError, DriverSpec, register
from fsqd.imu.drivers.akm import AK8963, AKM_ADDRESS, UT_PER_LSB
from fsqd.imu.drivers.invensense import F64, FrameDecoder
from fsqd.imu.drivers.invensense_selftest import AK_MEASURE_S, ak8963_self_test
from fsqd.imu.drivers.mpu6500 import (
    ADDRESSES,
    INTERNAL_HZ,
    UC_I2C_MST_EN,
    USER_CTRL,
    WHO_AM_I,
    Mpu6500,
)
from fsqd.imu.selftest import AxisResult

I2C_MST_CTRL = 0x24
I2C_SLV0_ADDR = 0x25
I2C_SLV0_REG = 0x26
I2C_SLV0_CTRL = 0x27
I2C_SLV1_ADDR = 0x28
I2C_SLV1_REG = 0x29
I2C_SLV1_CTRL = 0x2A
I2C_SLV4_ADDR = 0x31
I2C_SLV4_REG = 0x32
I2C_SLV4_DO = 0x33
I2C_SLV4_CTRL = 0x34
I2C_SLV4_DI = 0x35
I2C_MST_STATUS = 0x36
I2C_SLV1_DO = 0x64
I2C_MST_DELAY_CTRL = 0x67

MST_WAIT_FOR_ES = 0x40
MST_CLK_400KHZ = 0x0D
SLV_READ = 0x80
SLV_EN = 0x80
SLV4_DONE = 0x40
SLV4_NACK = 0x10
DELAY_ES_SHADOW = 0x80
SLV0_DLY_EN = 0x01
SLV1_DLY_EN = 0x02

# The master runs at 1 kHz while the magnetometer is set up, so each one-shot transfer
# takes about a millisecond: a second sensor on the bus waits for this init, and a
# MPU-9250's FIFO holds only 250 ms.
AUX_RATE_DIV = 0
AK_RESET_S = 0.01  # after the AK8963's soft reset
AK_MODE_S = 0.001  # after an AK8963 mode change (the datasheet asks for 100 us)


class Mpu9250(Mpu6500):
    name = "mpu9250"
    who_am_i = (0x71, 0x73)
    has_mag = True

    def _decoder(self, mag_ut_per_lsb: F64 | None) -> FrameDecoder:
        scale = np.full(3, UT_PER_LSB) if mag_ut_per_lsb is None else mag_ut_per_lsb
        return FrameDecoder(self.ranges, AK8963.READ_LEN, scale, AK8963.TO_CHIP, bitm=True)

    # -- aux I2C master, slave 4 one-shot transfers --

    def _aux(self, reg: int, value: int | None) -> int:
        """One transfer to the AK8963 through slave 4; returns the byte read (or 0)."""
        if value is None:
            self._w(I2C_SLV4_ADDR, SLV_READ | AKM_ADDRESS)
        else:
            self._w(I2C_SLV4_ADDR, AKM_ADDRESS)
            self._w(I2C_SLV4_DO, value)
        self._w(I2C_SLV4_REG, reg)
        self._w(I2C_SLV4_CTRL, SLV_EN)
        period = (1 + self._master_divider) / INTERNAL_HZ  # one master cycle per sample
        for _ in range(10):
            self.sleep(period / 2)
            status = self._r(I2C_MST_STATUS)
            if status & SLV4_NACK:
                raise ChipIdError(
                    f"no AK8963 magnetometer answers behind the {self.found} at "
                    f"0x{self.address:02x} (aux I2C NACK at 0x{AKM_ADDRESS:02x})"
                )
            if status & SLV4_DONE:
                return self._r(I2C_SLV4_DI) if value is None else 0
        raise OSError(f"aux I2C transfer to the AK8963 did not finish within {5e3 * period:.0f} ms")

    def _start_mag(self) -> bytes:
        """Aux master on, the AK8963 reset and identified; returns its fuse-ROM ASA."""
        self._w(I2C_MST_CTRL, MST_WAIT_FOR_ES | MST_CLK_400KHZ)
        self._w(USER_CTRL, UC_I2C_MST_EN)
        self._aux(AK8963.CNTL2, AK8963.SRST)
        self.sleep(AK_RESET_S)
        self._identify_mag(self.found, "AK8963", ("WIA", AK8963.WIA), AK8963.WIA_VALUE)
        self._aux(AK8963.CNTL1, AK8963.MODE_FUSE_ROM)
        self.sleep(AK_MODE_S)
        asa = bytes(self._aux(AK8963.ASAX + i, None) for i in range(3))
        self._aux(AK8963.CNTL1, AK8963.MODE_POWER_DOWN)
        self.sleep(AK_MODE_S)
        return asa

    def _mag_self_test(self, notes: list[str]) -> list[AxisResult]:
        asa = self._start_mag()
        return ak8963_self_test(self._aux, self.sleep, asa, notes)

    def _init_mag(self) -> int:
        self._set_divider(AUX_RATE_DIV)
        asa = self._start_mag()
        self.asa = asa
        self.decoder = self._decoder(AK8963.sensitivity(asa))
        # Streaming: slave 0 reads ST1..ST2, then slave 1 starts the next measurement.
        self._w(I2C_SLV0_ADDR, SLV_READ | AKM_ADDRESS)
        self._w(I2C_SLV0_REG, AK8963.READ_FROM)
        self._w(I2C_SLV0_CTRL, SLV_EN | AK8963.READ_LEN)
        self._w(I2C_SLV1_ADDR, AKM_ADDRESS)
        self._w(I2C_SLV1_REG, AK8963.CNTL1)
        self._w(I2C_SLV1_DO, AK8963.BIT_16 | AK8963.MODE_SINGLE)
        self._w(I2C_SLV1_CTRL, SLV_EN | 1)
        self._w(I2C_SLV4_CTRL, self.mag_divider)  # I2C_MST_DLY, slave 4 itself off
        self._w(I2C_MST_DELAY_CTRL, DELAY_ES_SHADOW | SLV0_DLY_EN | SLV1_DLY_EN)
        # Let two master cycles pass so the first FIFO frame already holds a reading.
        self._set_divider(self.divider)
        self.sleep(max(2 * (1 + self.mag_divider) / self.odr_hz, 2 * AK_MEASURE_S))
        return UC_I2C_MST_EN

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._w(I2C_SLV1_CTRL, 0x00)  # stop triggering measurements
        super().close()


register(
    DriverSpec(
        name="mpu9250",
        kind="imu",
        description="InvenSense MPU-9250/9255: accel + gyro + AK8963 magnetometer (FIFO)",
        addresses=ADDRESSES,
        who_am_i=(WHO_AM_I, 0x71),
        factory=Mpu9250,
        emulator="fsqd.imu.emulated.mpu9250:EmulatedMpu9250",
    )
)
register(
    DriverSpec(
        name="mpu9255",
        kind="imu",
        description="InvenSense MPU-9255: an MPU-9250 that answers WHO_AM_I 0x73",
        addresses=ADDRESSES,
        who_am_i=(WHO_AM_I, 0x73),
        factory=Mpu9250,
        emulator="fsqd.imu.emulated.mpu9250:EmulatedMpu9255",
    )
)

__all__ = ["Mpu9250"]

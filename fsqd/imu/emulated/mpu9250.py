"""Emulated MPU-6500 and MPU-9250 (an MPU-6500 with an AK8963 behind its aux I2C master).

Power-on state as the MPU-9250 register map gives it: every register 0x00 except
PWR_MGMT_1 = 0x01 (awake) and WHO_AM_I (0x70 / 0x71). The sample clock runs while the
chip is awake (from the first write to PWR_MGMT_1, SMPLRT_DIV, CONFIG or GYRO_CONFIG on:
an untouched emulated chip costs nothing), at 1 kHz / (1 + SMPLRT_DIV) when the DLPF is
on (DLPF_CFG 1..6, FCHOICE_B 0), 8 kHz with DLPF_CFG 0 or 7 and 32 kHz with FCHOICE_B
set; every sample
runs the aux master (when I2C_MST_EN) and then appends one frame to the 512-byte FIFO
(when USER_CTRL.FIFO_EN) built from FIFO_EN in register order: accel, temperature, gyro
x/y/z, EXT_SENS_DATA of slaves 0 and 1. A full FIFO overwrites its oldest bytes
(CONFIG.FIFO_MODE 0) and sets INT_STATUS.FIFO_OFLOW_INT (bit 4) if INT_ENABLE bit 4 is
set; INT_STATUS and I2C_MST_STATUS clear when read. H_RESET (PWR_MGMT_1 bit 7) restores
the MPU's registers but not the AK8963, which is another die; a power cycle resets both.

Self-test: the factory trim codes sit in SELF_TEST_X/Y/Z_GYRO (0x00..0x02) and
SELF_TEST_X/Y/Z_ACCEL (0x0D..0x0F) (``self_test_trim``, gyro x, y, z then accel x, y, z;
0 means no trim, as on parts whose OTP was never written); GYRO_CONFIG bits 7:5
(X/Y/ZGYRO_Cten) and ACCEL_CONFIG bits 7:5 (X/Y/ZA_ST) add the response they promise
(``fsqd.imu.emulated.invensense``), ``self_test_fault`` scales it per axis ("accel_x",
.., "gyro_z", "mag_x", .. for the AK8963's self-test) to make a failing chip.
TEMP_OUT (0x41) reads ``temperature_c``; the AK8963 measures for ``mag_measure_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

import numpy as np

from fsqd.imu.emulated.aux_master import AuxLayout
from fsqd.imu.emulated.chip import F64
from fsqd.imu.emulated.invensense import (
    ChipOptions,
    EmulatedAk,
    InvenSenseChip,
    accel_codes,
    be_bytes,
    frames_from,
    gyro_codes,
    temp_code,
)

SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
FIFO_EN = 0x23
I2C_SLV4_CTRL = 0x34
I2C_SLV4_DI = 0x35
I2C_MST_STATUS = 0x36
INT_PIN_CFG = 0x37
INT_ENABLE = 0x38
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
TEMP_OUT_H = 0x41
GYRO_XOUT_H = 0x43
EXT_SENS_DATA_00 = 0x49
I2C_MST_DELAY_CTRL = 0x67
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
FIFO_COUNTH = 0x72
FIFO_COUNTL = 0x73
FIFO_R_W = 0x74
WHO_AM_I = 0x75
EXT_LEN = 24
AUX_LAYOUT = AuxLayout(
    slaves=tuple((0x25 + 3 * s, 0x26 + 3 * s, 0x27 + 3 * s, 0x63 + s) for s in range(4)),
    slv4=(0x31, 0x32, I2C_SLV4_CTRL, 0x33),
    slv4_di=I2C_SLV4_DI,
    delay_ctrl=I2C_MST_DELAY_CTRL,
    ext=EXT_SENS_DATA_00,
    ext_len=EXT_LEN,
    status=I2C_MST_STATUS,
)
READ_ONLY = frozenset({WHO_AM_I, INT_STATUS, I2C_MST_STATUS, FIFO_COUNTH, FIFO_COUNTL})
READ_CLEAR = frozenset({INT_STATUS, I2C_MST_STATUS})


class EmulatedMpu6500(InvenSenseChip):
    who_am_i_register = WHO_AM_I
    who_am_i_value = 0x70
    fifo_size = 512
    with_ak = False

    def __init__(
        self,
        address: int,
        *,
        asa: tuple[int, int, int] = (0xB0, 0xB4, 0xA6),
        **options: Unpack[ChipOptions],
    ) -> None:
        self.asa = asa  # the AK8963's factory sensitivity adjustment (Fuse ROM)
        super().__init__(address, fifo_bytes=self.fifo_size, **options)

    def make_ak(
        self, oscillator_error: float, measure_s: float, fault: str | Mapping[str, float] | None
    ) -> EmulatedAk | None:
        if not self.with_ak:
            return None
        return EmulatedAk(
            "ak8963",
            asa=self.asa,
            oscillator_error=oscillator_error,
            measure_s=measure_s,
            self_test_fault=fault,
        )

    # -- state --

    def reset(self) -> None:
        super().reset()
        self.registers[PWR_MGMT_1] = 0x01
        trim = self.self_test.trim
        self.registers[0x00:0x03] = bytes(trim[:3])  # SELF_TEST_X/Y/Z_GYRO
        self.registers[0x0D:0x10] = bytes(trim[3:])  # SELF_TEST_X/Y/Z_ACCEL
        self.fifo.clear()
        self.master.reset()
        # Awake, but the sample clock starts with the first configuration write: until
        # then nothing but the output registers could show samples, and a chip left
        # untouched would otherwise pile up 8000 simulated samples a second.
        self._nominal = 0.0

    def nominal_rate(self) -> float:
        r = self.registers
        if r[GYRO_CONFIG] & 0x03:
            return 32000.0
        if r[CONFIG] & 0x07 in (0, 7):
            return 8000.0
        return 1000.0 / (1 + r[SMPLRT_DIV])

    def asleep(self) -> bool:
        return bool(self.registers[PWR_MGMT_1] & 0x40)  # SLEEP

    # -- bus side --

    def at_fifo_port(self, reg: int) -> bool:
        return reg == FIFO_R_W

    def on_read(self, reg: int) -> int:
        r = self.registers
        if reg in (FIFO_COUNTH, FIFO_COUNTL):
            return self.fifo_count_byte(reg == FIFO_COUNTH)
        value = r[reg]
        if reg in READ_CLEAR:
            r[reg] = 0
        return value

    def on_write(self, reg: int, value: int) -> None:
        r = self.registers
        if reg in READ_ONLY or reg == FIFO_R_W:
            return
        if reg == PWR_MGMT_1 and value & 0x80:
            self.reset()
            return
        if reg == USER_CTRL:
            if value & 0x04:  # FIFO_RST
                self.fifo.clear()
            if value & 0x02:  # I2C_MST_RST
                self.master.reset()
            r[reg] = value & 0xF8  # the reset bits clear themselves
            return
        r[reg] = value
        if reg in (PWR_MGMT_1, SMPLRT_DIV, CONFIG, GYRO_CONFIG):
            self._retime()

    # -- bypass: the magnetometer on the host bus --

    def bypass_active(self) -> bool:
        return bool(self.registers[INT_PIN_CFG] & 0x02) and not self.registers[USER_CTRL] & 0x20

    # -- sampling --

    def accept(self, x: F64) -> None:
        self._field = x[-1, 6:9].copy()
        r = self.registers
        n = len(x)
        y = self.self_test.add(x, r[ACCEL_CONFIG] >> 5, r[GYRO_CONFIG] >> 5)
        acc = accel_codes(y[:, 0:3], (r[ACCEL_CONFIG] >> 3) & 3)
        gyr = gyro_codes(y[:, 3:6], (r[GYRO_CONFIG] >> 3) & 3)
        temp = temp_code(self.temperature_c)
        r[ACCEL_XOUT_H : ACCEL_XOUT_H + 6] = acc[-1].astype(">i2").tobytes()
        r[TEMP_OUT_H : TEMP_OUT_H + 2] = temp
        r[GYRO_XOUT_H : GYRO_XOUT_H + 6] = gyr[-1].astype(">i2").tobytes()
        ext = self._run_master(x) if r[USER_CTRL] & 0x20 else None
        if not r[USER_CTRL] & 0x40:
            return
        if ext is None:
            ext = np.tile(
                np.frombuffer(r[EXT_SENS_DATA_00 : EXT_SENS_DATA_00 + EXT_LEN], np.uint8), (n, 1)
            )
        en = r[FIFO_EN]
        cols = []
        if en & 0x08:
            cols.append(be_bytes(acc))
        if en & 0x80:
            cols.append(np.tile(np.frombuffer(temp, np.uint8), (n, 1)))
        g = be_bytes(gyr)
        for bit, axis in ((0x40, 0), (0x20, 1), (0x10, 2)):
            if en & bit:
                cols.append(g[:, 2 * axis : 2 * axis + 2])
        len0 = r[0x27] & 0x0F if r[0x27] & 0x80 and r[0x25] & 0x80 else 0
        len1 = r[0x2A] & 0x0F if r[0x2A] & 0x80 and r[0x28] & 0x80 else 0
        if en & 0x01:
            cols.append(ext[:, :len0])
        if en & 0x02:
            cols.append(ext[:, len0 : len0 + len1])
        if not cols:
            return
        self.frames += n
        if self.fifo.push(frames_from(cols), snapshot=bool(r[CONFIG] & 0x40)):
            self.overflows += 1
            if r[INT_ENABLE] & 0x10:
                r[INT_STATUS] |= 0x10

    def _run_master(self, x: F64) -> np.ndarray:
        r = self.registers
        n = len(x)
        first = self.produced - n
        rows = np.zeros((n, EXT_LEN), np.uint8)
        for i in range(n):
            ext = self.master.cycle_on(self.sample_time(first + i), x[i, 6:9], r, r, AUX_LAYOUT)
            rows[i] = np.frombuffer(bytes(ext), np.uint8)
        return rows


class EmulatedMpu9250(EmulatedMpu6500):
    who_am_i_value = 0x71
    with_ak = True


class EmulatedMpu9255(EmulatedMpu9250):
    who_am_i_value = 0x73


__all__ = ["EmulatedMpu6500", "EmulatedMpu9250", "EmulatedMpu9255"]

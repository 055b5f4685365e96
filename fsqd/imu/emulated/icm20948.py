"""Emulated ICM-20948 with its AK09916 behind the aux I2C master.

Four register banks of 128 bytes; REG_BANK_SEL (0x7F, bank << 4) is reachable from every
bank and a device reset selects bank 0. Power-on values from the datasheet: PWR_MGMT_1 =
0x41 (asleep), LP_CONFIG = 0x40, GYRO_CONFIG_1 = ACCEL_CONFIG = 0x01, WHO_AM_I = 0xEA.

The sample clock runs while the chip is awake, at 1125 Hz / (1 + GYRO_SMPLRT_DIV) with
GYRO_FCHOICE set (9 kHz without); accel and gyro are taken at the same instants (what
ODR_ALIGN_EN with equal dividers gives; unequal dividers are not modelled). Each sample
appends a frame to the FIFO (when USER_CTRL.FIFO_EN and FIFO_RST is released) in
register order: accel (FIFO_EN_2 bit 4), gyro x/y/z (bits 1-3), temperature (bit 0),
EXT_SLV_SENS_DATA of slaves 0-3 (FIFO_EN_1). The FIFO holds 512 bytes, as the datasheet
says (``fifo_bytes`` for a larger part); in stream mode (FIFO_MODE 0) a full FIFO drops
its oldest bytes and sets INT_STATUS_2 bit 0 if INT_ENABLE_2 bit 0 is set; INT_STATUS_2
and I2C_MST_STATUS clear when read. Bank 1's TIMEBASE_CORRECTION_PLL holds the emulated
oscillator's error as the factory trim does (sign-magnitude, 1/1270 steps).

The aux I2C master (USER_CTRL.I2C_MST_EN, chip awake) runs on its own clock when
LP_CONFIG.I2C_MST_CYCLE is set (the reset value): 1125 Hz / 2^I2C_MST_ODR_CONFIG[3:0]
(bank 3, 0x00; the datasheet's "1.1 kHz" is the chip's 1125 Hz base, and SparkFun saw the
aux bus follow this register with the gyro running). With I2C_MST_CYCLE clear it runs
once per gyro sample. Either way its cycles are interleaved in time with the samples, so
a frame carries what the master read last.

Self-test: bank 1 SELF_TEST_X/Y/Z_GYRO (0x02..0x04) and SELF_TEST_X/Y/Z_ACCEL
(0x0E..0x10) hold the factory trim (``self_test_trim``); bank 2 GYRO_CONFIG_2 bits 5:3
(X/Y/ZGYRO_CTEN) and ACCEL_CONFIG_2 bits 4:2 (AX/AY/AZ_ST_EN_REG) add the response.
TEMP_OUT (0x39) reads ``temperature_c``.
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

REG_BANK_SEL = 0x7F
# bank 0
WHO_AM_I = 0x00
USER_CTRL = 0x03
LP_CONFIG = 0x05
PWR_MGMT_1 = 0x06
INT_PIN_CFG = 0x0F
INT_ENABLE_2 = 0x12
I2C_MST_STATUS = 0x17
INT_STATUS_2 = 0x1B
ACCEL_XOUT_H = 0x2D
GYRO_XOUT_H = 0x33
TEMP_OUT_H = 0x39
EXT_SLV_SENS_DATA_00 = 0x3B
FIFO_EN_1 = 0x66
FIFO_EN_2 = 0x67
FIFO_RST = 0x68
FIFO_MODE = 0x69
FIFO_COUNTH = 0x70
FIFO_COUNTL = 0x71
FIFO_R_W = 0x72
# bank 1
TIMEBASE_CORRECTION_PLL = 0x28
# bank 2
GYRO_SMPLRT_DIV = 0x00
GYRO_CONFIG_1 = 0x01
GYRO_CONFIG_2 = 0x02
ACCEL_CONFIG = 0x14
ACCEL_CONFIG_2 = 0x15
# bank 3
I2C_MST_ODR_CONFIG = 0x00
I2C_MST_DELAY_CTRL = 0x02
I2C_SLV4_CTRL = 0x15
I2C_SLV4_DI = 0x17

EXT_LEN = 24
AUX_LAYOUT = AuxLayout(
    slaves=tuple((0x03 + 4 * s, 0x04 + 4 * s, 0x05 + 4 * s, 0x06 + 4 * s) for s in range(4)),
    slv4=(0x13, 0x14, I2C_SLV4_CTRL, 0x16),
    slv4_di=I2C_SLV4_DI,
    delay_ctrl=I2C_MST_DELAY_CTRL,
    ext=EXT_SLV_SENS_DATA_00,
    ext_len=EXT_LEN,
    status=I2C_MST_STATUS,
)  # bank 3 (slaves), bank 0 (EXT_SLV_SENS_DATA, I2C_MST_STATUS)
READ_ONLY_0 = frozenset({WHO_AM_I, I2C_MST_STATUS, INT_STATUS_2, FIFO_COUNTH, FIFO_COUNTL})
READ_CLEAR_0 = frozenset({I2C_MST_STATUS, INT_STATUS_2, 0x19, 0x1A, 0x1C})


class EmulatedIcm20948(InvenSenseChip):
    who_am_i_register = WHO_AM_I
    who_am_i_value = 0xEA

    def __init__(
        self,
        address: int,
        *,
        stuck_aux_after_reset: bool = False,
        fifo_bytes: int = 512,
        **options: Unpack[ChipOptions],
    ) -> None:
        # A fault seen on real boards (SparkFun's library works around it): after a
        # device reset the aux master reaches nothing until it is reset itself.
        self.stuck_aux_after_reset = stuck_aux_after_reset
        self.banks = [bytearray(128) for _ in range(4)]
        self.bank = 0
        self._mst_period = 0.0  # own-clock master cycle period (0: on gyro samples, or off)
        self._mst_next = 0.0  # UNIX time of its next cycle
        self.bank_writes = 0
        self.banked_writes: list[tuple[int, int, int]] = []  # (bank, register, value)
        super().__init__(address, fifo_bytes=fifo_bytes, **options)

    def make_ak(
        self, oscillator_error: float, measure_s: float, fault: str | Mapping[str, float] | None
    ) -> EmulatedAk:
        return EmulatedAk(
            "ak09916", oscillator_error=oscillator_error, measure_s=measure_s, self_test_fault=fault
        )

    # -- state --

    def reset(self) -> None:
        super().reset()
        for b in self.banks:
            b[:] = bytes(128)
        self.bank = 0
        b0, b2 = self.banks[0], self.banks[2]
        b0[WHO_AM_I] = self.who_am_i
        b0[PWR_MGMT_1] = 0x41
        b0[LP_CONFIG] = 0x40
        b2[GYRO_CONFIG_1] = 0x01
        b2[ACCEL_CONFIG] = 0x01
        # factory clock trim: the oscillator's error in steps of 1/1270, sign-magnitude
        trim = min(127, round(abs(self.oscillator_error) * 1270))
        self.banks[1][TIMEBASE_CORRECTION_PLL] = trim | (0x80 if self.oscillator_error < 0 else 0)
        st = self.self_test.trim
        self.banks[1][0x02:0x05] = bytes(st[:3])  # SELF_TEST_X/Y/Z_GYRO
        self.banks[1][0x0E:0x11] = bytes(st[3:])  # SELF_TEST_X/Y/Z_ACCEL
        self.fifo.clear()
        self.master.reset()
        self.master.stuck = self.stuck_aux_after_reset
        self._nominal = 0.0
        self._mst_period = 0.0
        self._retime()

    def nominal_rate(self) -> float:
        b2 = self.banks[2]
        if not b2[GYRO_CONFIG_1] & 0x01:
            return 9000.0
        return 1125.0 / (1 + b2[GYRO_SMPLRT_DIV])

    def asleep(self) -> bool:
        return bool(self.banks[0][PWR_MGMT_1] & 0x40)  # SLEEP

    def reg(self, bank: int, reg: int) -> int:
        """A register's value without the side effects of a bus read (for tests)."""
        return self.banks[bank][reg]

    # -- bus side --

    def next_register(self, reg: int) -> int:
        return (reg + 1) & 0x7F

    def at_fifo_port(self, reg: int) -> bool:
        return reg == FIFO_R_W and self.bank == 0

    def on_read(self, reg: int) -> int:
        if reg == REG_BANK_SEL:
            return self.bank << 4
        regs = self.banks[self.bank]
        if self.bank == 0:
            if reg in (FIFO_COUNTH, FIFO_COUNTL):
                return self.fifo_count_byte(reg == FIFO_COUNTH)
            if reg in READ_CLEAR_0:
                value = regs[reg]
                regs[reg] = 0
                return value
        return regs[reg & 0x7F]

    def written_in(self, bank: int, reg: int) -> list[int]:
        """Every value written to ``reg`` of ``bank``, in order."""
        return [v for b, r, v in self.banked_writes if (b, r) == (bank, reg)]

    def on_write(self, reg: int, value: int) -> None:
        self.banked_writes.append((self.bank, reg, value))
        if reg == REG_BANK_SEL:
            self.bank = (value >> 4) & 0x03
            self.bank_writes += 1
            return
        reg &= 0x7F
        regs = self.banks[self.bank]
        if self.bank == 0:
            if reg in READ_ONLY_0 or reg == FIFO_R_W:
                return
            if reg == PWR_MGMT_1 and value & 0x80:  # DEVICE_RESET
                self.reset()
                return
            if reg == USER_CTRL:
                if value & 0x02:  # I2C_MST_RST
                    self.master.reset()
                regs[reg] = value & 0xF1
                self._master_clock()
                return
            regs[reg] = value
            if reg == FIFO_RST and value & 0x1F:
                self.fifo.clear()
            if reg == PWR_MGMT_1:
                self._retime()
            if reg in (PWR_MGMT_1, LP_CONFIG):
                self._master_clock()
            return
        regs[reg] = value
        if self.bank == 2 and reg in (GYRO_SMPLRT_DIV, GYRO_CONFIG_1):
            self._retime()
        if self.bank == 3 and reg == I2C_MST_ODR_CONFIG:
            self._master_clock()

    # -- bypass: the magnetometer on the host bus --

    def bypass_active(self) -> bool:
        return bool(self.banks[0][INT_PIN_CFG] & 0x02) and not self.banks[0][USER_CTRL] & 0x20

    # -- the aux master's clock --

    def _master_clock(self) -> None:
        """(Re)start the master's own clock when it runs duty-cycled, stop it otherwise."""
        b0 = self.banks[0]
        own = not self.asleep() and bool(b0[USER_CTRL] & 0x20) and bool(b0[LP_CONFIG] & 0x40)
        if not own:
            self._mst_period = 0.0
            return
        rate = (
            1125.0 * (1.0 + self.oscillator_error) / 2 ** (self.banks[3][I2C_MST_ODR_CONFIG] & 0x0F)
        )
        if rate != (1.0 / self._mst_period if self._mst_period else 0.0):
            self._mst_period = 1.0 / rate
            self._mst_next = self.clock.now() + self.clock.epoch_offset + self._mst_period

    def _own_cycles(self, until: float) -> None:
        """Every own-clock master cycle due by ``until`` (UNIX time), on the newest field."""
        while self._mst_period and self._mst_next <= until:
            self._master_cycle(self._mst_next, self._field)
            self._mst_next += self._mst_period

    def advance(self) -> None:
        super().advance()  # samples, and the master cycles between them
        if self._mst_period:
            self._own_cycles(self.clock.now() + self.clock.epoch_offset)

    def _master_cycle(self, t: float, field: F64) -> None:
        self.master.cycle_on(t, field, self.banks[3], self.banks[0], AUX_LAYOUT)

    # -- sampling --

    def accept(self, x: F64) -> None:
        b0, b2 = self.banks[0], self.banks[2]
        n = len(x)
        y = self.self_test.add(x, b2[ACCEL_CONFIG_2] >> 2, b2[GYRO_CONFIG_2] >> 3)
        acc = accel_codes(y[:, 0:3], (b2[ACCEL_CONFIG] >> 1) & 3)
        gyr = gyro_codes(y[:, 3:6], (b2[GYRO_CONFIG_1] >> 1) & 3)
        temp = temp_code(self.temperature_c) if not b0[PWR_MGMT_1] & 0x08 else bytes(2)
        b0[ACCEL_XOUT_H : ACCEL_XOUT_H + 6] = acc[-1].astype(">i2").tobytes()
        b0[GYRO_XOUT_H : GYRO_XOUT_H + 6] = gyr[-1].astype(">i2").tobytes()
        b0[TEMP_OUT_H : TEMP_OUT_H + 2] = temp
        lo = EXT_SLV_SENS_DATA_00
        if self._mst_period or b0[USER_CTRL] & 0x20:
            ext = np.zeros((n, EXT_LEN), np.uint8)
            first = self.produced - n
            for i in range(n):
                t = self.sample_time(first + i)
                if self._mst_period:
                    self._own_cycles(t)
                else:
                    self._master_cycle(t, x[i, 6:9])
                self._field = x[i, 6:9].copy()
                ext[i] = np.frombuffer(bytes(b0[lo : lo + EXT_LEN]), np.uint8)
        else:
            self._field = x[-1, 6:9].copy()
            now = np.frombuffer(bytes(b0[lo : lo + EXT_LEN]), np.uint8)
            ext = np.tile(now, (n, 1))
        if not b0[USER_CTRL] & 0x40 or b0[FIFO_RST] & 0x1F:
            return
        en1, en2 = b0[FIFO_EN_1], b0[FIFO_EN_2]
        cols = []
        if en2 & 0x10:
            cols.append(be_bytes(acc))
        g = be_bytes(gyr)
        for bit, axis in ((0x02, 0), (0x04, 1), (0x08, 2)):
            if en2 & bit:
                cols.append(g[:, 2 * axis : 2 * axis + 2])
        if en2 & 0x01:
            cols.append(np.tile(np.frombuffer(temp, np.uint8), (n, 1)))
        b3 = self.banks[3]
        offset = 0
        for s in range(4):
            addr, ctrl = b3[0x03 + 4 * s], b3[0x05 + 4 * s]
            length = ctrl & 0x0F if ctrl & 0x80 and addr & 0x80 else 0
            if en1 & (1 << s):
                cols.append(ext[:, offset : offset + length])
            offset += length
        if not cols:
            return
        self.frames += n
        if self.fifo.push(frames_from(cols), snapshot=bool(b0[FIFO_MODE] & 0x01)):
            self.overflows += 1
            if b0[INT_ENABLE_2] & 0x01:
                b0[INT_STATUS_2] |= 0x01


__all__ = ["EmulatedIcm20948"]

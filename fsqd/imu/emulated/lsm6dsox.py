"""Register-level LSM6DSOX / ISM330DHCX: control registers, a 512-word tagged FIFO.

What is emulated (LSM6DSOX datasheet DS12814, AN5272; Linux st_lsm6dsx):

- WHO_AM_I; the documented reset values (PIN_CTRL = 0x3F, CTRL3_C = IF_INC, CTRL9_XL =
  0xE0, the rest 0).
- SW_RESET (CTRL3_C bit 0): the control registers back to their reset values, FIFO
  emptied, sensors off; the bit reads 1 for 50 us and writes meanwhile are lost. Not the
  trimming (INTERNAL_FREQ_FINE, the sensitivity trim) nor WHO_AM_I.
- BOOT (CTRL3_C bit 7): the trimming reloaded from the chip's own memory (undoes
  ``upset_trim()``: sensitivity a few percent off, as after ESD or a brown-out that did
  not reset the chip); 10 ms, during which the bit reads 1 and writes are lost.
- INT1: asserted by INT1_CTRL's routes (DRDY_XL, DRDY_G, BOOT, FIFO_TH, FIFO_OVR,
  FIFO_FULL), and INT2_CTRL's when CTRL4_C INT2_on_INT1 is set, while their condition
  holds (active high; H_LACTIVE is stored only). INT1 high during SW_RESET or BOOT selects
  I3C-only mode (Linux: "the device will work in I3C-only mode"): every I2C transfer
  is then NACKed (EREMOTEIO) until a power cycle.
- ODR from CTRL1_XL / CTRL2_G: 6667 Hz / 2^(10 - code) for codes 1..10; accelerometer
  code 11 is 1.6 Hz (6667 / 4096) with XL_HM_MODE set (CTRL6_C), else 12.5 Hz (6667 /
  512); codes 12-15 (11-15 for the gyro) are not allowed and leave the sensor off.
  Full scale (non-monotonic accelerometer codes).
- FIFO: batching enables in FIFO_CTRL3, bypass (0) and continuous (6) modes,
  FIFO_STATUS1/2 (DIFF_FIFO, FIFO_OVR_IA, FIFO_OVR_LATCHED cleared by reading
  FIFO_STATUS2), watermark FIFO_CTRL1/2, 7-byte words at 0x78..0x7E with address
  roll-over, TAG_CNT (the words themselves in ``tagged_fifo``), temperature words (tag
  3) at ODR_T_BATCH (FIFO_CTRL4 [5:4]).
- Bootstrap words: the first ``bootstrap_slots`` samples after a sensor is switched on
  are written to the FIFO as 0x7FFD..0x7FFF on every axis (Linux drops such words). The
  truth (``keep_truth``) leaves those slots out: it is what a driver should deliver.
- STATUS_REG XLDA / GDA / TDA, cleared by reading the matching output registers;
  OUT_TEMP (256 LSB/C, 0 at 25 C) from the die temperature; OUTX_L_G / OUTX_L_A.
- Self-test (CTRL5_C ST_XL, ST_G): a per-chip response inside the datasheet limits
  (accel 50-1700 mg, gyro at 2000 dps 150-700 dps), settling with time constants of
  15 / 20 ms (hence the datasheet's 100 ms wait), on top of the signal;
  ``self_test_fault=`` makes it fail.
- INTERNAL_FREQ_FINE carrying the oscillator error.

Not emulated: batch rates different from the ODR (both sensors are batched at the
sampling rate), the timestamp counter, embedded functions, sensor hub, the filters.
"""

from __future__ import annotations

import errno
import math
import os
from typing import Any

import numpy as np

from fsqd.imu.drivers import lsm6dsox as reg
from fsqd.imu.drivers import st_fifo
from fsqd.imu.emulated.chip import F64, EmulatedChip, SelfTestStimulus, to_codes
from fsqd.imu.emulated.tagged_fifo import TaggedFifo
from fsqd.units import G

CONTINUOUS_MODES = {reg.FIFO_MODE_CONTINUOUS}
FS_G_FROM_BITS = {0x00: 250.0, 0x04: 500.0, 0x08: 1000.0, 0x0C: 2000.0}
SW_RESET_S, BOOT_S = 50e-6, 0.010
PIN_CTRL = 0x02
# INT1_CTRL routes
INT1_DRDY_XL, INT1_DRDY_G, INT1_BOOT, INT1_FIFO_TH, INT1_FIFO_OVR, INT1_FIFO_FULL = (
    0x01,
    0x02,
    0x04,
    0x08,
    0x10,
    0x20,
)
INT2_ON_INT1 = 0x20  # CTRL4_C: INT2's signals go to INT1 too
T_BATCH_HZ = {1: 1.6, 2: 12.5, 3: 52.0}  # FIFO_CTRL4 ODR_T_BATCH
# Typical self-test responses (what a healthy part shows) and where they are drawn from.
ST_XL_G = (np.full(3, 0.6), np.full(3, 0.25), np.full(3, 1.2))  # g
ST_G_DPS = (np.full(3, 350.0), np.full(3, 220.0), np.full(3, 550.0))  # dps
READ_ONLY = {reg.WHO_AM_I, reg.STATUS_REG, reg.FIFO_STATUS1, reg.FIFO_STATUS2}
READ_ONLY |= {reg.INTERNAL_FREQ_FINE, *range(reg.OUT_TEMP_L, reg.OUTX_L_A + 6)}


def _nack() -> OSError:
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))


class Lsm6dsoxChip(EmulatedChip):
    who_am_i_value = 0x6C
    fifo_words = reg.FIFO_WORDS
    report_trim = True  # INTERNAL_FREQ_FINE tells the oscillator error (False: reads 0)

    def __init__(self, address: int, *, bootstrap_slots: int = 1, **kw: Any) -> None:
        self.bootstrap_slots = bootstrap_slots
        self.i3c_only = False
        self.bootstrap_words = 0  # words written as bootstrap markers (truth for tests)
        self._gain = np.ones(2)  # accel, gyro sensitivity trim (1 = as trimmed)
        self._on = (False, False)  # accel, gyro running
        super().__init__(address, **kw)

    # -- reset, boot, power --

    def reset(self) -> None:
        """Power-on: registers at their reset values, trimming loaded, I2C answering."""
        self.i3c_only = False
        self._gain = np.ones(2)
        self._clear_state()
        super().reset()
        self._defaults()

    def _clear_state(self) -> None:
        self.fifo = TaggedFifo(self.fifo_words)
        self._slot = 0
        self._busy_until = -math.inf  # SW_RESET or BOOT in progress
        self._booting_until = -math.inf
        self._boot_left = [0, 0]  # bootstrap samples still to write: accel, gyro
        self._temp_every = 0
        self._since_temp = 0
        self._st_xl = SelfTestStimulus(0.015)
        self._st_g = SelfTestStimulus(0.020)

    def _defaults(self) -> None:
        for r in range(0x01, 0x60):  # the control registers (not the read-only ones)
            if r not in READ_ONLY:
                self.registers[r] = 0
        self.registers[reg.STATUS_REG] = 0
        self.registers[PIN_CTRL] = 0x3F
        self.registers[reg.CTRL3_C] = reg.IF_INC
        self.registers[reg.CTRL9_XL] = reg.CTRL9_XL_DEFAULT
        self.registers[reg.INTERNAL_FREQ_FINE] = self._freq_fine()

    def _freq_fine(self) -> int:
        if not self.report_trim:
            return 0
        fine = max(-128, min(127, round(self.oscillator_error / 0.0015)))
        return fine & 0xFF

    def upset_trim(self, accel_gain: float = 1.06, gyro_gain: float = 0.95) -> None:
        """The trimming registers were upset (ESD, a brown-out that did not reset the
        chip): sensitivities off until BOOT reloads them (or a power cycle)."""
        self._gain = np.array([accel_gain, gyro_gain])

    def _software_reset(self) -> None:
        self._check_int1_at_reset()
        self.stop_sampling()
        self._clear_state()
        self._defaults()
        self._busy_until = self.clock.now() + SW_RESET_S

    def _boot(self) -> None:
        self._check_int1_at_reset()
        self._gain = np.ones(2)
        self.registers[reg.INTERNAL_FREQ_FINE] = self._freq_fine()
        self._busy_until = self._booting_until = self.clock.now() + BOOT_S

    def _check_int1_at_reset(self) -> None:
        if self.int1():
            self.i3c_only = True  # the pin strap for a pure I3C device: I2C is off

    def int1(self) -> bool:
        """The INT1 pin's level now (active high, as after reset)."""
        self.advance()
        routes = self.registers[reg.INT1_CTRL]
        if self.registers[reg.CTRL4_C] & INT2_ON_INT1:  # INT2's data-ready and FIFO routes
            routes |= self.registers[reg.INT2_CTRL] & ~INT1_BOOT
        status = self.registers[reg.STATUS_REG]
        level = len(self.fifo)
        wtm = self.registers[reg.FIFO_CTRL1] | (self.registers[reg.FIFO_CTRL2] & 0x01) << 8
        return bool(
            (routes & INT1_DRDY_XL and status & reg.XLDA)
            or (routes & INT1_DRDY_G and status & reg.GDA)
            or (routes & INT1_BOOT and self.clock.now() < self._booting_until)
            or (routes & INT1_FIFO_TH and wtm and level >= wtm)
            or (routes & INT1_FIFO_OVR and self.fifo.overrun)
            or (routes & INT1_FIFO_FULL and self.fifo.full())
        )

    def left_by_another_program(self) -> None:
        """Configure the chip as a program that did not clean up leaves it: interrupts
        on INT1 (accelerometer data ready; FIFO threshold and full on INT2, routed to
        INT1 as well), FIFO running in
        continuous mode with temperature words batched, other rates and ranges, the
        accelerometer in low-power mode, the timestamp counter on. Not recorded in
        ``writes``; advance the clock to let the FIFO fill."""
        for r, v in (
            (reg.INT1_CTRL, INT1_DRDY_XL),
            (reg.INT2_CTRL, INT1_FIFO_TH | INT1_FIFO_FULL),  # same bits on INT2_CTRL
            (reg.CTRL4_C, INT2_ON_INT1),
            (reg.FIFO_CTRL1, 64),
            (reg.FIFO_CTRL3, 0x66),
            (reg.FIFO_CTRL4, 0x30 | reg.FIFO_MODE_CONTINUOUS),
            (reg.CTRL3_C, reg.BDU | reg.IF_INC | 0x20),  # H_LACTIVE stored only
            (reg.CTRL6_C, reg.XL_HM_MODE),
            (reg.CTRL8_XL, 0x04),  # HP_SLOPE_XL_EN stored only
            (reg.CTRL10_C, 0x20),  # TIMESTAMP_EN stored only
            (reg.CTRL1_XL, 0x64),  # 416 Hz, 16 g
            (reg.CTRL2_G, 0x62),  # 416 Hz, 125 dps
        ):
            self.on_write(r, v)

    # -- bus side: I3C-only mode NACKs everything --

    def read(self, r: int, n: int) -> bytes:
        if self.i3c_only:
            raise _nack()
        return super().read(r, n)

    def write(self, r: int, data: bytes) -> None:
        if self.i3c_only:
            raise _nack()
        super().write(r, data)

    # -- configuration --

    def on_write(self, r: int, value: int) -> None:
        if self.clock.now() < self._busy_until or r in READ_ONLY:
            return  # lost: the chip is resetting or booting; or read-only
        if r == reg.CTRL3_C and value & reg.SW_RESET:
            self._software_reset()
            return
        self.registers[r] = value & ~(reg.BOOT | reg.SW_RESET) if r == reg.CTRL3_C else value
        if r == reg.CTRL3_C and value & reg.BOOT:
            self._boot()
        elif r in (reg.CTRL1_XL, reg.CTRL2_G, reg.CTRL6_C):
            self._restart_clock()
        elif r == reg.CTRL5_C:
            self._switch_self_test()
        elif r == reg.FIFO_CTRL4:
            if value & 0x07 == reg.FIFO_MODE_BYPASS:
                self.fifo.clear()
            self._restart_temperature_batch()

    def accel_hz(self) -> float:
        code = self.registers[reg.CTRL1_XL] >> 4
        if code == 11:  # 1.6 Hz in low-power mode, 12.5 Hz in high-performance mode
            return (
                reg.BASE_HZ / 4096
                if self.registers[reg.CTRL6_C] & reg.XL_HM_MODE
                else (reg.internal_rate_hz(1))
            )
        return reg.internal_rate_hz(code) if 1 <= code <= 10 else 0.0

    def gyro_hz(self) -> float:
        code = self.registers[reg.CTRL2_G] >> 4
        return reg.internal_rate_hz(code) if 1 <= code <= 10 else 0.0

    def _restart_clock(self) -> None:
        was = self._on
        accel, gyro = self.accel_hz(), self.gyro_hz()
        self._on = (accel > 0, gyro > 0)
        for i in (0, 1):
            if self._on[i] and not was[i]:  # switched on: it boots before it measures
                self._boot_left[i] = self.bootstrap_slots
        rate = max(accel, gyro)
        if rate == 0:
            self.stop_sampling()
        # The oscillator error is applied once, by the base class; the nominal rate is
        # the chip's 6667 Hz / 2^n, not the ODR's label.
        elif not math.isclose(self.sampling_rate_hz, rate * (1 + self.oscillator_error)):
            self.start_sampling(rate)
        self._restart_temperature_batch()

    def stop_sampling(self) -> None:
        self._on = (False, False)
        super().stop_sampling()

    def _restart_temperature_batch(self) -> None:
        t_hz = T_BATCH_HZ.get((self.registers[reg.FIFO_CTRL4] >> 4) & 0x03, 0.0)
        rate = self.sampling_rate_hz
        self._temp_every = max(1, round(rate / t_hz)) if t_hz and rate else 0
        self._since_temp = 0

    def _switch_self_test(self) -> None:
        st = self.registers[reg.CTRL5_C]
        now = self.clock.now() + self.clock.epoch_offset
        sign_xl = {0: 0.0, 1: 1.0, 2: -1.0}.get(st & 0x03, 0.0)
        sign_g = {0: 0.0, 1: 1.0, 3: -1.0}.get((st >> 2) & 0x03, 0.0)
        self._st_xl.switch(sign_xl * self.self_test_response(*ST_XL_G) * G, now)
        self._st_g.switch(sign_g * np.radians(self.self_test_response(*ST_G_DPS)), now)

    def accel_lsb(self) -> float:
        code = (self.registers[reg.CTRL1_XL] >> 2) & 0x03
        g = {v: k for k, v in reg.ACCEL_FS.items()}[code]
        return reg.ACCEL_MG_PER_LSB[g] * 1e-3 * G

    def gyro_lsb(self) -> float:
        bits = self.registers[reg.CTRL2_G] & 0x0F
        if bits & 0x02:
            dps = 125.0
        elif bits & 0x01 and self.who_am_i_value == 0x6B:
            dps = 4000.0
        else:
            dps = FS_G_FROM_BITS[bits & 0x0C]
        return math.radians(reg.GYRO_MDPS_PER_LSB[dps] * 1e-3)

    # -- samples --

    def accept(self, x: F64) -> None:
        n = len(x)
        k = np.arange(self.produced - n, self.produced)
        t = self.sample_time(0) + k / self.sampling_rate_hz
        accel_on, gyro_on = self._on
        acc = to_codes(x[:, 0:3] * self._gain[0] + self._st_xl.at(t), self.accel_lsb())
        gyro = to_codes(x[:, 3:6] * self._gain[1] + self._st_g.at(t), self.gyro_lsb())
        temp = round((self.die_temperature_c() - reg.TEMP_ZERO_C) * reg.TEMP_LSB_PER_C)
        r = self.registers
        r[reg.OUT_TEMP_L : reg.OUT_TEMP_L + 2] = np.int16(temp).astype("<i2").tobytes()
        r[reg.STATUS_REG] |= reg.TDA
        if gyro_on:
            r[reg.OUTX_L_G : reg.OUTX_L_G + 6] = gyro[-1].astype("<i2").tobytes()
            r[reg.STATUS_REG] |= reg.GDA
        if accel_on:
            r[reg.OUTX_L_A : reg.OUTX_L_A + 6] = acc[-1].astype("<i2").tobytes()
            r[reg.STATUS_REG] |= reg.XLDA
        # The first samples after a sensor is switched on are bootstrap markers.
        on_left = zip(self._on, self._boot_left, strict=True)
        marked = [min(n, left) if on else 0 for on, left in on_left]
        self._boot_left = [left - m for left, m in zip(self._boot_left, marked, strict=True)]
        boot = np.arange(n) < max(marked)
        if self.keep_truth and boot.any():  # the truth holds what a driver should deliver
            self.truth_t[-1] = self.truth_t[-1][~boot]
            self.truth_x[-1] = self.truth_x[-1][~boot]
        if r[reg.FIFO_CTRL4] & 0x07 not in CONTINUOUS_MODES:
            return
        bdr = r[reg.FIFO_CTRL3]
        batch_g = bool(bdr >> 4) and gyro_on
        batch_xl = bool(bdr & 0x0F) and accel_on
        for i in range(n):
            cnt = self._slot << 1
            if batch_g:
                self.fifo.push(st_fifo.TAG_GYRO, cnt, self._marker() if i < marked[1] else gyro[i])
            if batch_xl:
                self.fifo.push(st_fifo.TAG_ACCEL, cnt, self._marker() if i < marked[0] else acc[i])
            if self._temp_every:
                self._since_temp += 1
                if self._since_temp >= self._temp_every:
                    self._since_temp = 0
                    self.fifo.push(st_fifo.TAG_TEMPERATURE, cnt, np.array([temp, 0, 0], np.int16))
            self._slot = (self._slot + 1) & 0x03

    def _marker(self) -> np.ndarray:
        """0x7FFD, 0x7FFE, 0x7FFF in turn: every value Linux's check covers."""
        value = st_fifo.RESET_MARKER + self.bootstrap_words % 3
        self.bootstrap_words += 1
        return np.full(3, value, np.int16)

    # -- reads --

    def on_read(self, r: int) -> int:
        if r == reg.CTRL3_C:
            busy = self.clock.now() < self._busy_until
            booting = self.clock.now() < self._booting_until
            value = self.registers[r]
            return (
                value | (reg.BOOT if booting else 0) | (reg.SW_RESET if busy and not booting else 0)
            )
        if r == reg.FIFO_STATUS1:
            return self.fifo.status1()
        if r == reg.FIFO_STATUS2:
            return self.fifo.status2()
        if reg.FIFO_DATA_OUT_TAG <= r < reg.FIFO_DATA_OUT_TAG + st_fifo.WORD:
            return self.fifo.read(r - reg.FIFO_DATA_OUT_TAG)
        # Reading an output register takes its data-ready flag down.
        if reg.OUT_TEMP_L <= r < reg.OUTX_L_G:
            self.registers[reg.STATUS_REG] &= ~reg.TDA
        elif reg.OUTX_L_G <= r < reg.OUTX_L_A:
            self.registers[reg.STATUS_REG] &= ~reg.GDA
        elif reg.OUTX_L_A <= r < reg.OUTX_L_A + 6:
            self.registers[reg.STATUS_REG] &= ~reg.XLDA
        return self.registers[r]

    def next_register(self, r: int) -> int:
        if r == reg.FIFO_DATA_OUT_TAG + st_fifo.WORD - 1:
            return reg.FIFO_DATA_OUT_TAG  # roll-over: the next word follows
        return (r + 1) & 0xFF

    def words(self) -> np.ndarray:
        """The words in the FIFO now (7 bytes each), oldest first."""
        self.advance()
        return np.frombuffer(b"".join(self.fifo.words), np.uint8).reshape(-1, st_fifo.WORD)


class Ism330dhcxChip(Lsm6dsoxChip):
    who_am_i_value = 0x6B


__all__ = ["Ism330dhcxChip", "Lsm6dsoxChip"]

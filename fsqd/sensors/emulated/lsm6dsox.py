"""Register-level LSM6DSOX / ISM330DHCX: control registers, a 512-word tagged FIFO.

What is emulated: WHO_AM_I, software reset (CTRL3_C SW_RESET, BOOT), ODR and full
scale from CTRL1_XL / CTRL2_G (non-monotonic accelerometer codes), batching enables in
FIFO_CTRL3, FIFO modes bypass (0) and continuous (6) in FIFO_CTRL4, FIFO_STATUS1/2 with
DIFF_FIFO, FIFO_OVR_IA and the latched FIFO_OVR_LATCHED (cleared by reading
FIFO_STATUS2), the 7-byte word output at 0x78..0x7E with address roll-over, tags with
TAG_CNT, INTERNAL_FREQ_FINE carrying the oscillator error, and the output registers
(OUTX_L_G 0x22, OUTX_L_A 0x28) holding the newest sample.

Not emulated: batch rates different from the ODR (both sensors are batched at the
sampling rate), the timestamp counter, temperature, the embedded functions, sensor hub.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from fsqd.sensors import lsm6dsox as reg
from fsqd.sensors.emulated.chip import F64, EmulatedChip, to_codes
from fsqd.sensors.sim import G

OUTX_L_G, OUTX_L_A, STATUS_REG = 0x22, 0x28, 0x1E
CONTINUOUS_MODES = {reg.FIFO_MODE_CONTINUOUS}
FS_G_FROM_BITS = {0x00: 250.0, 0x04: 500.0, 0x08: 1000.0, 0x0C: 2000.0}


class Lsm6dsoxChip(EmulatedChip):
    who_am_i_value = 0x6C
    fifo_words = reg.FIFO_WORDS
    report_trim = True  # INTERNAL_FREQ_FINE tells the oscillator error (False: reads 0)

    def reset(self) -> None:
        self.fifo: deque[bytes] = deque()
        self._out = bytes(reg.WORD)
        self._slot = 0
        self._ovr = False
        self._ovr_latched = False
        self.overwritten = 0  # words the FIFO overwrote (truth for tests)
        super().reset()
        self.registers[reg.CTRL3_C] = reg.IF_INC
        self.registers[reg.INTERNAL_FREQ_FINE] = self._freq_fine()

    def _freq_fine(self) -> int:
        if not self.report_trim:
            return 0
        fine = max(-128, min(127, round(self.oscillator_error / 0.0015)))
        return fine & 0xFF

    # -- configuration --

    def on_write(self, r: int, value: int) -> None:
        if r == reg.CTRL3_C and value & (reg.SW_RESET | 0x80):
            self.reset()
            return
        if r in (reg.FIFO_STATUS1, reg.FIFO_STATUS2, reg.WHO_AM_I, reg.INTERNAL_FREQ_FINE):
            return  # read-only
        self.registers[r] = value
        if r in (reg.CTRL1_XL, reg.CTRL2_G):
            self._restart_clock()
        elif r == reg.FIFO_CTRL4 and value & 0x07 == reg.FIFO_MODE_BYPASS:
            self.fifo.clear()
            self._ovr = self._ovr_latched = False

    def _odr_code(self) -> int:
        return max(self.registers[reg.CTRL1_XL] >> 4, self.registers[reg.CTRL2_G] >> 4)

    def _restart_clock(self) -> None:
        code = self._odr_code()
        if code == 0:
            self.stop_sampling()
            return
        # The oscillator error is applied once, by the base class; the nominal rate is
        # the chip's 6667 Hz / 2^n, not the ODR's label.
        rate = reg.internal_rate_hz(min(code, 10))
        if not math.isclose(self.sampling_rate_hz, rate * (1 + self.oscillator_error)):
            self.start_sampling(rate)

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
        acc = to_codes(x[:, 0:3], self.accel_lsb())
        gyro = to_codes(x[:, 3:6], self.gyro_lsb())
        self.registers[OUTX_L_G : OUTX_L_G + 6] = gyro[-1].astype("<i2").tobytes()
        self.registers[OUTX_L_A : OUTX_L_A + 6] = acc[-1].astype("<i2").tobytes()
        self.registers[STATUS_REG] = 0x03
        if self.registers[reg.FIFO_CTRL4] & 0x07 not in CONTINUOUS_MODES:
            return
        bdr = self.registers[reg.FIFO_CTRL3]
        gyro_on = bdr >> 4 and self.registers[reg.CTRL2_G] >> 4
        accel_on = bdr & 0x0F and self.registers[reg.CTRL1_XL] >> 4
        for a, g in zip(acc, gyro, strict=True):
            cnt = self._slot << 1
            if gyro_on:
                self._push(bytes([reg.TAG_GYRO << 3 | cnt]) + g.astype("<i2").tobytes())
            if accel_on:
                self._push(bytes([reg.TAG_ACCEL << 3 | cnt]) + a.astype("<i2").tobytes())
            self._slot = (self._slot + 1) & 0x03

    def _push(self, word: bytes) -> None:
        if len(self.fifo) >= self.fifo_words:
            self.fifo.popleft()  # continuous mode: the oldest word is overwritten
            self.overwritten += 1
            self._ovr = self._ovr_latched = True
        self.fifo.append(word)

    # -- reads --

    def on_read(self, r: int) -> int:
        if r == reg.FIFO_STATUS1:
            return len(self.fifo) & 0xFF
        if r == reg.FIFO_STATUS2:
            value = (len(self.fifo) >> 8) & 0x03
            value |= reg.FIFO_OVR_IA if self._ovr else 0
            value |= reg.FIFO_FULL_IA if len(self.fifo) >= self.fifo_words else 0
            value |= reg.FIFO_OVR_LATCHED if self._ovr_latched else 0
            self._ovr_latched = False
            return value
        if r == reg.FIFO_DATA_OUT_TAG:
            self._out = self.fifo.popleft() if self.fifo else bytes(reg.WORD)
            self._ovr = False  # no longer completely full
            return self._out[0]
        if reg.FIFO_DATA_OUT_TAG < r < reg.FIFO_DATA_OUT_TAG + reg.WORD:
            return self._out[r - reg.FIFO_DATA_OUT_TAG]
        return self.registers[r]

    def next_register(self, r: int) -> int:
        if r == reg.FIFO_DATA_OUT_TAG + reg.WORD - 1:
            return reg.FIFO_DATA_OUT_TAG  # roll-over: the next word follows
        return (r + 1) & 0xFF

    def words(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.fifo), np.uint8).reshape(-1, reg.WORD)


class Ism330dhcxChip(Lsm6dsoxChip):
    who_am_i_value = 0x6B


__all__ = ["Ism330dhcxChip", "Lsm6dsoxChip"]

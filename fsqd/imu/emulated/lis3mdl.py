"""Register-level LIS3MDL: WHO_AM_I, resets, mode/rate/scale, output, temperature, self-test.

The newest sample is latched into OUT_X_L..OUT_Z_H (little-endian) and STATUS_REG's
ZYXDA bit (ZYXOR when one was overwritten unread); reading the output clears them.
Reset values (datasheet): CTRL_REG1 = 0x10 (10 Hz), CTRL_REG3 = 0x03 (power-down), the
rest 0. SOFT_RST (CTRL_REG2 bit 2) puts the control registers back to those; REBOOT
(bit 3) reloads the trimming and leaves the configuration alone; both clear themselves.
With TEMP_EN (CTRL_REG1 bit 7) TEMP_OUT_L/H hold the die temperature (8 LSB/C, 0 at
25 C). ST (CTRL_REG1 bit 0) adds the self-test coil's field (AN4602: at 12 gauss X and Y
1-3 gauss, Z 0.1-1 gauss), settling with a 12 ms time constant; ``self_test_fault=`` makes it fail.
"""

from __future__ import annotations

import numpy as np

from fsqd.imu.drivers import lis3mdl as reg
from fsqd.imu.emulated.chip import F64, EmulatedChip, SelfTestStimulus, to_codes

ZYXDA, ZYXOR = 0x08, 0x80
RESET_VALUES = {reg.CTRL_REG1: 0x10, reg.CTRL_REG2: 0x00, reg.CTRL_REG3: 0x03}
RESET_VALUES |= {reg.CTRL_REG4: 0x00, reg.CTRL_REG5: 0x00}
# The self-test field at the coil (gauss): a healthy part's typical value and spread.
ST_GAUSS = (np.array([1.8, 1.8, 0.55]), np.array([1.2, 1.2, 0.2]), np.array([2.6, 2.6, 0.85]))


class Lis3mdlChip(EmulatedChip):
    who_am_i_value = 0x3D

    def reset(self) -> None:
        self._st = SelfTestStimulus(0.012)
        super().reset()
        for r, v in RESET_VALUES.items():
            self.registers[r] = v

    def on_write(self, r: int, value: int) -> None:
        if r == reg.CTRL_REG2 and value & reg.SOFT_RST:
            self.reset()
            return
        if r in (reg.WHO_AM_I, reg.STATUS_REG) or reg.OUT_X_L <= r <= reg.TEMP_OUT_H:
            return  # read-only
        self.registers[r] = value & ~(reg.SOFT_RST | reg.REBOOT) if r == reg.CTRL_REG2 else value
        if r in (reg.CTRL_REG1, reg.CTRL_REG3):
            self._restart_clock()
        if r == reg.CTRL_REG1:
            on = value & reg.ST
            now = self.clock.now() + self.clock.epoch_offset
            self._st.switch(self.self_test_response(*ST_GAUSS) * 100.0 * on, now)

    def rate_hz(self) -> float:
        c1 = self.registers[reg.CTRL_REG1]
        if c1 & reg.FAST_ODR:
            return reg.FAST_ODR_HZ[(c1 >> 5) & 0x03]
        return reg.DO_HZ[(c1 >> 2) & 0x07]

    def _restart_clock(self) -> None:
        if self.registers[reg.CTRL_REG3] & 0x03 != reg.MD_CONTINUOUS:
            self.stop_sampling()
        elif self.sampling_rate_hz != self.rate_hz() * (1 + self.oscillator_error):
            self.start_sampling(self.rate_hz())

    def lsb_ut(self) -> float:
        return 100.0 / reg.LSB_PER_GAUSS[(self.registers[reg.CTRL_REG2] >> 5) & 0x03]

    def accept(self, x: F64) -> None:
        t = self.sample_time(self.produced - 1)
        field = x[-1:, 6:9] + self._st.at(np.array([t]))
        codes = to_codes(field, self.lsb_ut())[0]
        self.registers[reg.OUT_X_L : reg.OUT_X_L + 6] = codes.astype("<i2").tobytes()
        overrun = ZYXOR if (len(x) > 1 or self.registers[reg.STATUS_REG] & ZYXDA) else 0
        self.registers[reg.STATUS_REG] = ZYXDA | overrun
        if self.registers[reg.CTRL_REG1] & reg.TEMP_EN:
            temp = round((self.die_temperature_c() - 25.0) * reg.TEMP_LSB_PER_C)
            self.registers[reg.TEMP_OUT_L : reg.TEMP_OUT_L + 2] = (
                np.int16(temp).astype("<i2").tobytes()
            )

    def on_read(self, r: int) -> int:
        if reg.OUT_X_L <= r < reg.OUT_X_L + 6:
            self.registers[reg.STATUS_REG] = 0
        return self.registers[r]


__all__ = ["Lis3mdlChip"]

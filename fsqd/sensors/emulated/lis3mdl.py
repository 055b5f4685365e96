"""Register-level LIS3MDL: WHO_AM_I, soft reset, mode/rate/scale, output registers.

The newest sample is latched into OUT_X_L..OUT_Z_H (little-endian) and STATUS_REG's
ZYXDA bit; a reading of the output clears it. Power-on state is power-down (MD = 3).
"""

from __future__ import annotations

from fsqd.sensors import lis3mdl as reg
from fsqd.sensors.emulated.chip import F64, EmulatedChip, to_codes

ZYXDA, ZYXOR = 0x08, 0x80


class Lis3mdlChip(EmulatedChip):
    who_am_i_value = 0x3D

    def reset(self) -> None:
        super().reset()
        self.registers[reg.CTRL_REG3] = reg.MD_POWER_DOWN

    def on_write(self, r: int, value: int) -> None:
        if r == reg.CTRL_REG2 and value & (reg.SOFT_RST | 0x08):
            self.reset()
            return
        if r in (reg.WHO_AM_I, reg.STATUS_REG):
            return
        self.registers[r] = value
        if r in (reg.CTRL_REG1, reg.CTRL_REG3):
            self._restart_clock()

    def rate_hz(self) -> float:
        c1 = self.registers[reg.CTRL_REG1]
        if c1 & reg.FAST_ODR:
            return reg.FAST_ODR_HZ[(c1 >> 5) & 0x03]
        return reg.DO_HZ[(c1 >> 2) & 0x07]

    def _restart_clock(self) -> None:
        if self.registers[reg.CTRL_REG3] & 0x03 != reg.MD_CONTINUOUS:
            self.stop_sampling()
        else:
            self.start_sampling(self.rate_hz())

    def lsb_ut(self) -> float:
        return 100.0 / reg.LSB_PER_GAUSS[(self.registers[reg.CTRL_REG2] >> 5) & 0x03]

    def accept(self, x: F64) -> None:
        codes = to_codes(x[-1:, 6:9], self.lsb_ut())[0]
        self.registers[reg.OUT_X_L : reg.OUT_X_L + 6] = codes.astype("<i2").tobytes()
        overrun = ZYXOR if (len(x) > 1 or self.registers[reg.STATUS_REG] & ZYXDA) else 0
        self.registers[reg.STATUS_REG] = ZYXDA | overrun

    def on_read(self, r: int) -> int:
        if r == reg.OUT_X_L:
            self.registers[reg.STATUS_REG] = 0
        return self.registers[r]


__all__ = ["Lis3mdlChip"]

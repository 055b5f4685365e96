"""The AKM magnetometer dies inside the InvenSense 9-axis parts, at register level.

Written from the datasheets (AK8963 MS1356-E-02; AK09916 in the ICM-20948's DS-000189,
section 13), independently of the drivers:

- Registers. AK8963: WIA 0x00, ST1 0x02, HXL..HZH 0x03..0x08, ST2 0x09, CNTL1 0x0A
  (mode bits 3:0, BIT 4: 16-bit output), CNTL2 0x0B (SRST), ASTC 0x0C (SELF, bit 6),
  ASAX..ASAZ 0x10..0x12 (readable in fuse-ROM mode only). AK09916: WIA1/WIA2 0x00/0x01,
  ST1 0x10, HXL..HZH 0x11..0x16, TMPS 0x17 (dummy), ST2 0x18, CNTL2 0x31 (mode bits
  4:0), CNTL3 0x32 (SRST). The address counter wraps as the datasheets say: AK8963
  0x00..0x0C then 0x00, 0x10..0x12 then 0x10; AK09916 0x00..0x03, 0x10..0x18 then 0x00,
  0x30..0x32 then 0x30.
- Modes: power-down, single measurement, continuous (AK8963: 8 and 100 Hz; AK09916: 10,
  20, 50, 100 Hz, on the die's own oscillator), self-test (AK8963 mode 8 with ASTC.SELF;
  AK09916 mode 0x10) and fuse-ROM (AK8963). A single or self-test measurement takes
  ``measure_s`` (datasheet tSM: 7.2 ms typical, 9 ms max); until then ST1.DRDY stays clear
  and the data registers keep the previous measurement; then the die powers itself down.
  A mode written while such a measurement runs is ignored (the datasheets only say to go
  through power-down between modes).
- Output: 16-bit, 0.15 uT/LSB, range +-32760 (AK8963) / +-32752 (AK09916); the AK8963's
  14-bit output is 0.6 uT/LSB, range +-8190. Its codes are the field over the sensitivity
  adjusted by the fuse-ROM ASA: ``H = B / (0.15 * (ASA + 128) / 256)``. Magnetic overflow
  is the datasheets' sum rule: ``|X| + |Y| + |Z| >= 4912 uT`` sets ST2.HOFL (the codes are
  then clipped to the range, and wrong, as on the chip).
- ST1.DRDY and ST1.DOR clear when any data register (AK8963 HXL..HZH, AK09916 HXL..TMPS)
  or ST2 is read; reading ST1 alone clears nothing. DOR sets when a continuous
  measurement ends before the previous one was read. Data protection (continuous modes):
  once a data register is read, the registers are held until ST2 is read, and a
  measurement that ends in between is skipped (DOR). Reading ST2 ends the read.
- Self-test: the internal source's response, in sensitivity-adjusted 16-bit LSB, is
  ``SELF_TEST_LSB`` (within the datasheet limits), scaled by ``self_test_fault``; the
  external field is left out (the X/Y limits of +-200 LSB, 30 uT, leave no room for the
  Earth's field, so the chip cannot be adding it).
- A measurement holds the field at the host sample tick that triggered it (single) or at
  which it completed (continuous): the emulator knows the field only on the host's grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fsqd.imu.emulated.chip import self_test_gains

F64 = npt.NDArray[np.float64]

AK_ADDRESS = 0x0C
AK_UT_PER_LSB = 0.15
AK_SINGLE_S = 7.2e-3  # tSM, typical
AK_SINGLE_MAX_S = 9.0e-3  # tSM, maximum
OVERFLOW_SUM_UT = 4912.0
SELF_TEST_LSB = {  # sensitivity-adjusted 16-bit LSB, AK axes
    "ak8963": (32.0, -48.0, -1650.0),  # limits X, Y -200..200, Z -3200..-800
    "ak09916": (24.0, -36.0, -560.0),  # limits X, Y -200..200, Z -1000..-200
}

ST1_DRDY, ST1_DOR = 0x01, 0x02
ST2_HOFL, ST2_BITM = 0x08, 0x10


class EmulatedAk:
    """One AKM magnetometer die (``model`` "ak8963" or "ak09916") on an aux I2C bus."""

    def __init__(
        self,
        model: str,
        *,
        asa: tuple[int, int, int] = (0xB0, 0xB4, 0xA6),
        oscillator_error: float = 0.0,
        measure_s: float = AK_SINGLE_S,
        self_test_fault: str | Mapping[str, float] | None = None,
    ) -> None:
        if model == "ak8963":
            self.wia = {0x00: 0x48}
            self.st1, self.hxl, self.st2 = 0x02, 0x03, 0x09
            self.data_end = 0x08  # last register whose read starts a data read
            self.mode_reg, self.reset_reg = 0x0A, 0x0B
            # rows: AK axes; columns: the MPU-9250's accel/gyro axes (ak = R @ chip)
            self.from_chip = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
            self.continuous_hz = {0x02: 8.0, 0x06: 100.0}
            self.self_test_mode = 0x08
            self.wraps = {0x0C: 0x00, 0x12: 0x10}  # address counter: last -> first
        elif model == "ak09916":
            self.wia = {0x00: 0x48, 0x01: 0x09}
            self.st1, self.hxl, self.st2 = 0x10, 0x11, 0x18
            self.data_end = 0x17  # TMPS
            self.mode_reg, self.reset_reg = 0x31, 0x32
            self.from_chip = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
            self.continuous_hz = {0x02: 10.0, 0x04: 20.0, 0x06: 50.0, 0x08: 100.0}
            self.self_test_mode = 0x10
            self.wraps = {0x03: 0x10, 0x18: 0x00, 0x32: 0x30}
        else:
            raise ValueError(f"unknown AKM model {model!r}")
        self.model = model
        self.asa = asa
        self.oscillator_error = oscillator_error
        self.measure_s = measure_s
        gains = self_test_gains(self_test_fault)
        self.self_test_gain = np.array([gains.get(f"mag_{a}", 1.0) for a in "xyz"])
        self.regs = bytearray(256)
        self.writes: list[tuple[int, int]] = []
        self.measurements = 0  # measurements stored in the data registers
        self.triggers = 0  # single measurements started
        self.ignored = 0  # mode writes ignored during a measurement
        self.skipped = 0  # measurements lost to data protection
        self.reset()

    def reset(self) -> None:
        self.regs[:] = bytes(256)
        for reg, value in self.wia.items():
            self.regs[reg] = value
        self.mode = 0
        self.bit16 = self.model == "ak09916"
        self._done_at: float | None = None  # a single or self-test measurement running
        self._pending = np.zeros(3)  # its field, AK axes, uT
        self._next_due = math.inf  # continuous mode: next completion time
        self._reading = False  # data protection: a data read started, ST2 not read yet

    # -- the bus side (the aux master's, or the host's in bypass) --

    def next_register(self, reg: int) -> int:
        return self.wraps.get(reg, (reg + 1) & 0xFF)

    def read_block(self, reg: int, n: int) -> bytes:
        out = bytearray()
        for _ in range(n):
            out.append(self.read(reg))
            reg = self.next_register(reg)
        return bytes(out)

    def read(self, reg: int) -> int:
        if self.model == "ak8963" and 0x10 <= reg <= 0x12:
            return self.asa[reg - 0x10] if self.mode == 0x0F else 0x00
        value = self.regs[reg]
        if self.hxl <= reg <= self.data_end or reg == self.st2:
            self.regs[self.st1] &= ~(ST1_DRDY | ST1_DOR) & 0xFF
            self._reading = reg != self.st2 and self.mode in self.continuous_hz
        return value

    def write(self, reg: int, value: int, t: float, field: F64) -> None:
        self.writes.append((reg, value))
        self.tick(t, field)
        if reg == self.reset_reg:
            if value & 0x01:
                self.reset()
            return
        if self.model == "ak8963" and reg == 0x0C:  # ASTC: only SELF is writable
            self.regs[reg] = value & 0x40
            return
        if reg != self.mode_reg:
            return
        if self._done_at is not None:  # single or self-test measurement under way
            self.ignored += 1
            return
        mode = value & 0x0F if self.model == "ak8963" else value & 0x1F
        if self.model == "ak8963":
            self.bit16 = bool(value & 0x10)
        self.regs[reg] = value
        self.mode = mode
        self._next_due = math.inf
        if mode == 0x01 or mode == self.self_test_mode:
            self.triggers += mode == 0x01
            self._done_at = t + self.measure_s
            self._pending = self.from_chip @ field if mode == 0x01 else self._self_test_field()
        elif mode in self.continuous_hz:
            self._next_due = t + self.period()

    def period(self) -> float:
        return 1.0 / (self.continuous_hz[self.mode] * (1.0 + self.oscillator_error))

    def tick(self, t: float, field: F64) -> None:
        """Time passes up to ``t``; ``field`` (uT, host chip axes) is the field now."""
        if self._done_at is not None and t >= self._done_at:
            self._done_at = None
            self._store(self._pending)
            self.mode = 0x00  # back to power-down by itself
            self.regs[self.mode_reg] &= 0x10 if self.model == "ak8963" else 0x00
        if t >= self._next_due:
            done = math.floor((t - self._next_due) / self.period()) + 1
            self._next_due += done * self.period()
            if self._reading:  # data protection: this measurement is skipped
                self.skipped += 1
                self.regs[self.st1] |= ST1_DOR
                return
            self._store(self.from_chip @ field, overrun=done > 1)

    # -- measurements --

    def sensitivity(self) -> F64:
        """uT per LSB of each AK axis, as the data registers are now scaled."""
        if self.model == "ak8963":
            sens: F64 = AK_UT_PER_LSB * (np.array(self.asa, float) + 128.0) / 256.0
            return sens if self.bit16 else sens * 4.0
        return np.full(3, AK_UT_PER_LSB)

    def limit(self) -> int:
        if self.model == "ak09916":
            return 32752
        return 32760 if self.bit16 else 8190

    def _self_test_field(self) -> F64:
        """The internal source's field, uT in AK axes (AK8963: only with ASTC.SELF)."""
        if self.model == "ak8963" and not self.regs[0x0C] & 0x40:
            return np.zeros(3)
        lsb = np.array(SELF_TEST_LSB[self.model]) * self.self_test_gain
        out: F64 = lsb * AK_UT_PER_LSB
        return out

    def _store(self, ak_ut: F64, overrun: bool = False) -> None:
        hofl = float(np.abs(ak_ut).sum()) >= OVERFLOW_SUM_UT
        lim = self.limit()
        codes = np.clip(np.round(ak_ut / self.sensitivity()), -lim, lim).astype("<i2")
        self.regs[self.hxl : self.hxl + 6] = codes.tobytes()
        unread = bool(self.regs[self.st1] & ST1_DRDY)
        continuous = self.mode in self.continuous_hz
        dor = ST1_DOR if continuous and (overrun or unread) else 0
        self.regs[self.st1] = ST1_DRDY | dor
        st2 = ST2_HOFL if hofl else 0
        if self.model == "ak8963" and self.bit16:
            st2 |= ST2_BITM  # BITM mirrors the output setting
        self.regs[self.st2] = st2
        self.measurements += 1


__all__ = ["AK_ADDRESS", "AK_SINGLE_MAX_S", "AK_SINGLE_S", "SELF_TEST_LSB", "EmulatedAk"]

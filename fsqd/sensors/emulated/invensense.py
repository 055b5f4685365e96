"""Pieces both emulated InvenSense chips are made of: the AKM magnetometer die, the aux
I2C master that talks to it, and a header-less byte FIFO.

These model the chips from their datasheets, independently of the drivers: the
constants are written out again here on purpose, so a wrong register in a driver shows
up as a test failure instead of being shared by both sides.

What is modelled and what is not:

- AK8963 / AK09916: WIA, ST1 (DRDY, DOR), data registers little-endian, ST2 (HOFL; BITM
  on the AK8963), the modes power-down / single / continuous / fuse-ROM (AK8963: ASA
  readable only in fuse-ROM mode, 0x00 otherwise), soft reset. A single measurement is
  ready 7.2 ms after it is triggered; continuous mode measures every 1/rate on the
  magnetometer's own oscillator (``oscillator_error``). A measurement holds the field at
  the host sample tick that triggered it (single) or at which it completed
  (continuous): the emulator only knows the field on the host's sample grid.
- Aux master: slaves 0-3 run at every host sample, in order, those with their delay bit
  set only every ``1 + I2C_MST_DLY`` samples; reads fill EXT_SENS_DATA one after
  another; slave 4 does one transfer at the next sample, then sets I2C_SLV4_DONE (or
  I2C_SLV4_NACK for an absent address) and clears its enable bit. Not modelled: byte
  swapping and grouping (the drivers do not ask for them), the aux bus's own timing.
- Bypass: with INT_PIN_CFG.BYPASS_EN set and the aux master off, a chip connects its aux
  pins to the host bus and its magnetometer answers at 0x0C there (a ``BypassPort`` on
  the bus, shared by every InvenSense chip on it); otherwise nothing answers at 0x0C, as
  on a real board, and two chips in bypass at once collide.
- FIFO: bytes in, bytes out, no header; a full FIFO in stream mode drops its oldest
  bytes (frames tear) and sets the overflow status bit if its interrupt is enabled; in
  snapshot mode it stops taking data.
- Not modelled: the analog path (noise and bias come from the simulator), the digital
  low-pass filters (the simulator's signal is taken as already filtered), temperature.
"""

from __future__ import annotations

import errno
import math
import os
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fsqd.sensors.clock import Clock
from fsqd.sensors.emulated.chip import EmulatedChip

F64 = npt.NDArray[np.float64]

AK_ADDRESS = 0x0C
AK_UT_PER_LSB = 0.15
AK_SINGLE_S = 7.2e-3  # typical measurement time
G = 9.80665
GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)


def accel_codes(a: F64, fs_code: int) -> npt.NDArray[np.int16]:
    lsb_per_g = 16384.0 / (1 << fs_code)
    return np.clip(np.round(a / G * lsb_per_g), -32768, 32767).astype(np.int16)


def gyro_codes(w: F64, fs_code: int) -> npt.NDArray[np.int16]:
    lsb_per_dps = GYRO_LSB_PER_DPS[fs_code]
    return np.clip(np.round(np.degrees(w) * lsb_per_dps), -32768, 32767).astype(np.int16)


class EmulatedAk:
    """One AKM magnetometer die (``model`` "ak8963" or "ak09916") on an aux I2C bus."""

    def __init__(
        self,
        model: str,
        *,
        asa: tuple[int, int, int] = (0xB0, 0xB4, 0xA6),
        oscillator_error: float = 0.0,
    ) -> None:
        if model == "ak8963":
            self.wia = {0x00: 0x48}
            self.st1, self.hxl, self.st2 = 0x02, 0x03, 0x09
            self.mode_reg, self.reset_reg = 0x0A, 0x0B
            # rows: AK axes; columns: the MPU-9250's accel/gyro axes (ak = R @ chip)
            self.from_chip = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
            self.continuous_hz = {0x02: 8.0, 0x06: 100.0}
            self.limit = 32760
        elif model == "ak09916":
            self.wia = {0x00: 0x48, 0x01: 0x09}
            self.st1, self.hxl, self.st2 = 0x10, 0x11, 0x18
            self.mode_reg, self.reset_reg = 0x31, 0x32
            self.from_chip = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
            self.continuous_hz = {0x02: 10.0, 0x04: 20.0, 0x06: 50.0, 0x08: 100.0}
            self.limit = 32752
        else:
            raise ValueError(f"unknown AKM model {model!r}")
        self.model = model
        self.asa = asa
        self.oscillator_error = oscillator_error
        self.regs = bytearray(256)
        self.writes: list[tuple[int, int]] = []
        self.measurements = 0
        self.reset()

    def reset(self) -> None:
        self.regs[:] = bytes(256)
        for reg, value in self.wia.items():
            self.regs[reg] = value
        self.mode = 0
        self.bit16 = False
        self._ready_at: float | None = None  # a single measurement in progress
        self._pending = np.zeros(3)
        self._next_due = math.inf  # continuous mode: next completion time

    # -- what the aux master does --

    def read(self, reg: int) -> int:
        if self.model == "ak8963" and 0x10 <= reg <= 0x12:
            return self.asa[reg - 0x10] if self.mode == 0x0F else 0x00
        value = self.regs[reg]
        if reg == self.st2:
            self.regs[self.st1] &= ~0x03  # reading ST2 ends the read: DRDY and DOR clear
        return value

    def write(self, reg: int, value: int, t: float, field: F64) -> None:
        self.writes.append((reg, value))
        if reg == self.reset_reg:
            if value & 0x01:
                self.reset()
            return
        if reg != self.mode_reg:
            return
        mode = value & 0x0F if self.model == "ak8963" else value & 0x1F
        self.bit16 = bool(value & 0x10) if self.model == "ak8963" else True
        self.regs[reg] = value
        self.mode = mode
        self._ready_at = None
        self._next_due = math.inf
        if mode == 0x01:
            self._ready_at = t + AK_SINGLE_S
            self._pending = field.copy()
        elif mode in self.continuous_hz:
            self._next_due = t + self.period()

    def period(self) -> float:
        return 1.0 / (self.continuous_hz[self.mode] * (1.0 + self.oscillator_error))

    def tick(self, t: float, field: F64) -> None:
        """Time passes up to ``t``; ``field`` (uT, host chip axes) is the field now."""
        if self._ready_at is not None and t >= self._ready_at:
            self._latch(self._pending)
            self._ready_at = None
            self.mode = 0x00  # back to power-down after a single measurement
            self.regs[self.mode_reg] &= 0xF0
        if t >= self._next_due:
            done = math.floor((t - self._next_due) / self.period()) + 1
            self._next_due += done * self.period()
            self._latch(field, overrun=done > 1)

    def _latch(self, field: F64, overrun: bool = False) -> None:
        ak = self.from_chip @ field
        if self.model == "ak8963":
            sens = AK_UT_PER_LSB * (np.array(self.asa, float) + 128.0) / 256.0
            if not self.bit16:
                sens = sens * 4.0  # 14-bit output: 0.6 uT/LSB
        else:
            sens = np.full(3, AK_UT_PER_LSB)
        raw = np.round(ak / sens)
        hofl = bool((np.abs(raw) > self.limit).any())
        codes = np.clip(raw, -self.limit, self.limit).astype("<i2")
        self.regs[self.hxl : self.hxl + 6] = codes.tobytes()
        dor = 0x02 if overrun or self.regs[self.st1] & 0x01 else 0x00
        self.regs[self.st1] = 0x01 | dor
        st2 = 0x08 if hofl else 0x00
        if self.model == "ak8963" and self.bit16:
            st2 |= 0x10  # BITM mirrors the output setting
        self.regs[self.st2] = st2
        self.measurements += 1


class AuxMaster:
    """The aux I2C master's per-sample work, on register accessors the chip provides."""

    def __init__(self, ak: EmulatedAk | None) -> None:
        self.ak = ak
        self.cycles = 0
        self.nacks = 0
        self.resets = 0
        self.stuck = False  # a fault: every aux transfer NACKs until the master is reset

    def reset(self) -> None:
        self.cycles = 0
        self.resets += 1
        self.stuck = False

    def run(
        self,
        t: float,
        field: F64,
        *,
        slaves: list[tuple[int, int, int, int]],  # (addr, reg, ctrl, do) for slaves 0-3
        delay_mask: int,  # I2C_MST_DELAY_CTRL bits 0-3
        delay: int,  # I2C_MST_DLY
        ext: bytearray,  # EXT_SENS_DATA, filled from its start
        slv4: tuple[int, int, int, int] | None,  # (addr, reg, ctrl, do) when enabled
    ) -> tuple[int, int | None, int]:
        """One master cycle at sample time ``t``.

        Returns (status bits to OR into I2C_MST_STATUS, the byte slave 4 read or None,
        the number of EXT_SENS_DATA bytes in use).
        """
        ak = self.ak
        if ak is not None:
            ak.tick(t, field)
        status = 0
        offset = 0
        slow_turn = self.cycles % (1 + delay) == 0
        for i, (addr, reg, ctrl, do) in enumerate(slaves):
            if not ctrl & 0x80:
                continue
            length = ctrl & 0x0F
            if (delay_mask >> i) & 1 and not slow_turn:
                offset += length if addr & 0x80 else 0  # its bytes stay as they were
                continue
            if ak is None or self.stuck or (addr & 0x7F) != AK_ADDRESS:
                status |= 1 << i  # I2C_SLVi_NACK
                self.nacks += 1
                continue
            if addr & 0x80:
                for j in range(length):
                    if offset + j < len(ext):
                        ext[offset + j] = ak.read((reg + j) & 0xFF)
                offset += length
            else:
                ak.write(reg, do, t, field)
        data_in = None
        if slv4 is not None:
            addr, reg, _ctrl, do = slv4
            if ak is None or self.stuck or (addr & 0x7F) != AK_ADDRESS:
                status |= 0x10  # I2C_SLV4_NACK
                self.nacks += 1
            elif addr & 0x80:
                data_in = ak.read(reg)
            else:
                ak.write(reg, do, t, field)
            status |= 0x40  # I2C_SLV4_DONE
        self.cycles += 1
        return status, data_in, offset


class ByteFifo:
    """A header-less FIFO of ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray()
        self.dropped = 0  # bytes lost to overflow, ever

    def clear(self) -> None:
        self.data.clear()

    def push(self, frames: bytes, *, snapshot: bool) -> bool:
        """Append; True when it overflowed (stream: oldest bytes dropped; snapshot: refused)."""
        free = self.size - len(self.data)
        if len(frames) <= free:
            self.data += frames
            return False
        if snapshot:
            self.data += frames[:free]
            self.dropped += len(frames) - free
            return True
        self.data += frames
        excess = len(self.data) - self.size
        del self.data[:excess]
        self.dropped += excess
        return True

    def take(self, n: int) -> bytes:
        """The oldest ``n`` bytes; reading past the end gives 0xFF."""
        out = bytes(self.data[:n])
        del self.data[:n]
        return out + b"\xff" * (n - len(out))

    def __len__(self) -> int:
        return len(self.data)


class InvenSenseChip(EmulatedChip):
    """What the ICM-20948 and MPU-6500/9250 emulators share: the sample clock follows the
    power and rate registers, and the newest field is kept for a bypass measurement."""

    _nominal = 0.0  # the rate the sample clock runs at (0: asleep)
    _field: F64  # the newest sample's field, set by the subclass's ``accept``

    def asleep(self) -> bool:
        raise NotImplementedError

    def nominal_rate(self) -> float:
        raise NotImplementedError

    def _retime(self) -> None:
        if self.asleep():
            self.advance()
            self.stop_sampling()
            self._nominal = 0.0
            return
        rate = self.nominal_rate()
        if rate != self._nominal:
            self.start_sampling(rate)
            self._nominal = rate

    def field_now(self) -> tuple[float, F64]:
        self.advance()
        return self.clock.now() + self.clock.epoch_offset, self._field


class BypassHost(Protocol):
    ak: EmulatedAk | None

    def bypass_active(self) -> bool: ...

    def field_now(self) -> tuple[float, F64]: ...


class BypassPort(EmulatedChip):
    """Address 0x0C of the host bus: the magnetometer of whichever host is in bypass."""

    def __init__(self, hosts: list[BypassHost], clock: Clock | None = None) -> None:
        self.hosts = hosts
        super().__init__(AK_ADDRESS, clock=clock)

    def _route(self) -> tuple[EmulatedAk, float, F64]:
        live = [h for h in self.hosts if h.ak is not None and h.bypass_active()]
        if not live:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))  # nobody at 0x0C
        if len(live) > 1:  # two magnetometers drive one address
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        host = live[0]
        assert host.ak is not None
        t, field = host.field_now()
        host.ak.tick(t, field)
        return host.ak, t, field

    def read(self, reg: int, n: int) -> bytes:
        ak, _, _ = self._route()
        return bytes(ak.read((reg + i) & 0xFF) for i in range(n))

    def write(self, reg: int, data: bytes) -> None:
        ak, t, field = self._route()
        for i, value in enumerate(data):
            self.writes.append(((reg + i) & 0xFF, value))
            ak.write((reg + i) & 0xFF, value, t, field)


def frames_from(columns: list[npt.NDArray[np.uint8]]) -> bytes:
    """Concatenate per-sample byte columns (each (n, k) uint8) into frames, in order."""
    if not columns:
        return b""
    return np.concatenate(columns, axis=1).tobytes()


def be_bytes(codes: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """(n, 3) int16 -> (n, 6) uint8, big-endian words."""
    return np.ascontiguousarray(codes.astype(">i2")).view(np.uint8).reshape(len(codes), -1)


__all__ = [
    "AK_ADDRESS",
    "AuxMaster",
    "BypassHost",
    "BypassPort",
    "ByteFifo",
    "EmulatedAk",
    "accel_codes",
    "be_bytes",
    "frames_from",
    "gyro_codes",
]

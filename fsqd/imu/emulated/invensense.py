"""Pieces both emulated InvenSense chips are made of: the aux I2C master that talks to the
AKM magnetometer die (``fsqd.imu.emulated.akm``), a header-less byte FIFO, the
self-test response and the temperature sensor.

These model the chips from their datasheets, independently of the drivers: the
constants are written out again here on purpose, so a wrong register in a driver shows
up as a test failure instead of being shared by both sides.

What is modelled and what is not:

- AK8963 / AK09916: see ``fsqd.imu.emulated.akm``.
- Aux master: see ``fsqd.imu.emulated.aux_master``.
- Bypass: with INT_PIN_CFG.BYPASS_EN set and the aux master off, a chip connects its aux
  pins to the host bus and its magnetometer answers at 0x0C there (a ``BypassPort`` on
  the bus, shared by every InvenSense chip on it); otherwise nothing answers at 0x0C, as
  on a real board, and two chips in bypass at once collide.
- FIFO: bytes in, bytes out, no header; a full FIFO in stream mode drops its oldest
  bytes (frames tear) and sets the overflow status bit if its interrupt is enabled; in
  snapshot mode it stops taking data.
- Self-test: with a self-test enable bit set, that axis's output adds the response the
  factory trim code in its SELF_TEST register promises, ``2620 / 2^FS * 1.01^(code - 1)``
  LSB at FS code 0 (the InvenSense self-test procedure's formula), as a physical
  quantity (so it scales with the range), times ``self_test_fault[axis]`` (default 1).
- Temperature: TEMP_OUT (and the FIFO's temperature word) hold ``(T - 21) * 333.87``
  LSB for the chip option ``temperature_c`` (both datasheets' formula, RoomTemp_Offset 0).
- Not modelled: the analog path (noise and bias come from the simulator), the digital
  low-pass filters (the simulator's signal is taken as already filtered).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Protocol, TypedDict

import numpy as np
import numpy.typing as npt

from fsqd.clock import Clock
from fsqd.imu.emulated.akm import AK_ADDRESS, AK_SINGLE_S, EmulatedAk
from fsqd.imu.emulated.aux_master import AuxMaster
from fsqd.imu.emulated.chip import EmulatedChip, Signal, self_test_gains
from fsqd.units import G

F64 = npt.NDArray[np.float64]

GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)
TEMP_LSB_PER_C = 333.87
TEMP_ROOM_C = 21.0
ST_AXES = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z")
# Factory trim codes (SELF_TEST_X/Y/Z_GYRO, then _ACCEL): responses of about 110 dps and
# 0.46 g, well inside the procedure's limits.
TRIM_CODES = (0xA4, 0xA9, 0x9F, 0x6A, 0x6E, 0x67)


def accel_codes(a: F64, fs_code: int) -> npt.NDArray[np.int16]:
    lsb_per_g = 16384.0 / (1 << fs_code)
    return np.clip(np.round(a / G * lsb_per_g), -32768, 32767).astype(np.int16)


def gyro_codes(w: F64, fs_code: int) -> npt.NDArray[np.int16]:
    lsb_per_dps = GYRO_LSB_PER_DPS[fs_code]
    return np.clip(np.round(np.degrees(w) * lsb_per_dps), -32768, 32767).astype(np.int16)


def temp_code(celsius: float) -> bytes:
    """TEMP_OUT_H, TEMP_OUT_L for a die at ``celsius``."""
    code = int(np.clip(round((celsius - TEMP_ROOM_C) * TEMP_LSB_PER_C), -32768, 32767))
    return code.to_bytes(2, "big", signed=True)


def trim_response_lsb(code: int) -> float:
    """The self-test response a factory trim code promises, LSB at FS code 0 (0: none)."""
    return 0.0 if code == 0 else 2620.0 * 1.01 ** (code - 1)


class SelfTestResponse:
    """What the self-test enable bits add to the accel and gyro outputs, in SI units."""

    def __init__(
        self, trim: tuple[int, ...] = TRIM_CODES, fault: str | Mapping[str, float] | None = None
    ) -> None:
        if len(trim) != 6 or not all(0 <= c <= 255 for c in trim):
            raise ValueError("trim: six codes 0..255 (gyro x, y, z, accel x, y, z)")
        self.trim = trim
        gains = self_test_gains(fault)
        gain = [gains.get(a, 1.0) for a in ST_AXES]
        # A code of 0 (trim never written) still leaves the physical response: the default's.
        codes = [c or d for c, d in zip(trim, TRIM_CODES, strict=True)]
        gyro = [trim_response_lsb(c) for c in codes[:3]]
        accel = [trim_response_lsb(c) for c in codes[3:]]
        # FS code 0: 16384 LSB/g and 131 LSB/dps; the response is a force, not a code.
        self.accel = np.array(accel) / 16384.0 * G * np.array(gain[:3])
        self.gyro = np.radians(np.array(gyro) / 131.0) * np.array(gain[3:])

    def add(self, x: F64, accel_mask: int, gyro_mask: int) -> F64:
        """``x`` (n, 9) with the response added on the axes whose bit (x: 4, y: 2, z: 1)
        is set in each mask."""
        if not accel_mask and not gyro_mask:
            return x
        out = x.copy()
        for i, bit in enumerate((4, 2, 1)):
            if accel_mask & bit:
                out[:, i] += self.accel[i]
            if gyro_mask & bit:
                out[:, 3 + i] += self.gyro[i]
        return out


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


class ChipOptions(TypedDict, total=False):
    """The options every emulated InvenSense chip takes (``InvenSenseChip``'s defaults)."""

    clock: Clock | None
    signal: Signal | None
    oscillator_error: float
    who_am_i: int | None
    keep_truth: bool
    mag_oscillator_error: float
    mag_measure_s: float
    self_test_trim: tuple[int, ...]
    self_test_fault: str | Mapping[str, float] | None
    temperature_c: float


class InvenSenseChip(EmulatedChip):
    """What the ICM-20948 and MPU-6500/9250 emulators share: the FIFO, self-test response,
    temperature and aux master with its magnetometer; the sample clock follows the power
    and rate registers, and the newest field is kept for a bypass measurement. A chip class
    sets its own state, then calls this ``__init__`` (which resets the chip)."""

    _nominal = 0.0  # the rate the sample clock runs at (0: asleep)
    _field: F64  # the newest sample's field, set by the subclass's ``accept``

    def __init__(
        self,
        address: int,
        *,
        fifo_bytes: int,
        clock: Clock | None = None,
        signal: Signal | None = None,
        oscillator_error: float = 0.0,
        who_am_i: int | None = None,
        keep_truth: bool = False,
        mag_oscillator_error: float = 0.0,
        mag_measure_s: float = AK_SINGLE_S,
        self_test_trim: tuple[int, ...] = TRIM_CODES,
        self_test_fault: str | Mapping[str, float] | None = None,
        temperature_c: float = 25.0,
    ) -> None:
        self.fifo = ByteFifo(fifo_bytes)
        self.self_test = SelfTestResponse(self_test_trim, self_test_fault)
        self.temperature_c = temperature_c
        self.ak = self.make_ak(mag_oscillator_error, mag_measure_s, self_test_fault)
        self.master = AuxMaster(self.ak)
        self.overflows = 0
        self.frames = 0  # frames written into the FIFO, ever
        self._field = np.zeros(3)
        super().__init__(
            address,
            clock=clock,
            signal=signal if signal is not None else Signal(),
            oscillator_error=oscillator_error,
            who_am_i=who_am_i,
            keep_truth=keep_truth,
        )

    def make_ak(
        self, oscillator_error: float, measure_s: float, fault: str | Mapping[str, float] | None
    ) -> EmulatedAk | None:
        """The magnetometer die behind the aux master (None: a part without one)."""
        raise NotImplementedError

    def at_fifo_port(self, reg: int) -> bool:
        """Whether a read at ``reg`` is FIFO_R_W (which does not auto-increment)."""
        raise NotImplementedError

    def read(self, reg: int, n: int) -> bytes:
        if self.at_fifo_port(reg):
            self.advance()
            return self.fifo.take(n)
        return super().read(reg, n)

    def fifo_count_byte(self, high: bool) -> int:
        """FIFO_COUNTH (``high``) or FIFO_COUNTL: the FIFO's 13-bit byte count."""
        return (len(self.fifo) >> 8) & 0x1F if high else len(self.fifo) & 0xFF

    def power_cycle(self) -> None:
        if self.ak is not None:
            self.ak.reset()
        super().power_cycle()

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
        return ak.read_block(reg, n)

    def write(self, reg: int, data: bytes) -> None:
        ak, t, field = self._route()
        for value in data:
            self.writes.append((reg, value))
            ak.write(reg, value, t, field)
            reg = ak.next_register(reg)


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
    "TRIM_CODES",
    "BypassHost",
    "BypassPort",
    "ByteFifo",
    "ChipOptions",
    "EmulatedAk",
    "InvenSenseChip",
    "SelfTestResponse",
    "accel_codes",
    "be_bytes",
    "frames_from",
    "gyro_codes",
    "temp_code",
    "trim_response_lsb",
]

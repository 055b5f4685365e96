"""An I2C bus in memory: the smbus2 calls drivers make, dispatched to emulated chips.

Faults are injected here, where they happen on a real Pi:

- ``error_rate``: each transfer fails with that probability, with EIO, EREMOTEIO or
  ETIMEDOUT (seeded, so a test is reproducible). The failure happens before the chip
  sees the transfer (an address NACK or an arbitration loss), so no FIFO data is consumed.
- ``hang(seconds)``: the bus is stuck (a slave holding SDA low); every transfer blocks
  for the adapter timeout (or what remains of the hang) and fails with ETIMEDOUT.
- ``disappear(address, seconds)``: the chip stops answering (EREMOTEIO, as the Pi's
  controller reports a NACK) and, when it comes back, has lost power: every register
  is back at its reset value, so the driver must notice and configure it again.
- ``fail_next(address, n)``: the next n transfers to one chip fail (a deterministic fault).
- a wrong WHO_AM_I is a chip option (``EmulatedChip(who_am_i=...)``).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Sequence

import numpy as np
from smbus2 import i2c_msg

from fsqd.clock import Clock, SystemClock
from fsqd.imu.bus import BLOCK_MAX
from fsqd.imu.emulated.chip import EmulatedChip

I2C_M_RD = 0x0001
FAULT_ERRNOS = (errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT)


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class EmulatedBus:
    """Exactly the ``smbus2.SMBus`` calls of ``fsqd.imu.bus.I2CBus``, in memory."""

    def __init__(
        self,
        chips: Iterable[EmulatedChip] = (),
        *,
        clock: Clock | None = None,
        error_rate: float = 0.0,
        seed: int = 0,
        adapter_timeout_s: float = 1.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.chips: dict[int, EmulatedChip] = {}
        for chip in chips:
            self.add(chip)
        self.error_rate = error_rate
        self.adapter_timeout_s = adapter_timeout_s
        self.transfers = 0
        self.injected: dict[str, int] = {}  # errno name -> count of injected failures
        self.closed = False
        self._rng = np.random.default_rng([seed, 7])
        self._hang_until = float("-inf")
        self._gone: dict[int, float] = {}  # address -> time it comes back
        self._fail_next: dict[int, tuple[int, int]] = {}  # address -> (transfers, errno)

    def add(self, chip: EmulatedChip) -> EmulatedChip:
        if chip.address in self.chips:
            raise ValueError(f"two emulated chips at 0x{chip.address:02x}")
        self.chips[chip.address] = chip
        return chip

    # -- faults --

    def hang(self, seconds: float) -> None:
        self._hang_until = self.clock.now() + seconds

    def disappear(self, address: int, seconds: float) -> None:
        self._gone[address] = self.clock.now() + seconds

    def fail_next(self, address: int, transfers: int, code: int = errno.EIO) -> None:
        """The next ``transfers`` transfers to ``address`` fail with ``code``."""
        self._fail_next[address] = (transfers, code)

    def _fail(self, code: int) -> OSError:
        name = errno.errorcode[code]
        self.injected[name] = self.injected.get(name, 0) + 1
        return _oserror(code)

    def _chip(self, addr: int) -> EmulatedChip:
        """The chip a transfer reaches, or the error the transfer ends with."""
        if self.closed:
            raise _oserror(errno.EBADF)
        self.transfers += 1
        self.clock.tick()  # a transfer takes time (on a manual clock, one step)
        now = self.clock.now()
        if now < self._hang_until:
            self.clock.sleep(min(self.adapter_timeout_s, self._hang_until - now))
            raise self._fail(errno.ETIMEDOUT)
        back = self._gone.get(addr)
        if back is not None:
            if now < back:
                raise self._fail(errno.EREMOTEIO)
            del self._gone[addr]
            if addr in self.chips:
                self.chips[addr].power_cycle()
        left, code = self._fail_next.get(addr, (0, 0))
        if left:
            self._fail_next[addr] = (left - 1, code)
            raise self._fail(code)
        if self.error_rate > 0 and self._rng.random() < self.error_rate:
            raise self._fail(int(self._rng.choice(FAULT_ERRNOS)))
        chip = self.chips.get(addr)
        if chip is None:
            raise _oserror(errno.EREMOTEIO)  # nobody acknowledges the address
        return chip

    # -- the smbus2 calls --

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._chip(i2c_addr).read(register, 1)[0]

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        self._chip(i2c_addr).write(register, bytes([value & 0xFF]))

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if length > BLOCK_MAX:
            raise ValueError(f"Desired block length over {BLOCK_MAX} bytes")
        return list(self._chip(i2c_addr).read(register, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {BLOCK_MAX} bytes")
        self._chip(i2c_addr).write(register, bytes(data))

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """One combined transaction: a write sets the register pointer (and writes the
        rest); a read continues from the pointer."""
        if not i2c_msgs:
            return
        chip = self._chip(i2c_msgs[0].addr)
        pointer: int | None = None
        for msg in i2c_msgs:
            if msg.addr != chip.address:
                chip = self._chip(msg.addr)
                pointer = None
            if msg.flags & I2C_M_RD:
                if pointer is None:
                    raise _oserror(errno.EINVAL)  # no register addressed first
                data = chip.read(pointer, msg.len)
                ctypes.memmove(msg.buf, data, msg.len)
                pointer = None
            else:
                raw = bytes(msg)
                if not raw:
                    continue
                pointer = raw[0]
                if len(raw) > 1:
                    chip.write(pointer, raw[1:])
                    pointer = None

    def close(self) -> None:
        self.closed = True


__all__ = ["FAULT_ERRNOS", "EmulatedBus"]

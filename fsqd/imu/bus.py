"""The I2C bus as drivers see it: exactly the smbus2 calls they use, and nothing else.

``I2CBus`` is the subset of ``smbus2.SMBus`` the drivers call, so a real bus
(``open_bus(1)``) and ``fsqd.imu.emulated.EmulatedBus`` are interchangeable.
SMBus block reads stop at 32 bytes; ``read_burst`` switches to one combined
``i2c_rdwr`` transaction (write the register, repeated start, read n bytes) above that,
which is how a FIFO is drained in one go.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from smbus2 import SMBus, i2c_msg

from fsqd.errors import NoInputError

BLOCK_MAX = 32  # smbus2.I2C_SMBUS_BLOCK_MAX
# The errors a flaky or absent I2C device produces; anything else is not a bus problem.
BUS_ERRNOS = frozenset({errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT, errno.ENXIO, errno.EAGAIN})
T = TypeVar("T")


class I2CBus(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...

    def close(self) -> None: ...


def bus_path(bus: int | str) -> str:
    return f"/dev/i2c-{bus}" if isinstance(bus, int) else bus


def open_bus(bus: int | str) -> I2CBus:
    """Open ``/dev/i2c-N`` (or a path) with smbus2; one clear line when it cannot be."""
    path = bus_path(bus)
    try:
        return SMBus(path)
    except FileNotFoundError:
        raise NoInputError(
            f"{path}: no such I2C bus (is I2C enabled? on a Pi: raspi-config > Interface "
            "Options > I2C, or dtparam=i2c_arm=on in config.txt)"
        ) from None
    except PermissionError:
        raise NoInputError(
            f"{path}: permission denied (add the user to the 'i2c' group: "
            "sudo usermod -aG i2c $USER, then log in again)"
        ) from None
    except OSError as e:
        raise NoInputError(f"{path}: cannot open: {e.strerror or e}") from None


def read_burst(bus: I2CBus, addr: int, reg: int, n: int) -> bytes:
    """``n`` bytes from ``reg`` on (auto-incrementing or FIFO) register ``reg``."""
    if n <= BLOCK_MAX:
        return bytes(bus.read_i2c_block_data(addr, reg, n))
    write = i2c_msg.write(addr, [reg])
    read = i2c_msg.read(addr, n)
    bus.i2c_rdwr(write, read)
    return bytes(read)


class RetryingBus:
    """An ``I2CBus`` that repeats a failed transfer (EIO, EREMOTEIO, ETIMEDOUT, EAGAIN).

    On the Pi these are a NACK, a lost arbitration or a clock-stretch timeout: the
    transfer did not complete, and repeating it at once is cheaper than failing the
    whole burst. A transfer that fails ``attempts`` times raises. Every failure counts.
    """

    def __init__(self, bus: I2CBus, attempts: int = 3) -> None:
        self.bus = bus
        self.attempts = attempts
        self.failures = 0  # failed transfers, repeated or not
        self.by_errno: dict[str, int] = {}
        self.last_error = ""

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            try:
                return fn()
            except OSError as e:
                self.failures += 1
                name = errno_name(e)
                self.by_errno[name] = self.by_errno.get(name, 0) + 1
                self.last_error = f"{name}: {e.strerror or e}"
                if e.errno not in BUS_ERRNOS or attempt == self.attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._call(lambda: self.bus.read_byte_data(i2c_addr, register, force))

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        self._call(lambda: self.bus.write_byte_data(i2c_addr, register, value, force))

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        return self._call(lambda: self.bus.read_i2c_block_data(i2c_addr, register, length, force))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self._call(lambda: self.bus.write_i2c_block_data(i2c_addr, register, data, force))

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        self._call(lambda: self.bus.i2c_rdwr(*i2c_msgs))

    def close(self) -> None:
        self.bus.close()


def is_bus_error(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in BUS_ERRNOS


def errno_name(e: OSError) -> str:
    code = e.errno
    return errno.errorcode.get(code, str(code)) if code is not None else type(e).__name__


__all__ = [
    "BLOCK_MAX",
    "BUS_ERRNOS",
    "I2CBus",
    "RetryingBus",
    "bus_path",
    "errno_name",
    "is_bus_error",
    "open_bus",
    "read_burst",
]

"""What a chip driver does, and the registry that finds one by name or by WHO_AM_I.

A driver knows one chip's registers and nothing else: it checks the chip's identity,
configures rate, ranges and filters, and drains the FIFO, converting raw words to SI
units in the chip's own axes (m/s^2 with gravity, rad/s, uT). Timestamps, rate
tracking, mounting, calibration, retries and the ring buffer are generic code
(``fsqd.imu.acquire``) shared by every driver.

Two kinds of driver:

- ``ImuDriver``: an accelerometer + gyroscope with a FIFO (LSM6DSOX, ICM-20948, MPU-9250).
  ``read_fifo()`` returns ``(n, 9)`` rows; the magnetometer columns are filled when the
  chip batches its magnetometer into the FIFO (the InvenSense parts through their aux
  I2C master), NaN otherwise. A driver that reads its magnetometer separately (bypass
  mode) returns the latest reading as ``FifoRead.mag``.
- ``MagDriver``: a magnetometer on its own address, polled once per burst (LIS3MDL).

Drivers register a ``DriverSpec``; the registry imports the built-in driver modules on
first use, so a module that is not there (yet) is simply not listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError
from fsqd.imu.bus import I2CBus

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Modules that register drivers when imported (a missing one is skipped).
BUILTIN_MODULES = (
    "fsqd.imu.drivers.lsm6dsox",
    "fsqd.imu.drivers.lis3mdl",
    "fsqd.imu.drivers.icm20948",
    "fsqd.imu.drivers.mpu6500",
    "fsqd.imu.drivers.mpu9250",
)


class ChipIdError(OSError):
    """WHO_AM_I did not hold the expected value: a different chip, or none."""


@dataclass(frozen=True)
class ImuSettings:
    """What the config asks of a chip; the driver picks the nearest the chip supports."""

    rate_hz: float = 100.0
    accel_range_g: float = 4.0
    gyro_range_dps: float = 1000.0
    mag_range_ut: float = 400.0  # 4 gauss


@dataclass(frozen=True)
class FifoRead:
    """One drain of the FIFO."""

    samples: F32  # (n, 9) oldest first, SI units in the chip frame; mag NaN if not batched
    overflow: bool = False  # the FIFO overran since the last read: older samples were lost
    mag: F64 | None = None  # (3,) uT: latest separately-read magnetometer value, if any


class ImuDriver(Protocol):
    """An accelerometer + gyroscope (maybe magnetometer) read through its FIFO."""

    name: str  # registry name, e.g. "lsm6dsox"
    address: int
    odr_hz: float  # the output data rate chosen (nominal)
    rate_hint_hz: float  # best prior guess of the true rate (factory trim), else odr_hz
    fifo_capacity: int  # complete samples the FIFO holds before it overruns
    # -3 dB bandwidth (Hz) of the chip's own low-pass filters as configured, the widest of
    # accelerometer and gyroscope: what is left above it to alias when resampling.
    bandwidth_hz: float
    has_mag: bool  # magnetometer columns come from this driver (FIFO or FifoRead.mag)

    def init(self) -> None:
        """Reset, check identity (ChipIdError), configure, start the FIFO empty."""

    def fifo_count(self) -> int:
        """Complete samples waiting in the FIFO now (one short register read)."""

    def read_fifo(self, max_samples: int | None = None) -> FifoRead:
        """Drain up to ``max_samples`` complete samples (all waiting when None)."""

    def reset_fifo(self) -> None:
        """Empty the FIFO and clear its overrun flag; sampling continues."""

    def close(self) -> None:
        """Power the chip down if it still answers; never raises for a bus error."""


class MagDriver(Protocol):
    """A magnetometer polled once per burst."""

    name: str
    address: int
    odr_hz: float

    def init(self) -> None: ...

    def read(self) -> F64:
        """The latest (3,) field in uT (the output registers, new sample or not)."""

    def close(self) -> None: ...


ImuFactory = Callable[[I2CBus, int, ImuSettings], ImuDriver]
MagFactory = Callable[[I2CBus, int, ImuSettings], MagDriver]


@dataclass(frozen=True)
class DriverSpec:
    name: str
    kind: str  # "imu" or "mag"
    description: str
    addresses: tuple[int, ...]  # where the chip can sit; the first is the default
    who_am_i: tuple[int, int]  # (register, value)
    factory: ImuFactory | MagFactory
    emulator: str = ""  # "module:Class" of its register-level emulator
    companion_mag: str | None = None  # the magnetometer usually on the same board
    aliases: tuple[str, ...] = field(default=())
    # (register, value) selecting the register bank WHO_AM_I lives in, for chips with
    # banked registers (the ICM-20948 stays in whatever bank it was left in).
    who_am_i_bank: tuple[int, int] | None = None


_REGISTRY: dict[str, DriverSpec] = {}
_loaded = False


def register(spec: DriverSpec) -> DriverSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # the module exists but something it needs does not
                raise


def specs() -> Iterator[DriverSpec]:
    _load_builtins()
    yield from sorted(_REGISTRY.values(), key=lambda s: s.name)


def driver_names(kind: str | None = None) -> tuple[str, ...]:
    return tuple(s.name for s in specs() if kind is None or s.kind == kind)


def get_spec(name: str, kind: str | None = None) -> DriverSpec:
    _load_builtins()
    spec = _REGISTRY.get(name)
    if spec is None or (kind is not None and spec.kind != kind):
        known = ", ".join(driver_names(kind))
        raise ConfigError(
            f"unknown {kind or ''} driver {name!r}; known: {known}".replace("  ", " ")
        )
    return spec


def identify(
    register_value: Callable[[int], int | None],
    address: int,
    write: Callable[[int, int], None] | None = None,
) -> list[DriverSpec]:
    """Specs whose (WHO_AM_I register, value) match at ``address``.

    ``register_value(reg)`` reads one register (None when the read fails); each
    distinct register is read once. A chip with banked registers may have been left in
    another bank (by a crashed program, a driver mid-init): when its bank register
    reads anything but the WHO_AM_I bank, and ``write(reg, value)`` is given, that bank
    is selected and WHO_AM_I read again. Nothing is written otherwise.
    """
    cache: dict[int, int | None] = {}

    def value_of(reg: int) -> int | None:
        if reg not in cache:
            cache[reg] = register_value(reg)
        return cache[reg]

    found = []
    for spec in specs():
        if address not in spec.addresses:
            continue
        reg, value = spec.who_am_i
        seen = value_of(reg)
        if seen != value and spec.who_am_i_bank is not None and write is not None:
            bank_reg, bank = spec.who_am_i_bank
            current = value_of(bank_reg)
            if current is not None and current != bank:
                try:
                    write(bank_reg, bank)
                except OSError:
                    continue
                cache.clear()  # every register read so far was in the other bank
                cache[bank_reg] = bank
                seen = value_of(reg)
        if seen == value:
            found.append(spec)
    return found


def make_imu(spec: DriverSpec, bus: I2CBus, address: int, settings: ImuSettings) -> ImuDriver:
    if spec.kind != "imu":
        raise ConfigError(f"{spec.name} is a {spec.kind} driver, not an IMU")
    factory: ImuFactory = spec.factory  # type: ignore[assignment]
    return factory(bus, address, settings)


def make_mag(spec: DriverSpec, bus: I2CBus, address: int, settings: ImuSettings) -> MagDriver:
    if spec.kind != "mag":
        raise ConfigError(f"{spec.name} is a {spec.kind} driver, not a magnetometer")
    factory: MagFactory = spec.factory  # type: ignore[assignment]
    return factory(bus, address, settings)


def nearest(value: float, options: dict[float, int]) -> tuple[float, int]:
    """The (option, code) whose option is nearest ``value`` (ties: the larger)."""
    best = min(options, key=lambda o: (abs(o - value), -o))
    return best, options[best]


def at_least(value: float, options: dict[float, int]) -> tuple[float, int]:
    """The smallest (option, code) >= ``value`` (a range must not clip), else the largest."""
    fits = [o for o in options if o >= value]
    best = min(fits) if fits else max(options)
    return best, options[best]


__all__ = [
    "BUILTIN_MODULES",
    "ChipIdError",
    "DriverSpec",
    "FifoRead",
    "ImuDriver",
    "ImuSettings",
    "MagDriver",
    "at_least",
    "driver_names",
    "get_spec",
    "identify",
    "make_imu",
    "make_mag",
    "nearest",
    "register",
    "specs",
]

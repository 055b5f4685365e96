"""Independent chip drivers over the emulated bus: a CircuitPython ``busio.I2C`` stand-in.

Adafruit's CircuitPython drivers talk to ``busio.I2C`` through ``adafruit_bus_device``
(``try_lock``/``unlock``, ``writeto``, ``readfrom_into``, ``writeto_then_readfrom``). This
class answers those calls from an ``EmulatedBus``, the way a Linux I2C adapter does: a write
sets the chip's register pointer (and writes what follows it), a read continues from the
pointer with the chip's own auto-increment. Board detection (adafruit-blinka) is not needed:
``install_micropython_shim()`` provides the one name the drivers import from ``micropython``.

Pimoroni's drivers use ``smbus2.SMBus`` directly; an ``EmulatedBus`` already answers those
calls, so they take it as their bus object as it is.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from fsqd.imu.emulated import EmulatedBus


def install_micropython_shim() -> None:
    """Make ``from micropython import const`` work without adafruit-blinka."""
    if "micropython" in sys.modules:
        return
    try:
        import micropython  # noqa: F401  (blinka's, when installed)
    except ImportError:
        shim = types.ModuleType("micropython")
        shim.const = lambda x: x  # type: ignore[attr-defined]
        sys.modules["micropython"] = shim


def _view(buffer: Any, start: int, end: int | None) -> memoryview:
    mv = memoryview(buffer)
    return mv[start : len(mv) if end is None else end]


class EmulatedBusIO:
    """``busio.I2C`` over an ``EmulatedBus``: the calls CircuitPython drivers make."""

    def __init__(self, bus: EmulatedBus) -> None:
        self.bus = bus
        self._locked = False
        self._pointer: dict[int, int] = {}
        self.transactions = 0

    # -- locking, as busio.I2C --

    def try_lock(self) -> bool:
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self) -> None:
        self._locked = False

    def scan(self) -> list[int]:
        return sorted(self.bus.chips)

    def deinit(self) -> None:
        self.bus.close()

    # -- transfers --

    def writeto(self, address: int, buffer: Any, *, start: int = 0, end: int | None = None) -> None:
        data = bytes(_view(buffer, start, end))
        if not data:
            return
        chip = self.bus._chip(address)  # faults and timing, as every bus transfer
        self.transactions += 1
        self._pointer[address] = data[0]
        if len(data) > 1:
            chip.write(data[0], data[1:])

    def readfrom_into(
        self, address: int, buffer: Any, *, start: int = 0, end: int | None = None
    ) -> None:
        out = _view(buffer, start, end)
        chip = self.bus._chip(address)
        self.transactions += 1
        reg = self._pointer.get(address, 0)
        out[:] = chip.read(reg, len(out))
        # The chip advanced its own pointer; a following plain read continues after it.
        self._pointer[address] = (reg + len(out)) & 0xFF

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: Any,
        buffer_in: Any,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None:
        self.writeto(address, buffer_out, start=out_start, end=out_end)
        self.readfrom_into(address, buffer_in, start=in_start, end=in_end)


__all__ = ["EmulatedBusIO", "install_micropython_shim"]

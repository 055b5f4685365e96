"""Built-in chip self-tests: what a driver reports, per sensor and axis.

A chip's self-test applies an internal stimulus (an electrostatic force on the proof mass,
a current through a coil) and the driver measures the output with the stimulus on and off.
The difference must lie within the datasheet's limits. Drivers that support it implement
``SelfTestable.self_test()``: it leaves the chip reset and ready for ``init()``, and it never
raises for an out-of-limit result (that is a failing ``AxisResult``); bus errors propagate.

``fsqd probe --self-test`` prints one line per axis with the measured and allowed values and
exits non-zero when any axis fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class AxisResult:
    """One axis of one sensor: the self-test response and the limits it must lie in."""

    sensor: str  # "accel", "gyro" or "mag"
    axis: str  # "x", "y" or "z"
    measured: float  # the response, in ``unit``
    low: float  # inclusive limits, in ``unit``
    high: float
    unit: str  # "mg", "dps", "uT", "%" (of the factory trim), ...

    @property
    def passed(self) -> bool:
        return self.low <= self.measured <= self.high


@dataclass(frozen=True)
class SelfTestReport:
    """A chip's self-test: every axis it checked, plus notes (e.g. which procedure ran)."""

    chip: str  # registry name, e.g. "lsm6dsox"
    address: int
    axes: tuple[AxisResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.axes) and all(a.passed for a in self.axes)


@runtime_checkable
class SelfTestable(Protocol):
    """A driver (IMU or magnetometer) that can run its chip's built-in self-test."""

    def self_test(self) -> SelfTestReport:
        """Run the datasheet procedure; leaves the chip reset (call ``init()`` again to use it)."""
        ...


__all__ = ["AxisResult", "SelfTestReport", "SelfTestable"]

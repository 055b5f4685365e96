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

from collections.abc import Callable, Sequence
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


def axis_results(
    sensor: str,
    measured: Sequence[float],
    limits: Sequence[tuple[float, float]],
    unit: str,
) -> tuple[AxisResult, ...]:
    """One ``AxisResult`` per axis (x, y, z) from per-axis responses and limits."""
    return tuple(
        AxisResult(sensor, axis, float(m), low, high, unit)
        for axis, m, (low, high) in zip("xyz", measured, limits, strict=True)
    )


def mean_of_new_samples(
    ready: Callable[[], bool],
    read: Callable[[], Sequence[int]],
    sleep: Callable[[float], None],
    period_s: float,
    *,
    samples: int = 5,
    discard: int = 1,
) -> tuple[float, ...]:
    """The datasheet averaging: wait for each new sample (``ready()``, the chip's
    data-ready flag), read it (``read()``, raw codes per axis), drop the first
    ``discard`` (taken while the output was still settling) and average the next
    ``samples``. A chip that produces no new sample within 10 periods raises OSError."""
    total = [0.0, 0.0, 0.0]
    for i in range(discard + samples):
        for _ in range(40):  # polls a quarter period apart: 10 periods
            if ready():
                break
            sleep(period_s / 4)
        else:
            raise OSError(f"no new sample within {10 * period_s * 1e3:.0f} ms")
        codes = read()
        if i >= discard:
            total = [t + c for t, c in zip(total, codes, strict=True)]
    return tuple(t / samples for t in total)


__all__ = [
    "AxisResult",
    "SelfTestReport",
    "SelfTestable",
    "axis_results",
    "mean_of_new_samples",
]

"""Names and units every stage agrees on: plain values, no dependencies.

The chip drivers, the simulator, the recorded-file formats and the stream stages all
speak of the same nine channels in the same SI units (gravity in the accelerometer);
they take the names from here, never from one another, so a driver never imports the
simulator and a stream stage never imports the model card just to name a channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

G = 9.80665  # standard gravity, m/s^2

# One 9-axis device: accelerometer, gyroscope, magnetometer, in this order.
CHANNELS: tuple[str, ...] = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
CHANNEL_UNITS: tuple[str, ...] = ("m/s^2",) * 3 + ("rad/s",) * 3 + ("uT",) * 3

# The behaviours the simulator labels and the bundled model was trained on.
BEHAVIOURS: tuple[str, ...] = ("rest", "walk", "trot", "shake", "turn")


@dataclass(frozen=True)
class Channel:
    """One input column of a model: its name and the unit its values are in."""

    name: str
    unit: str


def column_names(channels: Sequence[str], devices: int) -> list[str]:
    """Column names for ``devices`` devices, device-major: ``ax`` for one device,
    ``ax_0 .. mz_0, ax_1 ..`` for more."""
    if devices == 1:
        return list(channels)
    return [f"{c}_{d}" for d in range(devices) for c in channels]


__all__ = ["BEHAVIOURS", "CHANNELS", "CHANNEL_UNITS", "Channel", "G", "column_names"]

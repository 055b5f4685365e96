"""Register-level emulated I2C chips on an emulated smbus2 bus, fed by the simulator."""

from fsqd.sensors.emulated.bus import EmulatedBus
from fsqd.sensors.emulated.chip import EmulatedChip, Signal

__all__ = ["EmulatedBus", "EmulatedChip", "Signal"]

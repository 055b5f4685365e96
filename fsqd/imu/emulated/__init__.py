"""Register-level emulated I2C chips on an emulated smbus2 bus, fed by the simulator.

They sit beside the real drivers (as gpiozero keeps its mock pins beside the real
ones): the real driver code runs unchanged against them, only the chip is emulated.
"""

from fsqd.imu.emulated.bus import EmulatedBus
from fsqd.imu.emulated.chip import SELF_TEST_FAULTS, EmulatedChip, Signal

__all__ = ["SELF_TEST_FAULTS", "EmulatedBus", "EmulatedChip", "Signal"]

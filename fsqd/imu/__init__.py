"""The IMUs: the I2C bus, one driver per chip, their self-tests, and live acquisition.

``bus`` is the I2C protocol the drivers speak (smbus2 underneath); ``driver`` is what a
chip driver does and the registry that finds one by name or WHO_AM_I; ``drivers/``
holds one module per chip; ``acquire/`` reads the sensors in a thread into a ring of
timestamped samples; ``emulated/`` holds register-level emulated chips beside the real
drivers, so the same driver code runs against either. Nothing here knows about the
stream stages, the encoder or the sinks.
"""

from fsqd.imu.acquire.acquisition import Acquisition, open_acquisition
from fsqd.imu.acquire.config import SensorConfig, parse_sensors
from fsqd.imu.bus import I2CBus, RetryingBus, open_bus
from fsqd.imu.driver import (
    ChipIdError,
    DriverSpec,
    FifoRead,
    ImuDriver,
    ImuSettings,
    MagDriver,
    get_spec,
    identify,
    register,
    specs,
)
from fsqd.imu.selftest import AxisResult, SelfTestable, SelfTestReport

__all__ = [
    "Acquisition",
    "AxisResult",
    "ChipIdError",
    "DriverSpec",
    "FifoRead",
    "I2CBus",
    "ImuDriver",
    "ImuSettings",
    "MagDriver",
    "RetryingBus",
    "SelfTestReport",
    "SelfTestable",
    "SensorConfig",
    "get_spec",
    "identify",
    "open_acquisition",
    "open_bus",
    "parse_sensors",
    "register",
    "specs",
]

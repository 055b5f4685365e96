"""Live acquisition, generic over the chip: FIFO bursts read in a thread (``reader``),
sample times fitted to the chip's own clock (``timing``), several sensors aligned onto
one grid (``align``), mounting and calibration (``mounting``), a preallocated ring of
samples (``ring``), and the ``[[sensor]]`` config tables (``config``)."""

from fsqd.imu.acquire.acquisition import Acquisition, SensorState, SensorStatus, open_acquisition
from fsqd.imu.acquire.align import Aligner
from fsqd.imu.acquire.config import (
    EMULATED,
    EmulatedOptions,
    SensorConfig,
    parse_sensors,
    read_sensor_file,
)
from fsqd.imu.acquire.mounting import Calibration
from fsqd.imu.acquire.reader import SensorReader, StallError
from fsqd.imu.acquire.ring import SampleRing
from fsqd.imu.acquire.timing import SampleClock

__all__ = [
    "EMULATED",
    "Acquisition",
    "Aligner",
    "Calibration",
    "EmulatedOptions",
    "SampleClock",
    "SampleRing",
    "SensorConfig",
    "SensorReader",
    "SensorState",
    "SensorStatus",
    "StallError",
    "open_acquisition",
    "parse_sensors",
    "read_sensor_file",
]

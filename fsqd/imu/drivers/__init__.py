"""One module per chip: its registers, its ``DriverSpec`` (registered on import), its
self-test. ``akm``, ``invensense`` and ``invensense_selftest`` are shared by the
InvenSense parts (the AKM magnetometer die, the FIFO frames, the factory-trim test);
``st_fifo`` and ``st_selftest`` by the ST parts (the tagged FIFO words, ST's self-test)."""

from fsqd.imu.drivers.icm20948 import Icm20948
from fsqd.imu.drivers.lis3mdl import Lis3mdl
from fsqd.imu.drivers.lsm6dsox import Ism330dhcx, Lsm6dsox
from fsqd.imu.drivers.mpu6500 import Mpu6500
from fsqd.imu.drivers.mpu9250 import Mpu9250

__all__ = ["Icm20948", "Ism330dhcx", "Lis3mdl", "Lsm6dsox", "Mpu6500", "Mpu9250"]

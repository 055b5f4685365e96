"""CPU cost of the InvenSense drivers per second of data, on the emulated chips.

Prints, for the ICM-20948 and MPU-9250 at ~100 Hz and ~1 kHz:
- decode: turning one second of FIFO frames into SI rows (the driver's own arithmetic),
- path: one second of the whole acquisition path (driver, reader, ring) on a manual
  clock, *including the emulated chip and simulator*, so an upper bound of what the
  driver costs on a Pi, where the chip is silicon and the cost is the I2C syscalls;
- transfers: bus transfers per second (each is one ioctl on a Pi).

    PYTHONPATH=. python tools/bench_invensense.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import time
import tomllib

import numpy as np

from fsqd.config.tomlcheck import Table
from fsqd.sensors.acquire import open_acquisition
from fsqd.sensors.akm import AK09916, AK8963
from fsqd.sensors.clock import ManualClock
from fsqd.sensors.config import parse_sensors
from fsqd.sensors.driver import ImuSettings
from fsqd.sensors.emulated import EmulatedBus
from fsqd.sensors.invensense import FrameDecoder, Ranges

CASES = [
    ("icm20948", 0x69, 100),
    ("icm20948", 0x69, 1000),
    ("mpu9250", 0x68, 100),
    ("mpu9250", 0x68, 1000),
]


def decode_cost(driver: str, rate: float, repeats: int = 200) -> float:
    mag = AK09916 if driver == "icm20948" else AK8963
    dec = FrameDecoder(Ranges.choose(ImuSettings()), mag.READ_LEN, np.full(3, 0.15), mag.TO_CHIP)
    frames = int(rate)
    polls = 50  # 20 ms bursts
    rng = np.random.default_rng(0)
    bursts = [rng.integers(0, 256, dec.frame * (frames // polls), np.uint8).tobytes()] * polls
    t0 = time.process_time()
    for _ in range(repeats):
        for b in bursts:
            dec.decode(b)
    return (time.process_time() - t0) / repeats


def path_cost(driver: str, address: int, rate: float, seconds: float) -> tuple[float, float]:
    text = (  # the default burst period: an eighth of the FIFO's depth, 10-50 ms
        f'[[sensor]]\nname = "b"\ndriver = "{driver}"\nbus = "emulated"\n'
        f"address = 0x{address:02x}\nrate_hz = {rate}\n"
    )
    clock = ManualClock()
    acq = open_acquisition(
        parse_sensors(Table(tomllib.loads(text), "b").tables("sensor")), 1, clock=clock
    )
    bus = acq.buses[0]
    assert isinstance(bus, EmulatedBus)
    end = clock.now() + 1.0
    while clock.now() < end:  # configure and settle outside the measurement
        acq.step()
        acq.read()
        clock.sleep(acq.poll_s)
    transfers = bus.transfers
    t0 = time.process_time()
    end = clock.now() + seconds
    while clock.now() < end:
        acq.step()
        acq.read()
        clock.sleep(acq.poll_s)
    cpu = (time.process_time() - t0) / seconds
    acq.stop()
    return cpu, (bus.transfers - transfers) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    print(f"{'chip':10} {'rate':>6} {'decode ms/s':>12} {'path ms/s':>10} {'transfers/s':>12}")
    for driver, address, rate in CASES:
        dec = decode_cost(driver, rate)
        path, transfers = path_cost(driver, address, rate, args.seconds)
        print(f"{driver:10} {rate:>6} {dec * 1e3:>12.3f} {path * 1e3:>10.2f} {transfers:>12.0f}")


if __name__ == "__main__":
    main()

"""CPU cost of live acquisition per second of data, at 104 Hz and at ~1 kHz.

Runs the real acquisition thread (real clock, burst reads every 20 ms, anchors,
calibration, ring buffer, a consumer reading it) against an emulated LSM6DSOX + LIS3MDL
for ``--seconds`` at each rate, and prints process CPU seconds per second of data. The
emulated chips run in the same process; the CPU spent inside the emulated bus (what
the I2C controller and kernel do on a Pi) is measured per call with
``time.thread_time``, as is the simulation the chips' feeder threads do; both are
reported as "emulator" and subtracted for the acquisition's own share (thread and
consumer).

``--hop N`` makes the consumer act like the daemon's: windows of 100 samples every N on a
100 Hz grid, each followed by ``want()`` for the next (reads timed to window completion).

    PYTHONPATH=. python tools/bench_acquire.py [--seconds 10] [--rates 104,833,1666]
    PYTHONPATH=. python tools/bench_acquire.py --rates 104 --hop 10 --seconds 60
"""

from __future__ import annotations

import argparse
import functools
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from fsqd.clock import SystemClock
from fsqd.imu.acquire.acquisition import open_acquisition
from fsqd.imu.acquire.config import parse_sensors
from fsqd.imu.emulated import EmulatedBus
from fsqd.tomlcheck import Table

CALLS = (
    "read_byte_data",
    "write_byte_data",
    "read_i2c_block_data",
    "write_i2c_block_data",
    "i2c_rdwr",
)


def _timed(fn: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            spent[0] += time.thread_time() - t0

    return wrapper


def _timed_feeder(chip: Any, spent: list[float]) -> None:
    """Count all the CPU of a chip's feeder thread (it simulates the signal ahead)."""
    original = chip._feed

    def feed() -> None:
        try:
            original()
        finally:
            spent[0] += time.thread_time()

    chip._feed = feed


def run(rate: int, seconds: float, hop: int = 0) -> dict[str, float]:
    table = {
        "sensor": [
            {
                "name": "bench",
                "driver": "lsm6dsox",
                "bus": "emulated",
                "rate_hz": rate,
                "emulated": {"oscillator_error": 0.01},
            }
        ]
    }
    sensors = parse_sensors(Table(table, "bench").tables("sensor"))
    acq = open_acquisition(sensors, 1, clock=SystemClock())
    bus = acq.buses[0]
    assert isinstance(bus, EmulatedBus)
    spent = [0.0]
    for name in CALLS:
        setattr(bus, name, _timed(getattr(bus, name), spent))
    for chip in bus.chips.values():
        _timed_feeder(chip, spent)
    woke = threading.Event()
    samples = 0
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    acq.start(woke.set)
    t_end = None  # the next window's end on a 100 Hz grid (hop > 0)
    while time.monotonic() - wall0 < seconds:
        woke.wait(0.5)
        woke.clear()
        for c in acq.read():
            samples += len(c)
            if hop and len(c):
                t_end = float(c.t[0]) + 0.99 if t_end is None else t_end
                while float(c.t[-1]) > t_end:  # that window is complete: hint the next
                    acq.want(t_end, hop / 100, 1)
                    t_end += hop / 100
    acq.stop()
    time.sleep(0.2)  # the feeder threads notice the chips stopped and end
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0 - 0.2
    status = acq.status()[0]
    return {
        "rate": rate,
        "measured_hz": status.rate_hz,
        "samples": samples,
        "data_s": wall,
        "cpu_per_s": cpu / wall,
        "emulator_per_s": spent[0] / wall,
        "acquisition_per_s": (cpu - spent[0]) / wall,
        "lost": status.lost,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rates", default="104,833,1666")
    ap.add_argument("--hop", type=int, default=0, help="act like the daemon's consumer")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    print(
        f"{'ODR Hz':>7} {'measured':>9} {'samples':>8} {'lost':>5} {'total %core':>12} "
        f"{'emulator':>9} {'acquisition %core':>18}"
    )
    for rate in (int(r) for r in args.rates.split(",")):
        r = run(rate, args.seconds, args.hop)
        print(
            f"{r['rate']:>7} {r['measured_hz']:>9.2f} {r['samples']:>8} {r['lost']:>5} "
            f"{100 * r['cpu_per_s']:>11.2f}% {100 * r['emulator_per_s']:>8.2f}% "
            f"{100 * r['acquisition_per_s']:>17.2f}%"
        )
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"max RSS {ru.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

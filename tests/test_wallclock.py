"""WallClock: the stream timeline mapped to UNIX time, steady under reading noise."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fsqd.daemon.clock import WallClock


def readings(values: list[float]) -> Callable[[], float]:
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def test_a_reading_preempted_between_the_clocks_is_not_taken() -> None:
    """Three bracketed reads; the first was preempted for 30 ms between the clocks."""
    mono = readings([10.0, 10.03, 10.031, 10.031001, 10.032, 10.032001])
    wall = readings([1000.03, 1000.031, 1000.032])
    clock = WallClock(wall=wall, mono=mono, base=0.0)
    assert abs(clock.correction - 990.0) < 1e-5  # not 990.015 from the preempted pair


def test_reading_noise_and_slow_slew_leave_the_mapping_alone_until_a_millisecond() -> None:
    offset = [990.0]
    t = [10.0]

    def mono() -> float:
        t[0] += 1e-7
        return t[0]

    clock = WallClock(wall=lambda: t[0] + offset[0], mono=mono, base=0.0)
    start = clock.correction
    for jitter in (3e-6, -2e-6, 4e-4, -9e-4):
        offset[0] = 990.0 + jitter
        assert clock.check() is None
        assert clock.correction == start  # codes keep their exact grid
    offset[0] = 990.0015  # NTP slewed 1.5 ms: followed, not counted as a step
    assert clock.check() is None
    assert abs(clock.correction - 990.0015) < 1e-5 and clock.steps == 0


def test_a_step_is_followed_and_counted() -> None:
    offset = [990.0]
    t = [10.0]

    def mono() -> float:
        t[0] += 1e-7
        return t[0]

    clock = WallClock(wall=lambda: t[0] + offset[0], mono=mono, base=0.0)
    offset[0] = 1990.0  # NTP's first sync on a Pi without an RTC
    step = clock.check()
    assert step is not None and abs(step - 1000.0) < 1e-5
    assert clock.steps == 1 and abs(clock.to_wall(20.0) - 2010.0) < 1e-5

"""Plausibility: wrong units are recognised, with the fix, once per group, chunk-invariant."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from fsqd.model.package import load_package
from fsqd.sim import SimConfig, simulate
from fsqd.stream.plausibility import Plausibility
from fsqd.units import Channel

CARD = load_package(None).card
MEAN, STD = CARD.stream_mean_std()
REC = simulate(300, SimConfig(seed=3))


def recorded(accel: float = 1.0, gyro: float = 1.0, mag: float = 1.0, counts: bool = False):
    x = REC.x.astype(np.float64) * np.repeat([accel, gyro, mag], 3)
    if counts:
        x[:, :3] = np.round(x[:, :3])
    return x.astype(np.float32)


def findings(x: np.ndarray, chunk: int = 100_000) -> list[str]:
    p = Plausibility(CARD.channels, 1, MEAN, STD, 100.0)
    out = []
    for a in range(0, len(x), chunk):
        out += [f.message for f in p.push(x[a : a + chunk])]
    assert out == [f.message for f in p.findings]
    return out


CASES = [
    ("m/s^2, rad/s, uT", recorded(), None),
    (
        "milli-g",
        recorded(accel=1000 / 9.80665),
        "ax..az look like milli-g .* --scale 'a\\*=0.00980665'",
    ),
    ("g", recorded(accel=1 / 9.80665), "ax..az look like g .* --scale 'a\\*=9.80665'"),
    (
        "raw counts ±2 g",
        recorded(accel=16384 / 9.80665, counts=True),
        "ax..az look like raw int16 counts \\(±2 g\\) .* --scale 'a\\*=0.00059855'",
    ),
    ("deg/s", recorded(gyro=180 / math.pi), "gx..gz look like deg/s .* --scale 'g\\*=0.0174533'"),
    ("gauss", recorded(mag=0.01), "mx..mz look like gauss .* --scale 'm\\*=100'"),
    ("nT", recorded(mag=1000), "mx..mz look like nT .* --scale 'm\\*=0.001'"),
    (
        "accel in no known unit",
        recorded(accel=1 / 20),
        "ax..az: median \\|a\\| 0.4.* is not 1 g .*: gravity removed",
    ),
    ("mag in no known unit", recorded(mag=0.1), "mx..mz: median \\|m\\| .* is not an Earth field"),
    (
        "1e30",
        np.where(np.arange(9) == 4, 1e30, recorded()).astype(np.float32),
        "gx..gz: values up to 1e\\+30 are not physical",
    ),
]


@pytest.mark.parametrize(("what", "x", "pattern"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("chunk", [100_000, 37])
def test_units_are_recognised_with_the_fix(
    what: str, x: np.ndarray, pattern: str | None, chunk: int
) -> None:
    got = findings(x, chunk)
    if pattern is None:
        assert got == []
    else:
        assert len(got) == 1, got  # once per group, however long the recording
        assert re.search(pattern, got[0]), got[0]


def test_far_outside_training_data_when_columns_are_swapped() -> None:
    x = recorded()[:, [6, 7, 8, 3, 4, 5, 0, 1, 2]]  # magnetometer and accelerometer swapped
    got = findings(x)
    assert any("ax..az" in g for g in got) and any("mx..mz" in g for g in got)


def test_numbers_for_the_summary_and_periodic_blocks() -> None:
    p = Plausibility(CARD.channels, 1, MEAN, STD, 100.0, block_s=2.0, every_s=60.0)
    p.push(recorded())
    assert p.checks == 5  # at 0, 60, 120, 180, 240 s
    assert 0.8 < p.numbers["ax..az |a| median (g)"] < 1.3
    assert 20 < p.numbers["mx..mz |m| median (uT)"] < 80
    assert p.summary().startswith("plausibility (5 block(s)): ax..az |a| median (g) ")


def test_two_devices_are_checked_separately() -> None:
    x = np.concatenate([recorded(), recorded(accel=1000 / 9.80665)], axis=1)
    p = Plausibility(CARD.channels, 2, np.tile(MEAN, 2), np.tile(STD, 2), 100.0)
    (f,) = p.push(x)
    assert f.group == "ax..az (device 1)" and "milli-g" in f.message


def test_groups_follow_the_cards_units() -> None:
    channels = [Channel(n, "g") for n in ("acc_x", "acc_y", "acc_z")]
    p = Plausibility(channels, 1, [0, 0, 1], [1, 1, 1], 50.0)
    (f,) = p.push(recorded(accel=1000 / 9.80665)[:, :3])
    assert "acc_x..acc_z look like milli-g" in f.message and "--scale 'acc_*=0.001'" in f.message


def test_channels_without_a_common_prefix_are_named_one_by_one() -> None:
    channels = [Channel(n, "m/s^2") for n in ("x", "y", "z")]
    p = Plausibility(channels, 1, [0, 0, 9.8], [1, 1, 1], 100.0)
    (f,) = p.push(recorded(accel=1 / 9.80665)[:, :3])
    assert f.message.endswith("--scale 'x=9.80665,y=9.80665,z=9.80665'")


def test_stats_for_a_payload() -> None:
    p = Plausibility(CARD.channels, 1, MEAN, STD, 100.0)
    p.push(recorded(accel=1000 / 9.80665))
    stats = p.stats()
    assert stats["checks"] == 5 and stats["warnings"] == 1
    groups = stats["groups"]
    assert isinstance(groups, dict)
    assert set(groups) == {"ax..az", "gx..gz", "mx..mz"}
    assert 80 < groups["ax..az"]["accel_median_g"] < 130  # milli-g read as m/s^2
    assert set(groups["gx..gz"]) == {"gyro_p99", "far_pct"}
    assert 20 < groups["mx..mz"]["mag_median"] < 80

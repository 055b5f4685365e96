"""Aligning a second sensor onto the first one's time grid."""

from __future__ import annotations

import numpy as np

from fsqd.imu.acquire.align import Aligner


def push(al: Aligner, sensor: int, t: np.ndarray, new_segment: bool = False) -> None:
    x = np.column_stack([t] * 9).astype(np.float32)  # every column is the time itself
    al.push(sensor, t, x, new_segment)


def test_second_sensor_is_interpolated_at_the_first_ones_times() -> None:
    al = Aligner(2)
    push(al, 0, np.arange(0, 1, 0.01), True)
    push(al, 1, np.arange(0.003, 1.2, 0.0097), True)
    runs = al.pop(now=1.0)
    t = np.concatenate([r[0] for r in runs])
    x = np.concatenate([r[1] for r in runs])
    assert t[0] >= 0.003 and len(t) == 99  # the first sample has no partner yet
    np.testing.assert_allclose(x[:, 9], t, atol=1e-6)  # linear data, exact interpolation
    assert [r[2] for r in runs] == [True]
    # Before the second sensor started: skipped, not lost.
    assert (al.dropped, al.skipped) == (0, 1)


def test_never_interpolated_across_the_second_sensors_gap() -> None:
    al = Aligner(2)
    push(al, 0, np.arange(0, 1, 0.01), True)
    push(al, 1, np.arange(0.0, 0.3, 0.01), True)
    push(al, 1, np.arange(0.6, 1.2, 0.01), True)  # a new segment after a 0.3 s gap
    runs = al.pop(now=1.0)
    t = np.concatenate([r[0] for r in runs])
    assert not np.any((t > 0.295) & (t < 0.6))
    assert [r[2] for r in runs] == [True, True]
    assert al.dropped == 30


def test_first_sensor_samples_go_stale_when_the_second_is_silent() -> None:
    al = Aligner(2, hold_s=0.5)
    push(al, 0, np.arange(0, 1, 0.01), True)
    push(al, 1, np.arange(0, 0.2, 0.01), True)
    first = al.pop(now=0.3)
    assert sum(len(r[0]) for r in first) == 20 and al.dropped == 0
    assert al.pop(now=1.0) == [] and al.dropped == 30  # older than 0.5 s: gone, counted
    push(al, 1, np.arange(0.2, 1.5, 0.01))
    later = al.pop(now=1.0)
    assert later[0][2]  # what follows the dropped stretch starts a new segment
    assert later[0][0][0] >= 0.5


def test_samples_from_before_the_second_sensor_started_are_not_lost() -> None:
    al = Aligner(2, hold_s=0.5)
    push(al, 0, np.arange(0, 1, 0.01), True)
    assert al.pop(now=1.0) == []  # the second sensor is still configuring
    assert (al.dropped, al.skipped) == (0, 50)
    push(al, 1, np.arange(0.62, 1.5, 0.01), True)
    runs = al.pop(now=1.05)
    assert runs[0][0][0] >= 0.62 and runs[0][2]
    assert (al.dropped, al.skipped) == (0, 62)
    # Once both run, a first-sensor sample without a partner is a counted loss.
    push(al, 0, np.arange(1.0, 2.5, 0.01))
    assert al.pop(now=2.6) and al.dropped == 60

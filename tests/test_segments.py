"""Segment metrics on sequences whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fsqd.behaviour.segments import change_points, segment_report, transition_delays
from fsqd.errors import DataError


def a(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def test_change_points_and_delays() -> None:
    truth = a(0, 0, 0, 1, 1, 1, 2, 2, 2, 2)
    state = a(0, 0, 0, 0, 1, 1, 1, 1, 2, 2)  # one late into 1, two late into 2
    assert change_points(truth).tolist() == [3, 6]
    assert transition_delays(truth, state) == ([1, 2], 0)
    early = a(0, 0, 1, 1, 1, 1, 2, 2, 2, 2)
    assert transition_delays(truth, early) == ([-1, 0], 0)
    # A change never followed (the state skips behaviour 1) is missed.
    assert transition_delays(truth, a(0, 0, 0, 0, 0, 0, 2, 2, 2, 2)) == ([0], 1)


def test_report_counts_per_hour_accuracy_and_delay() -> None:
    truth = [a(0, 0, 0, 1, 1, 1, 2, 2, 2, 2), a(1, 1)]
    state = [a(0, 0, 0, 0, 1, 1, 1, 1, 2, 2), a(1, 1)]
    argmax = [a(0, 1, 0, 1, 1, 0, 2, 2, 2, 2), a(1, 0)]
    r = segment_report(truth, state, argmax, step_s=0.5, window_s=1.0, lag_s=1.0)
    hours = 12 * 0.5 / 3600
    assert r["windows"] == 12
    assert r["changes_per_hour"]["truth"] == pytest.approx(2 / hours)
    assert r["changes_per_hour"]["state"] == pytest.approx(2 / hours)
    assert r["changes_per_hour"]["argmax"] == pytest.approx(6 / hours)  # no change across a gap
    assert r["change_ratio"] == 1.0
    assert r["accuracy"] == {"state": 9 / 12, "argmax": 9 / 12}
    d = r["transition_delay_s"]
    # Delays of 1 and 2 windows: 0.5 and 1.0 s, plus lag 1 s and half a window.
    assert d["median"] == pytest.approx(0.75 + 1.5) and d["changes"] == 2 and d["missed"] == 0
    assert d["bound"] == 1.5


def test_report_refuses_mismatched_or_empty_input() -> None:
    with pytest.raises(DataError):
        segment_report([a(0)], [a(0, 1)], [a(0)], step_s=0.5, window_s=1.0, lag_s=1.0)
    with pytest.raises(DataError):
        segment_report([a(0)], [], [a(0)], step_s=0.5, window_s=1.0, lag_s=1.0)
    with pytest.raises(DataError):
        segment_report([], [], [], step_s=0.5, window_s=1.0, lag_s=1.0)

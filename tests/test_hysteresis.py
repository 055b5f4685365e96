"""The fall-back without a duration model: argmax with a minimum dwell, dated back."""

from __future__ import annotations

import numpy as np
import pytest

from fsqd.behaviour.hysteresis import Hysteresis
from fsqd.errors import ConfigError


def run(labels: list[int], dwell: int) -> list[int]:
    h = Hysteresis(dwell)
    out = []
    for lab in labels:
        p = np.full(3, 0.1)
        p[lab] = 0.8
        out += [d.label for d in h.push(p)]
    out += [d.label for d in h.flush()]
    assert len(out) == len(labels)
    return out


def test_runs_shorter_than_the_dwell_are_ignored_and_changes_dated_back() -> None:
    seq = [0, 0, 0, 1, 1, 0, 0, 2, 2, 2, 2, 1, 2, 2]
    assert run(seq, 3) == [0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2]
    assert run(seq, 1) == seq  # a dwell of one window is the argmax
    # A run cut by a third behaviour starts over; one not confirmed by the end never wins.
    assert run([0, 1, 1, 2, 1, 1], 3) == [0] * 6


def test_the_lag_is_the_dwell_less_one_window() -> None:
    h = Hysteresis(3)
    assert h.lag == 2
    assert h.push(np.array([0.9, 0.1])) == [] and h.push(np.array([0.9, 0.1])) == []
    (d,) = h.push(np.array([0.2, 0.8]))
    assert (d.label, d.confidence) == (0, 0.9)  # the first window, decided now
    with pytest.raises(ConfigError):
        Hysteresis(0)

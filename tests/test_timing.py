"""The sample clock: fitting rate and phase to anchors, never stepping back."""

from __future__ import annotations

import numpy as np
import pytest

from fsqd.imu.acquire.timing import SampleClock

TRUE_RATE = 104.17 * 1.02
T0 = 5000.0


def true_time(k: int) -> float:
    return T0 + k / TRUE_RATE


def anchor(sc: SampleClock, k: int, width: float = 40e-6, skew: float = 0.5) -> bool:
    t = true_time(k)
    return sc.add_anchor(k, t - skew * width, t + (1 - skew) * width)


def test_rate_and_phase_from_tight_anchors() -> None:
    sc = SampleClock(104.0, 104.17)
    for k in (0, 3, 9, 27, 81, 243, 350, 454):
        anchor(sc, k, skew=float(np.random.default_rng(k).uniform()))
    assert sc.rate_hz == pytest.approx(TRUE_RATE, rel=2e-5)
    t = sc.times(454, 100)
    assert np.abs(t - [true_time(k) for k in range(454, 554)]).max() < 0.2e-3


def test_wide_anchors_are_provisional_then_ignored() -> None:
    sc = SampleClock(104.0, TRUE_RATE)
    assert not anchor(sc, 0, width=8e-3, skew=0.0)  # preempted: kept until a tight one
    assert sc.locked and not sc.tight
    assert abs(sc.expected(0) - true_time(0)) == pytest.approx(4e-3, abs=1e-6)
    assert anchor(sc, 5)
    assert sc.tight and len(sc.anchors) == 1
    assert not anchor(sc, 10, width=8e-3, skew=0.0)
    assert sc.rejected == 1 and abs(sc.expected(10) - true_time(10)) < 1e-4


def test_a_broken_fit_far_from_nominal_keeps_the_last_rate() -> None:
    sc = SampleClock(104.0, 104.17)
    sc.add_anchor(0, T0, T0 + 1e-5)
    sc.add_anchor(200, T0 + 1.0, T0 + 1.0 + 1e-5)  # 200 Hz: not this chip
    assert sc.rate_hz == pytest.approx(104.17)


def test_stamps_never_step_back() -> None:
    sc = SampleClock(104.0, 104.17)
    sc.add_anchor(0, T0, T0 + 1e-5)
    first = sc.times(0, 10)
    sc.add_anchor(10, T0 + 0.05, T0 + 0.05 + 1e-5)  # the line moves 46 ms back
    second = sc.times(10, 10)
    assert second[0] > first[-1]
    assert np.all(np.diff(np.concatenate([first, second])) > 0)


def test_restart_forgets_the_segment_keeps_the_rate() -> None:
    sc = SampleClock(104.0, 104.17)
    for k in (0, 50, 200):
        anchor(sc, k)
    sc.restart()
    assert not sc.locked and sc.rate_hz == pytest.approx(TRUE_RATE, rel=1e-4)


def test_a_rate_step_re_locks_after_a_confirming_anchor() -> None:
    sc = SampleClock(104.0, TRUE_RATE)
    for k in (0, 3, 9, 27, 81, 243):
        assert anchor(sc, k)
    # The oscillator jumps 3 % faster at sample 300 (say, a re-trim): later samples
    # come earlier than the line says.
    step_t, faster = true_time(300), TRUE_RATE * 1.03

    def stepped(k: int) -> float:
        return step_t + (k - 300) / faster

    assert not sc.add_anchor(420, stepped(420) - 2e-5, stepped(420) + 2e-5)  # a suspect
    assert sc.suspect and sc.relocks == 0
    assert sc.add_anchor(425, stepped(425) - 2e-5, stepped(425) + 2e-5)  # confirmed
    assert sc.relocks == 1 and not sc.suspect
    assert [a.k for a in sc.anchors] == [420, 425]
    for k in (431, 443, 467, 515):
        assert sc.add_anchor(k, stepped(k) - 2e-5, stepped(k) + 2e-5)
    assert sc.rate_hz == pytest.approx(faster, rel=1e-4)
    assert abs(sc.expected(600) - stepped(600)) < 0.1e-3


def test_one_anchor_off_the_line_is_an_outlier() -> None:
    sc = SampleClock(104.0, TRUE_RATE)
    for k in (0, 3, 9, 27, 81, 243):
        assert anchor(sc, k)
    before = (sc.period, sc.offset)
    assert not anchor(sc, 300, skew=-60.0)  # 2.4 ms late: a glitch, not the chip
    assert (sc.period, sc.offset) == before
    assert anchor(sc, 310)  # the next one agrees with the line: the glitch goes
    assert (sc.outliers, sc.relocks) == (1, 0) and not sc.suspect
    assert 300 not in [a.k for a in sc.anchors]
    assert abs(sc.expected(400) - true_time(400)) < 0.05e-3

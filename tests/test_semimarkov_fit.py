"""fit_semi_markov: bouts, transitions, durations and shares from per-window labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from behaviourkit import sim_windows, step_s

from fsqd.behaviour.semimarkov_fit import (
    SHARE_ALPHA,
    TRANSITION_ALPHA,
    bouts,
    fit_durations,
    fit_semi_markov,
)
from fsqd.errors import DataError
from fsqd.model.calibration import Calibration, validate_calibration
from fsqd.model.package import load_package


def runs(pairs: list[tuple[int, int]]) -> np.ndarray:
    return np.concatenate([np.full(n, lab) for lab, n in pairs])


def test_bouts_are_runs_with_the_ends_censored() -> None:
    b = bouts(runs([(0, 3), (1, 2), (0, 4)]))
    assert [(x.label, x.length, x.censored) for x in b] == [
        (0, 3, True),
        (1, 2, False),
        (0, 4, True),
    ]
    assert bouts(np.array([], np.int64)) == []


def test_known_sequence_gives_its_counts() -> None:
    # 0 -> 1 -> 2 -> 0 -> 1: transitions 0->1 twice, 1->2 once, 2->0 once.
    seq = runs([(0, 5), (1, 3), (2, 4), (0, 5), (1, 3)])
    spec = fit_semi_markov(seq, 0.5, 3)
    t = np.array(spec.transitions)
    a = TRANSITION_ALPHA
    np.testing.assert_allclose(t[0], [0, (2 + a) / (2 + 2 * a), a / (2 + 2 * a)])
    np.testing.assert_allclose(t[1], [a / (1 + 2 * a), 0, (1 + a) / (1 + 2 * a)])
    assert np.all(np.diag(t) == 0)
    windows = np.array([10, 6, 4])
    share = (windows + SHARE_ALPHA) / (20 + 3 * SHARE_ALPHA)
    np.testing.assert_allclose(spec.prior, share)
    np.testing.assert_allclose(spec.initial, share)
    # Label 1: its one complete bout is 3 windows (the last one is censored), in bin 2,
    # smoothed a quarter into bin 1 (the mass past the end folds back).
    m = spec.durations[1]
    assert (m.bin_s, m.pmf, m.tail_mass) == (0.5, (0.0, 0.25, 0.75), 0.0)
    validate_calibration(Calibration(semi_markov=spec), ("a", "b", "c"), 8)


def test_gaps_split_bouts_and_transitions() -> None:
    joined = fit_semi_markov(runs([(0, 4), (1, 4)]), 1.0, 2)
    split = fit_semi_markov([np.zeros(4, np.int64), np.ones(4, np.int64)], 1.0, 2)
    assert joined.transitions == ((0.0, 1.0), (1.0, 0.0))
    # No bout of 0 is followed by one of 1 within a segment: only the smoothing remains.
    assert split.transitions == ((0.0, 1.0), (1.0, 0.0))  # k = 2: a row has one choice
    three = fit_semi_markov([runs([(0, 4), (1, 4)]), runs([(0, 4), (2, 4)])], 1.0, 3)
    np.testing.assert_allclose(three.transitions[0], [0, 0.5, 0.5])
    three_joined = fit_semi_markov(runs([(0, 4), (1, 4), (0, 4), (2, 4)]), 1.0, 3)
    assert three_joined.transitions[1][0] > three.transitions[1][0]


def test_durations_histogram_and_tail_recover_a_known_distribution() -> None:
    rng = np.random.default_rng(3)
    # Shifted geometric: at least 4 windows, then memoryless with mean 6 more.
    lengths = 4 + rng.geometric(1 / 7, 20000) - 1
    m = fit_durations(lengths.astype(np.int64), 0.5)
    # A bout of n windows lies in bin n - 1, whose centre is half a bin short of n.
    assert m.mean_s == pytest.approx(0.5 * lengths.mean() - 0.25 * (1 - m.tail_mass), rel=0.01)
    assert sum(m.pmf) + m.tail_mass == pytest.approx(1.0)
    assert m.tail_mass == pytest.approx(0.1, abs=0.02)  # beyond the 0.9 quantile
    # Nothing shorter than 3 windows (the smoothing spreads 4 into 3, never into 1 or 2).
    assert m.pmf[0] == 0 and m.pmf[1] == 0
    # The tail's mean excess is the geometric's mean: 1 / p windows.
    assert m.tail_mean_s == pytest.approx(0.5 * 7, rel=0.1)


def test_a_label_never_seen_gets_a_memoryless_duration() -> None:
    spec = fit_semi_markov(runs([(0, 6), (1, 4), (0, 6)]), 0.5, 3)
    m = spec.durations[2]
    assert m.pmf == () and m.tail_mass == 1.0 and m.tail_mean_s > 0
    assert spec.prior[2] > 0  # the emission divides by it


def test_simulator_bouts_are_recovered() -> None:
    """The simulator: bouts of 2 s and more, exponential with mean 8 s (shake: 1 s, mean
    2 s), the next behaviour uniform among the others."""
    pkg = load_package()
    labels = [sim_windows(pkg, seed, 1800, logits=False).truth for seed in (41, 42, 43)]
    spec = fit_semi_markov(labels, step_s(pkg), 5)
    t = np.array(spec.transitions)
    np.testing.assert_allclose(t[~np.eye(5, dtype=bool)], 0.25, atol=0.1)  # ~160 bouts a row: 3 sd
    for j, m in enumerate(spec.durations):
        # E[max(a, X)] = a + mean * exp(-a / mean) for X exponential; half a bin less for
        # the card's bins (a bout of n windows sits in bin n - 1).
        a, mean = (1.0, 2.0) if j == 3 else (2.0, 8.0)
        expect = a + mean * math.exp(-a / mean) - 0.25
        assert m.mean_s == pytest.approx(expect, rel=0.1), j
        shortest = 1.0 if j == 3 else 2.0
        # No bout shorter than the minimum by more than the smoothing's one bin.
        assert sum(m.pmf[: int(shortest / 0.5) - 2]) == 0


@pytest.mark.parametrize(
    ("labels", "step", "k", "msg"),
    [
        ([0, 1, 5], 0.5, 3, "must be in"),
        ([0, -1], 0.5, 3, "must be in"),
        ([], 0.5, 3, "no labelled windows"),
        ([0, 1], 0.0, 3, "step_s"),
        ([0, 1], 0.5, 0, "n_labels"),
        (np.zeros((2, 2), np.int64), 0.5, 3, "1-D"),
        ([[0.5, 1.0]], 0.5, 3, "integer"),
    ],
)
def test_bad_input_is_one_clear_error(labels: object, step: float, k: int, msg: str) -> None:
    with pytest.raises(DataError, match=msg):
        fit_semi_markov(labels, step, k)  # type: ignore[arg-type]

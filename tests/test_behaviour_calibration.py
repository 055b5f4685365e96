"""The behaviour layer's calibration pieces on hand-made numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fsqd.behaviour.conformal import conformal_quantile, conformal_rank, fit_conformal
from fsqd.behaviour.health import jensen_shannon
from fsqd.behaviour.reference import code_reference
from fsqd.behaviour.sets import prediction_sets, softmax
from fsqd.behaviour.temperature import BOUNDS, fit_temperature
from fsqd.errors import DataError
from fsqd.model.calibration import ConformalSpec
from fsqd.recordings.labels import read_labels


def test_the_conformal_rank_is_the_finite_sample_one() -> None:
    assert conformal_rank(9, 0.9) == 9  # (9 + 1) * 0.9 = 9 exactly, not 9.000000000000002
    assert conformal_rank(99, 0.9) == 90
    assert conformal_rank(100, 0.9) == 91
    assert conformal_rank(19, 0.95) == 19
    scores = np.arange(1, 101, dtype=np.float64)[::-1]
    assert conformal_quantile(scores, 0.9) == 91.0


def test_too_few_windows_for_the_coverage_is_an_error() -> None:
    assert conformal_quantile(np.linspace(0, 1, 9), 0.9) == 1.0
    with pytest.raises(DataError, match=r"8 calibration windows of 'shake': a 0.9 .* at least 9"):
        conformal_quantile(np.linspace(0, 1, 8), 0.9, "of 'shake'")
    y = np.array([0] * 10 + [1, 2])
    probs = softmax(np.eye(3)[y] * 4)
    assert fit_conformal(probs, y, 0.9).threshold == pytest.approx(1 - probs.max())
    with pytest.raises(DataError, match="1 calibration windows of 'b'"):
        fit_conformal(probs, y, 0.9, class_conditional=True, label_names=("a", "b", "c"))
    with pytest.raises(DataError, match=r"coverage must be in \(0, 1\)"):
        fit_conformal(probs, y, 1.0)


def test_lac_sets_may_be_empty_and_aps_sets_never_are() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.95, 0.04, 0.01], [0.34, 0.33, 0.33]])
    lac = prediction_sets(probs, ConformalSpec("lac", 0.9, 0.6))
    assert lac.tolist() == [[True, False, False], [True, False, False], [False, False, False]]
    aps = prediction_sets(probs, ConformalSpec("aps", 0.9, 0.85))
    # Row 0: 0.5 <= .85, 0.8 <= .85, 1.0 > .85; row 1: the top alone is over, but kept;
    # row 2: the two tied labels share the score 1.0.
    assert aps.tolist() == [[True, True, False], [True, False, False], [True, False, False]]


def test_temperature_is_found_and_bounded() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (2000, 4))
    y = np.array([rng.choice(4, p=p) for p in softmax(z, 2.5)])
    assert fit_temperature(z, y) == pytest.approx(2.5, rel=0.1)
    # Labels that contradict the logits push T to the upper bound, not past it.
    assert fit_temperature(z, z.argmin(1)) == pytest.approx(BOUNDS[1], rel=1e-5)
    # Always right: as sharp as allowed.
    assert fit_temperature(z, z.argmax(1)) == pytest.approx(BOUNDS[0], rel=1e-5)
    with pytest.raises(DataError, match="no windows to fit a temperature on"):
        fit_temperature(z[:0], y[:0])


def test_the_drift_threshold_follows_its_rule() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 10, 4000)
    ref = code_reference(codes, np.zeros(4000, np.int64), 4800, drift_windows=400)
    full = np.bincount(codes, minlength=4800).astype(float)
    jsd = [
        jensen_shannon(np.bincount(codes[s : s + 400], minlength=4800).astype(float), full)
        for s in range(0, 3601, 200)
    ]
    assert ref.drift_threshold == pytest.approx(1.25 * np.percentile(jsd, 99))
    assert ref.drift_windows == 400 and ref.codes == tuple(range(10))
    assert sum(ref.counts) == 4000 and 9.5 < ref.perplexity <= 10
    # A recording shorter than drift_windows: blocks as long as the longest one.
    short = code_reference(codes[:100], np.zeros(100, np.int64), 4800)
    assert short.drift_windows == 100 and 0 < short.drift_threshold <= 1
    # No block spans two recordings.
    two = code_reference(codes[:700], np.repeat([0, 1], [300, 400]), 4800, drift_windows=350)
    assert two.drift_windows == 350
    assert not math.isnan(two.drift_threshold)
    # One code all along: every block is the reference, yet the threshold stays usable.
    same = code_reference(np.zeros(1000, np.int64), np.zeros(1000, np.int64), 4800)
    assert same.drift_threshold == 1e-3 and same.perplexity == 1.0


def test_the_label_column_is_read_row_by_row(tmp_path: Path) -> None:
    f = tmp_path / "l.csv"
    f.write_text("t,ax,label\n0,1,rest\n\n0.01,1,walk\n0.02,1,rest\n")
    names, ids = read_labels(f)
    assert names == ("rest", "walk") and ids.tolist() == [0, 1, 0]
    f.write_text("t,ax,label\n0,1,rest\n0.01,1,\n")
    with pytest.raises(DataError, match=r"l.csv:3: no 'label' value"):
        read_labels(f)

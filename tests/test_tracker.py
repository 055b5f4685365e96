"""The tracker: decisions -> segments and the states worth publishing; gaps, reloads, models."""

from __future__ import annotations

import numpy as np
import pytest
from behaviourkit import sim_windows, step_s, with_semi_markov

from fsqd.behaviour.segments import segment_report
from fsqd.behaviour.sets import softmax
from fsqd.behaviour.tracker import (
    BehaviourTracker,
    TrackerOutput,
    TrackerSettings,
    window_states,
)
from fsqd.errors import ConfigError
from fsqd.model.calibration import DurationModel, SemiMarkovSpec

STEP = 0.5
LABELS = ("rest", "walk")
NO_LAG = TrackerSettings(lag_s=0.0, min_dwell_s=0.5, confidence_step=0.1)


def feed(tr: BehaviourTracker, p0s: list[float], t0: float = 0.0, seq0: int = 0) -> TrackerOutput:
    out = TrackerOutput()
    for i, p0 in enumerate(p0s):
        t = t0 + i * STEP
        out.extend(tr.push(seq0 + i, t, t + 1.0, np.array([p0, 1 - p0]), ("rest",)))
    return out


def test_segments_tile_time_and_states_follow_changes() -> None:
    tr = BehaviourTracker(LABELS, None, STEP, NO_LAG)
    out = feed(tr, [0.9] * 4 + [0.2] * 3)
    (seg,) = out.segments
    # Window i has its centre at i * 0.5 + 0.5 and stands for +-0.25 s around it.
    assert (seg.behaviour, seg.start, seg.end, seg.windows) == ("rest", 0.25, 2.25, 4)
    assert seg.duration_s == 2.0 and seg.confidence == pytest.approx(0.9)
    assert [(s.behaviour, s.since, s.seq) for s in out.states] == [
        ("rest", 0.25, 0),
        ("walk", 2.25, 4),
    ]
    (last,) = tr.end().segments
    assert (last.behaviour, last.start, last.end) == ("walk", 2.25, 3.75)
    assert last.confidence == pytest.approx(0.8)


def test_state_is_republished_only_when_confidence_moves_by_the_step() -> None:
    tr = BehaviourTracker(LABELS, None, STEP, NO_LAG)
    out = feed(tr, [0.90, 0.85, 0.81, 0.79, 0.95, 0.96])
    assert [round(s.confidence, 2) for s in out.states] == [0.90, 0.79, 0.95]
    assert not out.segments


def test_a_gap_ends_the_segment_and_the_next_state_starts_a_new_one() -> None:
    tr = BehaviourTracker(LABELS, None, STEP, NO_LAG)
    out = feed(tr, [0.9] * 4)
    out.extend(feed(tr, [0.9] * 2, t0=10.0, seq0=4))  # 8 s later: a gap
    (seg,) = out.segments
    assert (seg.start, seg.end) == (0.25, 2.25)
    assert [s.since for s in out.states] == [0.25, 10.25]  # same behaviour, new segment
    # Time going back is a gap as well.
    out = feed(tr, [0.9], t0=5.0, seq0=6)
    assert [s.end for s in out.segments] == [11.25]


def test_a_gap_flushes_the_windows_waiting_for_the_lag() -> None:
    pkg = with_semi_markov(seconds=600)
    cal = pkg.card.calibration
    assert cal is not None and pkg.card.head is not None
    tr = BehaviourTracker(pkg.card.head.labels, cal.semi_markov, STEP, TrackerSettings(lag_s=1.0))
    assert tr.kind == "hsmm" and tr.lag == 2
    p = np.array([0.9, 0.025, 0.025, 0.025, 0.025])
    out = TrackerOutput()
    for i in range(6):
        out.extend(tr.push(i, i * STEP, i * STEP + 1, p))
    assert len(out.states) == 1 and out.states[0].seq == 2  # window 0, decided at window 2
    out = tr.end()
    (seg,) = out.segments
    assert seg.windows == 6 and seg.end == pytest.approx(6 * STEP + 0.25)


def test_reload_keeps_the_open_segment_and_a_new_model_starts_over() -> None:
    tr = BehaviourTracker(LABELS, None, STEP, NO_LAG)
    feed(tr, [0.9] * 4)
    out = tr.configure(TrackerSettings(lag_s=0.0, min_dwell_s=0.5, confidence_step=0.3))
    assert not out.segments and not out.states
    out = feed(tr, [0.7], t0=2.0, seq0=4)  # moved 0.2 < 0.3: nothing new
    assert not out.states and not out.segments
    out = tr.configure(TrackerSettings(lag_s=0.0, min_dwell_s=1.5, confidence_step=0.3))
    assert tr.lag == 2 and not out.segments  # the segment carries on under the new dwell
    out = feed(tr, [0.9] * 3, t0=2.5, seq0=5)
    out.extend(tr.end())
    (seg,) = out.segments
    assert (seg.start, seg.windows) == (0.25, 8)
    # The same model again: nothing happens; another one ends the segment and starts over.
    feed(tr, [0.9] * 2, t0=20.0)
    assert not tr.retarget(LABELS, None).segments
    spec = SemiMarkovSpec(
        (0.5, 0.5), ((0.0, 1.0), (1.0, 0.0)), (DurationModel(STEP, (), 1.0, 5.0),) * 2, (0.5, 0.5)
    )
    out = tr.retarget(LABELS, spec)
    assert len(out.segments) == 1 and tr.kind == "hsmm"


def test_bad_settings_and_a_mismatched_model_are_refused() -> None:
    with pytest.raises(ConfigError):
        BehaviourTracker(LABELS, None, 0.0)
    with pytest.raises(ConfigError):
        BehaviourTracker(LABELS, None, STEP, TrackerSettings(confidence_step=0.0))
    spec = SemiMarkovSpec((1.0,), ((0.0,),), (DurationModel(STEP, (), 1.0, 5.0),), (1.0,))
    with pytest.raises(ConfigError, match="1 behaviours"):
        BehaviourTracker(LABELS, spec, STEP)


def test_states_on_unseen_simulated_data_meet_the_targets() -> None:
    """Fitted on four seeds, checked on two others: fewer changes than the argmax, close to
    the truth; accuracy at least the argmax's; the median delay within lag + half a window."""
    pkg = with_semi_markov()
    card = pkg.card
    assert card.calibration is not None
    step = step_s(pkg)
    truth, state, argmax = [], [], []
    for seed in (21, 22):
        w = sim_windows(pkg, seed, 900)
        assert w.logits is not None
        probs = softmax(w.logits)
        truth.append(w.truth)
        argmax.append(probs.argmax(1))
        state.append(window_states(probs, card.calibration.semi_markov, step))
    r = segment_report(truth, state, argmax, step_s=step, window_s=1.0, lag_s=1.0)
    assert r["changes_per_hour"]["state"] <= r["changes_per_hour"]["argmax"]
    assert 1 / 1.5 <= r["change_ratio"] <= 1.5
    assert r["accuracy"]["state"] >= r["accuracy"]["argmax"]
    assert r["transition_delay_s"]["median"] <= r["transition_delay_s"]["bound"]

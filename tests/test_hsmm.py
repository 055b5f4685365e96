"""The explicit-duration HMM: against hmmlearn with geometric durations, and on its own terms.

With geometric durations a semi-Markov model is an HMM: behaviour j stays with a_j and moves
to k with (1 - a_j) * transitions[j][k]. hmmlearn's forward-backward on that HMM gives the
posteriors our filter and fixed-lag smoother must reproduce: the filtered probabilities of
window t are hmmlearn's posteriors of the prefix 0..t at t, and the lag-L smoothed ones
those of the prefix 0..t+L at t. The observations are discrete symbols with an emission
matrix B; our filter sees them as posteriors B[:, o] * prior (normalised), which divided by
the prior are B[:, o] up to a factor: the same evidence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsqd.behaviour.hsmm import Hsmm, HsmmModel, step_durations
from fsqd.errors import ConfigError
from fsqd.model.calibration import DurationModel, SemiMarkovSpec

hmm = pytest.importorskip("hmmlearn.hmm")

STEP_S = 0.5


def geometric(a: float, body: int) -> DurationModel:
    """P(d = m) = (1 - a) a^(m - 1) windows, as a histogram of ``body`` bins and its tail."""
    pmf = tuple((1 - a) * a**i for i in range(body))
    return DurationModel(STEP_S, pmf, a**body, -STEP_S / math.log(a))


def spec_and_hmm(rng: np.random.Generator) -> tuple[SemiMarkovSpec, object]:
    k, symbols = 3, 4
    stay = np.array([0.9, 0.7, 0.95])
    trans = rng.uniform(0.2, 1.0, (k, k))
    np.fill_diagonal(trans, 0)
    trans /= trans.sum(1, keepdims=True)
    initial = np.array([0.5, 0.2, 0.3])
    prior = np.array([0.2, 0.3, 0.5])
    # Histogram bodies of different lengths: 0, 3 and 7 bins before the tail.
    spec = SemiMarkovSpec(
        initial=tuple(initial),
        transitions=tuple(tuple(r) for r in trans),
        durations=(geometric(stay[0], 0), geometric(stay[1], 3), geometric(stay[2], 7)),
        prior=tuple(prior),
    )
    model = hmm.CategoricalHMM(n_components=k, n_features=symbols, init_params="", params="")
    model.startprob_ = initial
    model.transmat_ = np.diag(stay) + (1 - stay)[:, None] * trans
    model.emissionprob_ = rng.dirichlet(np.ones(symbols), size=k)
    return spec, model


def posteriors(model: object, obs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    b = model.emissionprob_[:, obs].T * prior  # type: ignore[attr-defined]
    out: np.ndarray = b / b.sum(1, keepdims=True)
    return out


@pytest.mark.parametrize("lag", [0, 1, 3])
def test_filtered_and_smoothed_posteriors_equal_hmmlearns(lag: int) -> None:
    rng = np.random.default_rng(7)
    spec, model = spec_and_hmm(rng)
    obs, _ = model.sample(60, random_state=3)  # type: ignore[attr-defined]
    obs = obs.ravel()
    post = posteriors(model, obs, np.asarray(spec.prior))
    f = Hsmm(HsmmModel.from_spec(spec, STEP_S), lag)
    filtered, smoothed = [], []
    for p in post:
        smoothed += f.push(p)
        assert f.filtered is not None
        filtered.append(f.filtered)
    smoothed += f.flush()
    assert len(smoothed) == len(obs)
    for t in range(len(obs)):
        ref_f = model.predict_proba(obs[: t + 1, None])[t]  # type: ignore[attr-defined]
        np.testing.assert_allclose(filtered[t], ref_f, atol=1e-10)
        end = min(len(obs), t + lag + 1)
        ref_s = model.predict_proba(obs[:end, None])[t]  # type: ignore[attr-defined]
        np.testing.assert_allclose(smoothed[t].probs, ref_s, atol=1e-10)
        assert smoothed[t].label == int(np.argmax(ref_s))


def test_the_truncation_keeps_a_geometric_duration_exact() -> None:
    """A cap below the histogram's end still gives hmmlearn's answer for geometric bouts."""
    rng = np.random.default_rng(11)
    spec, model = spec_and_hmm(rng)
    obs, _ = model.sample(40, random_state=5)  # type: ignore[attr-defined]
    obs = obs.ravel()
    post = posteriors(model, obs, np.asarray(spec.prior))
    table = HsmmModel.from_spec(spec, STEP_S, max_steps=3)
    assert table.steps == 3
    f = Hsmm(table, 0)
    for t, p in enumerate(post):
        f.push(p)
        ref = model.predict_proba(obs[: t + 1, None])[t]  # type: ignore[attr-defined]
        np.testing.assert_allclose(f.filtered, ref, atol=1e-10)  # type: ignore[arg-type]


def test_durations_at_the_fitted_step_are_the_histogram() -> None:
    m = DurationModel(STEP_S, (0.0, 0.1, 0.4, 0.2), 0.3, 2.0)
    entry, stay, resid = step_durations(m, STEP_S, 6)
    np.testing.assert_allclose(entry[:4], m.pmf)
    r = math.exp(-STEP_S / 2.0)
    np.testing.assert_allclose(entry[4], 0.3 * (1 - r))  # d = 5: the tail's first step
    np.testing.assert_allclose(entry[5], 0.3 * r)  # d >= 6
    assert stay == pytest.approx(r)
    assert entry.sum() == pytest.approx(1.0)
    # The residual life is proportional to P(d >= m): 1, 1, 0.9, 0.5, 0.3, ...
    np.testing.assert_allclose(resid[:3] / resid[0], [1.0, 1.0, 0.9])
    assert resid.sum() == pytest.approx(1.0)


def test_a_long_minimum_duration_holds_the_state_against_a_blip() -> None:
    """Bouts of at least 6 windows: a two-window blip of evidence does not switch."""
    body = (0.0,) * 5 + (0.05, 0.05)
    spec = SemiMarkovSpec(
        initial=(0.5, 0.5),
        transitions=((0.0, 1.0), (1.0, 0.0)),
        durations=(DurationModel(STEP_S, body, 0.9, 20.0),) * 2,
        prior=(0.5, 0.5),
    )
    f = Hsmm(HsmmModel.from_spec(spec, STEP_S), 2)
    seen = [0.8] * 20 + [0.2] * 2 + [0.8] * 10
    out = []
    for p0 in seen:
        out += f.push(np.array([p0, 1 - p0]))
    out += f.flush()
    assert [d.label for d in out] == [0] * len(seen)
    # The argmax alone would have switched twice.
    assert sum(p < 0.5 for p in seen) == 2


def test_evidence_that_rules_out_everything_keeps_the_prediction() -> None:
    spec = SemiMarkovSpec(
        initial=(1.0, 0.0),
        transitions=((0.0, 1.0), (1.0, 0.0)),
        durations=(geometric(0.9, 2),) * 2,
        prior=(0.5, 0.5),
    )
    f = Hsmm(HsmmModel.from_spec(spec, STEP_S), 2)
    # The first window cannot be behaviour 1 (initial), yet the evidence says only 1.
    out = f.push(np.array([0.0, 1.0]))
    assert f.filtered is not None
    np.testing.assert_allclose(f.filtered, [1.0, 0.0])
    out += f.push(np.array([0.9, 0.1]))
    before = f.filtered.copy()
    for bad in ([np.nan, np.nan], [0.0, 0.0]):
        out += f.push(np.array(bad))
        # Time moves on (a bout may end), nothing else.
        assert f.filtered[1] == pytest.approx(before[0] * 0.1 + before[1] * 0.9, abs=1e-9)
        before = f.filtered.copy()
    out += f.flush()
    assert len(out) == 4
    assert all(np.all(np.isfinite(d.probs)) and d.label == 0 for d in out)


def test_bad_lag_and_step_are_refused() -> None:
    spec = SemiMarkovSpec((1.0,), ((0.0,),), (geometric(0.9, 0),), (1.0,))
    with pytest.raises(ConfigError):
        Hsmm(HsmmModel.from_spec(spec, STEP_S), -1)
    with pytest.raises(ConfigError):
        HsmmModel.from_spec(spec, 0.0)

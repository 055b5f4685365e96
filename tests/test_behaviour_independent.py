"""Calibration, conformal sets and scores checked against independent implementations.

MAPIE's split-conformal classifier (LAC, and APS on the same non-randomised scores),
scikit-learn's ``calibration_curve`` and metrics, and scipy's optimiser and
Jensen-Shannon distance, on the same numbers as fsqd's own code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fsqd.behaviour.conformal import conformal_quantile, coverage, fit_conformal
from fsqd.behaviour.health import jensen_shannon, perplexity
from fsqd.behaviour.reliability import reliability
from fsqd.behaviour.scores import accuracy, brier, confusion, macro_f1
from fsqd.behaviour.sets import prediction_sets, softmax
from fsqd.behaviour.temperature import fit_temperature, fit_temperature_and_bias, nll

mapie_classification = pytest.importorskip("mapie.classification")
mapie_aps = pytest.importorskip("mapie.conformity_scores.sets.aps")
sk_base = pytest.importorskip("sklearn.base")
sk_calibration = pytest.importorskip("sklearn.calibration")
sk_metrics = pytest.importorskip("sklearn.metrics")
optimize = pytest.importorskip("scipy.optimize")
distance = pytest.importorskip("scipy.spatial.distance")

K = 5


def problem(
    n: int, seed: int, sharpness: float = 2.0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Logits and labels of a miscalibrated classifier: labels drawn from softmax(z / 1.7)."""
    rng = np.random.default_rng(seed)
    centre = rng.integers(0, K, n)
    z = rng.normal(0, 1, (n, K)) * sharpness
    z[np.arange(n), centre] += 2.0 * sharpness
    p = softmax(z, 1.7)
    y = np.array([rng.choice(K, p=row) for row in p], np.int64)
    return z, y


class Fixed(sk_base.ClassifierMixin, sk_base.BaseEstimator):  # type: ignore[misc]
    """A fitted classifier whose probabilities are given: row i of ``probs`` for X = [[i]]."""

    def __init__(self, probs: npt.NDArray[np.float64] | None = None) -> None:
        self.probs = probs

    def fit(self, x: Any, y: Any) -> Fixed:
        self.classes_ = np.arange(K)
        return self

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        assert self.probs is not None
        return self.probs[np.asarray(x)[:, 0].astype(int)]

    def predict(self, x: Any) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = self.predict_proba(x).argmax(axis=1)
        return out


class DeterministicAPS(mapie_aps.APSConformityScore):  # type: ignore[misc]
    """MAPIE's APS score without its random term: the mass ranked at or above the true label."""

    def get_conformity_scores(self, y: Any, y_pred: Any, y_enc: Any = None, **kw: Any) -> Any:
        scores, self.cutoff = self.get_true_label_cumsum_proba(y, y_pred, self.classes)
        return scores


def mapie_sets(
    probs: npt.NDArray[np.float64], y: npt.NDArray[np.int64], n_cal: int, method: str, cov: float
) -> tuple[float, npt.NDArray[np.bool_]]:
    est = Fixed(probs).fit(None, None)
    score = "lac" if method == "lac" else DeterministicAPS()
    m = mapie_classification.SplitConformalClassifier(
        estimator=est, confidence_level=cov, conformity_score=score, prefit=True
    )
    idx = np.arange(len(probs))[:, None]
    m.conformalize(idx[:n_cal], y[:n_cal])
    params = None if method == "lac" else {"include_last_label": False}
    _, sets = m.predict_set(idx[n_cal:], conformity_score_params=params)
    q = float(m._mapie_classifier.conformity_score_function_.quantiles_[0])
    return q, sets[:, :, 0]


@pytest.mark.parametrize("method", ["lac", "aps"])
@pytest.mark.parametrize(("n_cal", "cov"), [(400, 0.9), (137, 0.8), (1000, 0.95)])
def test_thresholds_sets_and_coverage_agree_with_mapie(method: str, n_cal: int, cov: float) -> None:
    z, y = problem(n_cal + 600, seed=n_cal)
    probs = softmax(z, 1.3)
    spec = fit_conformal(probs[:n_cal], y[:n_cal], cov, method)  # type: ignore[arg-type]
    q, theirs = mapie_sets(probs, y, n_cal, method, cov)
    assert spec.threshold == pytest.approx(q, abs=1e-12)
    ours = prediction_sets(probs[n_cal:], spec)
    assert np.array_equal(ours, theirs)
    c = coverage(probs[n_cal:], y[n_cal:], spec)
    assert c.overall == pytest.approx(float(theirs[np.arange(600), y[n_cal:]].mean()))
    assert c.mean_size == pytest.approx(float(theirs.sum(axis=1).mean()))


@pytest.mark.filterwarnings("ignore:WARNING. your conformalization dataset has less labels")
def test_class_conditional_thresholds_are_mapie_on_each_label_alone() -> None:
    z, y = problem(2000, seed=5)
    probs = softmax(z)
    spec = fit_conformal(probs, y, 0.9, "lac", class_conditional=True)
    assert spec.class_thresholds is not None
    for j in range(K):
        mine = y == j
        q, _ = mapie_sets(probs[mine], y[mine], int(mine.sum()) - 1, "lac", 0.9)
        # MAPIE conformalised on all but the last window of label j: one fewer score.
        expected = conformal_quantile(1.0 - probs[mine, j][:-1], 0.9)
        assert q == pytest.approx(expected, abs=1e-12)
        assert spec.class_thresholds[j] == pytest.approx(
            conformal_quantile(1.0 - probs[mine, j], 0.9), abs=1e-12
        )
    # Label j's membership is judged against its own threshold.
    member = prediction_sets(probs, spec)
    q_row = np.asarray(spec.class_thresholds)[None, :]
    assert np.array_equal(member, 1.0 - probs <= q_row)


def test_conformal_coverage_holds_on_new_exchangeable_windows() -> None:
    """LAC is exact (coverage within 1/(n+1) above the target, up to sampling); APS is
    conservative, since its top label is always in the set."""
    z, y = problem(20000, seed=11)
    probs = softmax(z)
    lac = coverage(probs[5000:], y[5000:], fit_conformal(probs[:5000], y[:5000], 0.9, "lac"))
    aps = coverage(probs[5000:], y[5000:], fit_conformal(probs[:5000], y[:5000], 0.9, "aps"))
    assert 0.89 <= lac.overall <= 0.91, lac
    assert aps.overall >= 0.9, aps
    assert lac.mean_size < aps.mean_size


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_reliability_bins_agree_with_sklearn_calibration_curve(binning: str) -> None:
    z, y = problem(3000, seed=2)
    probs = softmax(z)
    r = reliability(probs, y, 15, binning)  # type: ignore[arg-type]
    correct = (probs.argmax(1) == y).astype(int)
    strategy = "uniform" if binning == "width" else "quantile"
    acc, conf = sk_calibration.calibration_curve(
        correct, probs.max(1), n_bins=15, strategy=strategy
    )
    filled = r.count > 0
    assert np.allclose(r.accuracy[filled], acc)
    assert np.allclose(r.confidence[filled], conf)
    weights = r.count[filled] / r.count.sum()
    assert r.ece == pytest.approx(float((weights * np.abs(acc - conf)).sum()))
    assert r.mce == pytest.approx(float(np.abs(acc - conf).max()))


def test_temperature_agrees_with_a_direct_nll_minimisation() -> None:
    z, y = problem(4000, seed=3)
    t = fit_temperature(z, y)

    def loss(temp: float) -> float:
        return float(sk_metrics.log_loss(y, softmax(z, temp), labels=list(range(K))))

    best = optimize.minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded",
                                    options={"xatol": 1e-9})  # fmt: skip
    assert t == pytest.approx(best.x, rel=1e-4)
    assert 1.5 < t < 1.9  # the labels were drawn at T = 1.7
    assert nll(z, y, t) == pytest.approx(loss(t), rel=1e-9)


def test_temperature_and_bias_agree_with_a_direct_nll_minimisation() -> None:
    """Bias-corrected temperature scaling: the Newton fit equals BFGS on scikit-learn's log
    loss over (1/T, bias), and finds a bias the labels were drawn with."""
    rng = np.random.default_rng(8)
    z = rng.normal(size=(6000, K)) * 3.0
    drawn = np.linspace(-0.6, 0.6, K)
    p = softmax(z, 1.7, drawn)
    y = (p.cumsum(axis=1) > rng.random((len(z), 1))).argmax(axis=1)
    t, bias = fit_temperature_and_bias(z, y)

    def loss(theta: np.ndarray) -> float:
        probs = softmax(z, 1.0 / theta[0], theta[1:])
        return float(sk_metrics.log_loss(y, probs, labels=list(range(K))))

    best = optimize.minimize(loss, np.r_[1.0, np.zeros(K)], method="BFGS",
                             options={"gtol": 1e-10})  # fmt: skip
    assert t == pytest.approx(1.0 / best.x[0], rel=1e-3)
    assert np.asarray(bias) == pytest.approx(best.x[1:] - best.x[1:].mean(), abs=2e-3)
    assert np.asarray(bias) == pytest.approx(drawn - drawn.mean(), abs=0.1)
    assert sum(bias) == pytest.approx(0.0, abs=1e-9)  # centred: softmax ignores a constant
    assert nll(z, y, t, bias) < nll(z, y, fit_temperature(z, y))


def test_scores_agree_with_sklearn() -> None:
    z, y = problem(1500, seed=4)
    pred = z.argmax(1)
    m = confusion(y, pred, K)
    assert np.array_equal(m, sk_metrics.confusion_matrix(y, pred, labels=list(range(K))))
    assert accuracy(m) == pytest.approx(sk_metrics.accuracy_score(y, pred))
    assert macro_f1(m) == pytest.approx(
        sk_metrics.f1_score(y, pred, average="macro", labels=list(range(K)))
    )
    probs = softmax(z)
    onehot = np.eye(K)[y]
    assert brier(probs, y) == pytest.approx(float(((probs - onehot) ** 2).sum(1).mean()))


def test_a_label_never_predicted_nor_present_scores_zero_f1_as_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 0])
    expected = sk_metrics.f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert macro_f1(confusion(y, pred, 3)) == pytest.approx(expected)


def test_js_divergence_and_perplexity_agree_with_scipy() -> None:
    rng = np.random.default_rng(8)
    p = rng.integers(0, 20, 50).astype(float)
    q = rng.integers(0, 20, 50).astype(float)
    assert jensen_shannon(p, q) == pytest.approx(distance.jensenshannon(p, q, base=2) ** 2)
    assert jensen_shannon(p, p) == pytest.approx(0.0)
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    stats = pytest.importorskip("scipy.stats")
    assert perplexity(p) == pytest.approx(np.exp(stats.entropy(p)))

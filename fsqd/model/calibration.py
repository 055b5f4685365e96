"""The card's ``calibration`` section: what ``fsqd model calibrate`` learned from labelled data.

Everything the daemon needs to turn the head's logits into behaviour: a temperature for the
logits, a split-conformal threshold for prediction sets, a semi-Markov behaviour model
(transitions between behaviours and a duration distribution per behaviour) and a reference
code distribution for code-usage health. Each part is optional: a card may carry only a
temperature. Lists are in the head's label order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from fsqd.errors import ConfigError

ConformalMethod = Literal["lac", "aps"]
CONFORMAL_METHODS: tuple[ConformalMethod, ...] = ("lac", "aps")


@dataclass(frozen=True)
class ConformalSpec:
    """Split-conformal prediction sets at ``coverage``.

    ``lac``: the set holds every label whose calibrated probability is >= 1 - threshold
    (it may be empty). ``aps``: labels sorted by probability are added while their
    cumulative probability stays <= ``threshold``; the top label is always in.
    ``class_thresholds`` (class-conditional, one per label: label j is judged against
    threshold j) replaces ``threshold`` when present. ``fsqd.behaviour.sets`` computes them.
    """

    method: ConformalMethod
    coverage: float
    threshold: float
    class_thresholds: tuple[float, ...] | None = None


@dataclass(frozen=True)
class DurationModel:
    """How long one behaviour lasts: a histogram with an exponential tail.

    Bin ``i`` holds durations in ``(i * bin_s, (i + 1) * bin_s]``; ``tail_mass`` is the
    probability of lasting longer than ``len(pmf) * bin_s``, and the excess beyond it is
    exponential with mean ``tail_mean_s``. ``sum(pmf) + tail_mass == 1``.
    """

    bin_s: float
    pmf: tuple[float, ...]
    tail_mass: float
    tail_mean_s: float

    @property
    def mean_s(self) -> float:
        body = sum(p * (i + 0.5) * self.bin_s for i, p in enumerate(self.pmf))
        return body + self.tail_mass * (len(self.pmf) * self.bin_s + self.tail_mean_s)


@dataclass(frozen=True)
class SemiMarkovSpec:
    """A semi-Markov model of behaviour: where a finished bout goes, and how long bouts last.

    ``transitions[i][j]``: probability that a bout of label i is followed by one of label j
    (zero diagonal, rows sum to 1). ``initial``: first-bout probabilities. ``prior``: the
    share of windows per label in the calibration data; emissions are posterior / prior.
    """

    initial: tuple[float, ...]
    transitions: tuple[tuple[float, ...], ...]
    durations: tuple[DurationModel, ...]
    prior: tuple[float, ...]


@dataclass(frozen=True)
class CodeReference:
    """The code distribution on the calibration data, for code-usage health.

    ``codes`` (sorted, unique code indices) and ``counts`` are the codes seen and how
    often; ``drift_threshold`` is the Jensen-Shannon divergence (base 2, in [0, 1]) over
    ``drift_windows`` windows above which usage has drifted.
    """

    codes: tuple[int, ...]
    counts: tuple[int, ...]
    perplexity: float
    drift_threshold: float
    drift_windows: int


@dataclass(frozen=True)
class Calibration:
    """Calibrated probabilities are ``softmax(logits / temperature + bias)``: temperature
    scaling, with a per-label bias when fitted (bias-corrected temperature scaling, which
    also corrects a head that favours some labels over others)."""

    temperature: float = 1.0
    conformal: ConformalSpec | None = None
    semi_markov: SemiMarkovSpec | None = None
    code_reference: CodeReference | None = None
    bias: tuple[float, ...] | None = None  # one per label, added after dividing by T
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out numbers, before/after
    provenance: dict[str, Any] = field(default_factory=dict)  # data sha256, windows, date


def calibration_from_dict(d: Any) -> Calibration:
    """The section as read from JSON; shapes are checked by ``validate_calibration``."""
    if not isinstance(d, dict):
        raise ConfigError("calibration must be a JSON object")
    conf, sm, ref = d.get("conformal"), d.get("semi_markov"), d.get("code_reference")
    return Calibration(
        temperature=float(d.get("temperature", 1.0)),
        conformal=None
        if conf is None
        else ConformalSpec(
            method=conf["method"],
            coverage=float(conf["coverage"]),
            threshold=float(conf["threshold"]),
            class_thresholds=None
            if conf.get("class_thresholds") is None
            else tuple(float(v) for v in conf["class_thresholds"]),
        ),
        semi_markov=None
        if sm is None
        else SemiMarkovSpec(
            initial=_floats(sm["initial"]),
            transitions=tuple(_floats(row) for row in sm["transitions"]),
            durations=tuple(
                DurationModel(
                    bin_s=float(m["bin_s"]),
                    pmf=_floats(m["pmf"]),
                    tail_mass=float(m["tail_mass"]),
                    tail_mean_s=float(m["tail_mean_s"]),
                )
                for m in sm["durations"]
            ),
            prior=_floats(sm["prior"]),
        ),
        code_reference=None
        if ref is None
        else CodeReference(
            codes=tuple(int(v) for v in ref["codes"]),
            counts=tuple(int(v) for v in ref["counts"]),
            perplexity=float(ref["perplexity"]),
            drift_threshold=float(ref["drift_threshold"]),
            drift_windows=int(ref["drift_windows"]),
        ),
        bias=None if d.get("bias") is None else _floats(d["bias"]),
        metrics=dict(d.get("metrics", {})),
        provenance=dict(d.get("provenance", {})),
    )


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def validate_calibration(cal: Calibration, labels: tuple[str, ...] | None, codebook: int) -> None:
    """Check the section against itself and the card (its labels and codebook size)."""
    if not (math.isfinite(cal.temperature) and cal.temperature > 0):
        raise ConfigError(f"calibration.temperature must be > 0, got {cal.temperature}")
    needs_labels = cal.conformal is not None or cal.semi_markov is not None or cal.bias is not None
    if needs_labels and labels is None:
        raise ConfigError(
            "calibration has a bias, conformal sets or a semi-Markov model but no head"
        )
    k = len(labels or ())
    if cal.bias is not None and (len(cal.bias) != k or not all(math.isfinite(b) for b in cal.bias)):
        raise ConfigError(f"calibration.bias must be {k} finite numbers, one per label")
    if cal.conformal is not None:
        _validate_conformal(cal.conformal, k)
    if cal.semi_markov is not None:
        _validate_semi_markov(cal.semi_markov, k)
    if cal.code_reference is not None:
        _validate_reference(cal.code_reference, codebook)


def _validate_conformal(c: ConformalSpec, k: int) -> None:
    if c.method not in CONFORMAL_METHODS:
        raise ConfigError(f"calibration.conformal.method must be one of {CONFORMAL_METHODS}")
    if not 0 < c.coverage < 1:
        raise ConfigError(f"calibration.conformal.coverage must be in (0, 1), got {c.coverage}")
    thresholds = (c.threshold, *(c.class_thresholds or ()))
    if not all(math.isfinite(t) for t in thresholds):
        raise ConfigError("calibration.conformal thresholds must be finite")
    if c.class_thresholds is not None and len(c.class_thresholds) != k:
        raise ConfigError(
            f"calibration.conformal.class_thresholds has {len(c.class_thresholds)} values "
            f"for {k} labels"
        )


def _validate_semi_markov(sm: SemiMarkovSpec, k: int) -> None:
    where = "calibration.semi_markov"
    for name, vec in (("initial", sm.initial), ("prior", sm.prior)):
        _check_distribution(f"{where}.{name}", vec, k)
    if len(sm.transitions) != k:
        raise ConfigError(f"{where}.transitions has {len(sm.transitions)} rows for {k} labels")
    for i, row in enumerate(sm.transitions):
        if k > 1:
            _check_distribution(f"{where}.transitions[{i}]", row, k)
            if row[i] != 0:
                raise ConfigError(f"{where}.transitions[{i}][{i}] must be 0 (a bout ends)")
    if len(sm.durations) != k:
        raise ConfigError(f"{where}.durations has {len(sm.durations)} entries for {k} labels")
    for i, m in enumerate(sm.durations):
        ok = (
            m.bin_s > 0
            and m.tail_mean_s > 0
            and all(math.isfinite(p) and p >= 0 for p in (*m.pmf, m.tail_mass))
            and abs(sum(m.pmf) + m.tail_mass - 1) <= 1e-4
        )
        if not ok:
            raise ConfigError(
                f"{where}.durations[{i}] must have bin_s > 0, tail_mean_s > 0 and "
                "non-negative pmf + tail_mass summing to 1"
            )


def _check_distribution(where: str, vec: tuple[float, ...], k: int) -> None:
    if len(vec) != k:
        raise ConfigError(f"{where} has {len(vec)} values for {k} labels")
    if not all(math.isfinite(p) and p >= 0 for p in vec) or abs(sum(vec) - 1) > 1e-4:
        raise ConfigError(f"{where} must be non-negative and sum to 1")


def _validate_reference(ref: CodeReference, codebook: int) -> None:
    where = "calibration.code_reference"
    if len(ref.codes) != len(ref.counts) or not ref.codes:
        raise ConfigError(f"{where}: codes and counts must be non-empty and of equal length")
    if list(ref.codes) != sorted(set(ref.codes)) or ref.codes[0] < 0 or ref.codes[-1] >= codebook:
        raise ConfigError(f"{where}.codes must be sorted, unique and in [0, {codebook})")
    if any(c <= 0 for c in ref.counts):
        raise ConfigError(f"{where}.counts must be positive")
    if not 0 < ref.drift_threshold <= 1 or ref.drift_windows < 1:
        raise ConfigError(f"{where}: drift_threshold must be in (0, 1] and drift_windows >= 1")

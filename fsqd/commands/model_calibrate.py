"""`fsqd model calibrate PKG --data FILE...`: the card's `calibration` from labelled data.

Labelled recordings are cut into windows as the daemon cuts them
(``fsqd.commands.labelled_windows``), thinned to windows that share no sample, and split
into fit and held-out parts by time blocks. On the fit part: a temperature (minimum NLL),
conformal thresholds, and (with ``fsqd.behaviour.semimarkov_fit``) the behaviour model; on
every window: the reference code distribution. The held-out part gives the numbers, before
and after. The card is rewritten atomically, with provenance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd import __version__
from fsqd.behaviour.conformal import fit_conformal
from fsqd.behaviour.evaluation import window_metrics
from fsqd.behaviour.reference import code_reference
from fsqd.behaviour.semimarkov_fit import fit_semi_markov
from fsqd.behaviour.sets import softmax
from fsqd.behaviour.temperature import fit_temperature, fit_temperature_and_bias
from fsqd.commands.calibration_report import classification_table, probability_table, sets_table
from fsqd.commands.labelled_windows import (
    BLOCK_S,
    HOLDOUT_EVERY,
    LabelledWindows,
    open_labelled,
    split_blocks,
    stretches,
)
from fsqd.errors import DataError, OutputError, UsageError
from fsqd.model.calibration import CONFORMAL_METHODS, Calibration, ConformalMethod, SemiMarkovSpec
from fsqd.model.package import CARD_FILE, ModelPackage
from fsqd.outfile import text_output

MIN_PER_LABEL = 20  # fit-part windows of each label: below this a threshold is noise


@dataclass(frozen=True)
class CalibrateOptions:
    package: Path
    data: tuple[Path, ...]
    coverage: float = 0.9
    method: str = "lac"
    class_conditional: bool = False
    plots: Path | None = None
    bias: bool = True  # a per-label bias besides the temperature (False: temperature only)


@dataclass(frozen=True)
class CalibrateResult:
    calibration: Calibration
    labels: tuple[str, ...]
    card_path: Path

    def lines(self) -> list[str]:
        cal = self.calibration
        m = cal.metrics["held_out"]
        p = cal.provenance
        bias = "" if cal.bias is None else ", bias " + " ".join(f"{b:+.3f}" for b in cal.bias)
        out = [
            f"wrote {self.card_path}: temperature {cal.temperature:.4f}{bias}, "
            f"{p['windows']['fit']} fit / {p['windows']['held_out']} held-out windows "
            f"(stride {p['stride']} = {p['stride_s']:g} s, blocks of {p['block_s']:g} s)",
            "held-out:",
            *probability_table(m, cal.temperature, cal.bias is not None),
            *classification_table(m, self.labels),
        ]
        if cal.conformal is not None:
            out += sets_table(m["sets"], self.labels, cal.conformal.method)
        ref = cal.code_reference
        if ref is not None:
            out.append(
                f"code reference: {len(ref.codes)} codes in use, perplexity {ref.perplexity:.1f}, "
                f"drift threshold JSD {ref.drift_threshold:.3f} over {ref.drift_windows} windows"
            )
        if cal.semi_markov is not None:
            means = ", ".join(
                f"{name} {d.mean_s:.1f} s"
                for name, d in zip(self.labels, cal.semi_markov.durations, strict=True)
            )
            out.append(f"semi-Markov behaviour model: mean bout {means}")
        return out


def _method(text: str) -> ConformalMethod:
    for m in CONFORMAL_METHODS:
        if text == m:
            return m
    raise UsageError(f"--method must be one of {', '.join(CONFORMAL_METHODS)}, got {text!r}")


def check_counts(data: LabelledWindows, fit: npt.NDArray[np.int64], minimum: int) -> None:
    counts = np.bincount(data.labels[fit], minlength=len(data.label_names))
    short = [(n, int(c)) for n, c in zip(data.label_names, counts, strict=True) if c < minimum]
    if short:
        listed = ", ".join(f"{n} {c}" for n, c in short)
        raise DataError(
            f"too few windows per label to calibrate ({listed} in the fit part; each needs "
            f">= {minimum}): give more labelled data"
        )


def fit_behaviour_model(data: LabelledWindows, n_labels: int) -> SemiMarkovSpec:
    """The semi-Markov behaviour model from the labels of every window (not only the fit
    part: it models the behaviour, not the head), one sequence per gap-free stretch so
    that no bout spans a gap or two recordings."""
    return fit_semi_markov([data.labels[i] for i in stretches(data)], data.hop_s, n_labels)


def calibrate(opts: CalibrateOptions) -> CalibrateResult:
    method = _method(opts.method)
    if not 0 < opts.coverage < 1:
        raise UsageError(f"--coverage must be between 0 and 1, got {opts.coverage:g}")
    pkg, labels, data = open_labelled(opts.package, opts.data, plots=opts.plots is not None)
    fit, held = split_blocks(data)
    if len(held) == 0:
        raise DataError(f"no held-out windows: give at least {HOLDOUT_EVERY * BLOCK_S:g} s of data")
    check_counts(data, fit, MIN_PER_LABEL)
    lf, yf = data.logits[fit], data.labels[fit]
    bias: tuple[float, ...] | None = None
    if opts.bias:
        temperature, bias = fit_temperature_and_bias(lf, yf)
    else:
        temperature = fit_temperature(lf, yf)
    spec = fit_conformal(
        softmax(lf, temperature, bias), yf, opts.coverage, method,
        class_conditional=opts.class_conditional, label_names=labels,
    )  # fmt: skip
    held_logits, held_labels = data.logits[held], data.labels[held]
    metrics = {
        "held_out": window_metrics(held_logits, held_labels, temperature, spec, bias),
        "fit": window_metrics(lf, yf, temperature, spec, bias),
    }
    cal = Calibration(
        temperature=temperature,
        bias=bias,
        conformal=spec,
        semi_markov=fit_behaviour_model(data, len(labels)),
        code_reference=code_reference(data.codes, data.file, pkg.card.codebook_size),
        metrics=_rounded(metrics),
        provenance=_provenance(data, fit, held),
    )
    path = write_calibration(pkg, cal)
    if opts.plots is not None:
        from fsqd.commands.calibration_plots import calibration_plots

        calibration_plots(opts.plots, data.logits[held], data.labels[held], cal, labels)
    return CalibrateResult(cal, labels, path)


def _provenance(
    data: LabelledWindows, fit: npt.NDArray[np.int64], held: npt.NDArray[np.int64]
) -> dict[str, Any]:
    return {
        "data": [
            {"file": f.name, "sha256": h} for f, h in zip(data.files, data.sha256, strict=True)
        ],
        "windows": {"cut": len(data), "fit": len(fit), "held_out": len(held)},
        "stride": data.stride,
        "stride_s": data.stride * data.hop_s,
        "block_s": BLOCK_S,
        "held_out_every": HOLDOUT_EVERY,
        "window_label": "label of the window's last sample",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "by": f"fsqd {__version__}",
    }


def _rounded(value: Any) -> Any:
    """Metrics with 6 significant digits: the card stays readable."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def write_calibration(pkg: ModelPackage, cal: Calibration) -> Path:
    """The card with ``cal`` as its calibration section, replaced atomically."""
    card = replace(pkg.card, calibration=cal)  # checked against the head and codebook
    path = pkg.path / CARD_FILE
    with text_output(path) as fh:
        try:
            fh.write(card.to_json())
        except OSError as e:
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
    return path


def run_calibrate(opts: CalibrateOptions) -> int:
    print("\n".join(calibrate(opts).lines()))
    return 0


__all__ = [
    "MIN_PER_LABEL",
    "CalibrateOptions",
    "CalibrateResult",
    "calibrate",
    "fit_behaviour_model",
    "run_calibrate",
    "write_calibration",
]

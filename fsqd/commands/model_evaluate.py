"""`fsqd model evaluate PKG --data FILE...`: the model and its calibration on labelled data.

Window-level numbers on every window of the recordings that shares no sample with the
one before (the stride ``fsqd model calibrate`` fits on): accuracy, macro-F1, the
confusion matrix, ECE before and after the card's temperature, and the coverage and size
of the card's conformal sets. Give recordings that were not used to calibrate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsqd.behaviour.evaluation import window_metrics
from fsqd.behaviour.segments import segment_report
from fsqd.behaviour.sets import softmax
from fsqd.behaviour.tracker import TrackerSettings, window_states
from fsqd.commands.calibration_report import classification_table, probability_table, sets_table
from fsqd.commands.labelled_windows import (
    LabelledWindows,
    open_labelled,
    stretches,
    strided,
)
from fsqd.model.calibration import Calibration
from fsqd.recordings.base import ReadOptions


@dataclass(frozen=True)
class EvaluateOptions:
    package: Path
    data: tuple[Path, ...]
    plots: Path | None = None
    json: bool = False
    read: ReadOptions | None = None  # how to read the files (replay's options); None: defaults


def segment_metrics(
    data: LabelledWindows, cal: Calibration, settings: TrackerSettings | None = None
) -> dict[str, Any]:
    """The behaviour states the daemon would publish, against the truth and the per-window
    argmax: state changes per hour, window accuracy, transition delay. Every window (not
    strided: the states run on consecutive windows), one run per gap-free stretch."""
    settings = settings or TrackerSettings()
    step = data.hop_s
    truth, state, argmax = [], [], []
    for idx in stretches(data):
        probs = softmax(data.logits[idx], cal.temperature, cal.bias)
        truth.append(data.labels[idx])
        argmax.append(probs.argmax(1))
        state.append(window_states(probs, cal.semi_markov, step, settings))
    if cal.semi_markov is not None:
        model, lag_s = "explicit-duration HMM", round(settings.lag_s / step) * step
    else:  # the fall-back decides a change once it has lasted the minimum dwell
        model, lag_s = "hysteresis", (max(1, round(settings.min_dwell_s / step)) - 1) * step
    report = segment_report(truth, state, argmax, step_s=step, window_s=data.window_s, lag_s=lag_s)
    return {"model": model, "lag_s": lag_s, **report}


def segments_table(seg: dict[str, Any]) -> list[str]:
    cph, acc, dl = seg["changes_per_hour"], seg["accuracy"], seg["transition_delay_s"]
    median = "-" if dl["median"] is None else f"{dl['median']:.2f} s"
    return [
        f"behaviour states ({seg['model']}, lag {seg['lag_s']:.2f} s) over {seg['hours']:.2f} h:",
        f"  changes per hour: truth {cph['truth']:.0f}, state {cph['state']:.0f}, "
        f"per-window argmax {cph['argmax']:.0f}",
        f"  window accuracy: state {acc['state']:.1%}, argmax {acc['argmax']:.1%}",
        f"  transition delay: median {median} (bound {dl['bound']:.2f} s), "
        f"{dl['missed']} of {dl['changes'] + dl['missed']} changes missed",
    ]


def evaluate(opts: EvaluateOptions) -> dict[str, Any]:
    pkg, labels, data = open_labelled(
        opts.package, opts.data, plots=opts.plots is not None, read=opts.read
    )
    cal = pkg.card.calibration or Calibration()
    keep = strided(data)
    logits, y = data.logits[keep], data.labels[keep]
    report: dict[str, Any] = {
        "model": pkg.label,
        "labels": list(labels),
        "has_calibration": pkg.card.calibration is not None,
        "temperature": cal.temperature,
        "bias": None if cal.bias is None else list(cal.bias),
        "method": None if cal.conformal is None else cal.conformal.method,
        "stride": data.stride,
        "files": [
            {"file": str(f), "sha256": h} for f, h in zip(data.files, data.sha256, strict=True)
        ],
        **window_metrics(logits, y, cal.temperature, cal.conformal, cal.bias),
        "segments": segment_metrics(data, cal),
    }
    if opts.plots is not None:
        from fsqd.commands.calibration_plots import (
            confusion_plot,
            coverage_plot,
            reliability_plot,
            timeline_plot,
        )

        confusion_plot(opts.plots, logits, y, labels)
        reliability_plot(opts.plots, logits, y, cal.temperature, cal.bias)
        coverage_plot(opts.plots, logits, y, cal, labels)
        first = keep[data.file[keep] == 0]
        timeline_plot(
            opts.plots, data.t_end[first], data.labels[first], data.logits[first].argmax(1), labels
        )
    return report


def render(report: dict[str, Any]) -> list[str]:
    labels = tuple(report["labels"])
    state = "calibrated" if report["has_calibration"] else "not calibrated (raw softmax)"
    out = [
        f"{report['model']}: {state}, {report['windows']} windows (stride {report['stride']})",
        *classification_table(report, labels),
        *probability_table(report, report["temperature"], report["bias"] is not None),
    ]
    if "sets" in report:
        out += sets_table(report["sets"], labels, report["method"])
    out += segments_table(report["segments"])
    return out


def run_evaluate(opts: EvaluateOptions) -> int:
    report = evaluate(opts)
    if opts.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render(report)))
    return 0


__all__ = ["EvaluateOptions", "evaluate", "render", "run_evaluate", "segment_metrics"]

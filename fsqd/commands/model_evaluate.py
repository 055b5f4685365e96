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

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.evaluation import window_metrics
from fsqd.commands.calibration_report import classification_table, probability_table, sets_table
from fsqd.commands.labelled_windows import LabelledWindows, head_labels, load_labelled, strided
from fsqd.errors import UsageError
from fsqd.model.calibration import Calibration
from fsqd.model.package import load_package


@dataclass(frozen=True)
class EvaluateOptions:
    package: Path
    data: tuple[Path, ...]
    plots: Path | None = None
    json: bool = False


def segment_metrics(
    data: LabelledWindows, keep: npt.NDArray[np.int64], cal: Calibration
) -> dict[str, Any] | None:
    """The behaviour states' segment metrics (state changes per hour against the true
    changes, transition delay, state accuracy): computed here once the online behaviour
    states are part of fsqd; None until then."""
    return None


def evaluate(opts: EvaluateOptions) -> dict[str, Any]:
    if not opts.data:
        raise UsageError("give labelled recordings with --data")
    if opts.plots is not None:
        from fsqd.commands.calibration_plots import require_matplotlib

        require_matplotlib()
    pkg = load_package(opts.package)
    labels = head_labels(pkg)
    cal = pkg.card.calibration or Calibration()
    data = load_labelled(pkg, opts.data)
    keep = strided(data)
    logits, y = data.logits[keep], data.labels[keep]
    report: dict[str, Any] = {
        "model": pkg.label,
        "labels": list(labels),
        "has_calibration": pkg.card.calibration is not None,
        "temperature": cal.temperature,
        "method": None if cal.conformal is None else cal.conformal.method,
        "stride": data.stride,
        "files": [
            {"file": str(f), "sha256": h} for f, h in zip(data.files, data.sha256, strict=True)
        ],
        **window_metrics(logits, y, cal.temperature, cal.conformal),
        "segments": segment_metrics(data, keep, cal),
    }
    if opts.plots is not None:
        from fsqd.commands.calibration_plots import (
            confusion_plot,
            coverage_plot,
            reliability_plot,
            timeline_plot,
        )

        confusion_plot(opts.plots, logits, y, labels)
        reliability_plot(opts.plots, logits, y, cal.temperature)
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
        *probability_table(report, report["temperature"]),
    ]
    if "sets" in report:
        out += sets_table(report["sets"], labels, report["method"])
    if report["segments"] is None:
        out.append("behaviour states: no segment metrics (no behaviour model)")
    return out


def run_evaluate(opts: EvaluateOptions) -> int:
    report = evaluate(opts)
    if opts.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render(report)))
    return 0


__all__ = ["EvaluateOptions", "evaluate", "render", "run_evaluate", "segment_metrics"]

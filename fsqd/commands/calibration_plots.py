"""PNG plots of a calibration (``--plots DIR``): matplotlib, from the optional ``plots`` extra.

matplotlib is imported only here and only when plots are asked for; without it the
command stops before any work with one line saying how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.conformal import coverage
from fsqd.behaviour.reliability import BINS, reliability
from fsqd.behaviour.scores import confusion
from fsqd.behaviour.sets import softmax
from fsqd.errors import OutputError, UsageError
from fsqd.model.calibration import Calibration


def require_matplotlib() -> Any:
    """pyplot on the non-interactive Agg backend, or a one-line UsageError."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plots needs matplotlib: pip install 'fsqd[plots]' (or leave out --plots)"
        ) from None
    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return path


def reliability_plot(
    out: Path,
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    temperature: float,
    bias: tuple[float, ...] | None = None,
) -> Path:
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    calibrated = f"T = {temperature:.3g}" + (" + bias" if bias is not None else "")
    for t, b, name in ((1.0, None, "raw"), (temperature, bias, calibrated)):
        r = reliability(softmax(logits, t, b), labels, BINS, "width")
        filled = r.count > 0
        ax.plot(r.confidence[filled], r.accuracy[filled], marker="o", label=f"{name}: ECE "
                f"{100 * r.ece:.1f}%")  # fmt: skip
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability ({BINS} equal-width bins)")
    ax.legend(loc="upper left")
    return _save(plt, fig, out / "reliability.png")


def coverage_plot(
    out: Path,
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    cal: Calibration,
    names: tuple[str, ...],
) -> Path | None:
    if cal.conformal is None:
        return None
    plt = require_matplotlib()
    c = coverage(softmax(logits, cal.temperature, cal.bias), labels, cal.conformal)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(names, [0 if np.isnan(v) else v for v in c.per_class], color="tab:blue")
    ax.axhline(cal.conformal.coverage, color="black", linestyle="--", label="target")
    ax.axhline(c.overall, color="tab:orange", label=f"overall {100 * c.overall:.1f}%")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("coverage")
    ax.set_title(f"{cal.conformal.method.upper()} sets: coverage per label")
    ax.legend(loc="lower right")
    return _save(plt, fig, out / "coverage.png")


def confusion_plot(
    out: Path,
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    names: tuple[str, ...],
) -> Path:
    plt = require_matplotlib()
    m = confusion(labels, logits.argmax(axis=1), len(names))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(m, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _save(plt, fig, out / "confusion.png")


def timeline_plot(
    out: Path,
    t: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    predicted: npt.NDArray[np.int64],
    names: tuple[str, ...],
) -> Path:
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(10, 3))
    rel = t - t[0]
    ax.step(rel, labels, where="post", label="true", linewidth=2)
    ax.step(rel, predicted, where="post", label="predicted", linewidth=1)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right")
    return _save(plt, fig, out / "timeline.png")


def calibration_plots(
    out: Path,
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    cal: Calibration,
    names: tuple[str, ...],
) -> list[Path]:
    written = [reliability_plot(out, logits, labels, cal.temperature, cal.bias)]
    cov = coverage_plot(out, logits, labels, cal, names)
    return written if cov is None else [*written, cov]


__all__ = [
    "calibration_plots",
    "confusion_plot",
    "coverage_plot",
    "reliability_plot",
    "require_matplotlib",
    "timeline_plot",
]

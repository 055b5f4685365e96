"""The tables ``fsqd model calibrate`` and ``fsqd model evaluate`` print, from their metrics."""

from __future__ import annotations

from typing import Any

PROBABILITY_ROWS = (
    ("ece", "ECE (15 equal-width bins)"),
    ("ece_adaptive", "ECE (15 equal-mass bins)"),
    ("mce", "MCE"),
    ("nll", "NLL"),
    ("brier", "Brier"),
)


def _pct(v: float | None) -> str:
    return "   -" if v is None else f"{100 * v:5.1f}%"


def probability_table(m: dict[str, Any], temperature: float, bias: bool = False) -> list[str]:
    calibrated = f"T = {temperature:.3f}" + (" + b" if bias else "")
    out = [f"{'':<26} {'raw':>9} {calibrated:>16}"]
    for key, name in PROBABILITY_ROWS:
        before, after = m["raw"][key], m["calibrated"][key]
        if key.startswith(("ece", "mce")):
            out.append(f"{name:<26} {_pct(before):>9} {_pct(after):>16}")
        else:
            out.append(f"{name:<26} {before:9.4f} {after:16.4f}")
    return out


def classification_table(m: dict[str, Any], labels: tuple[str, ...]) -> list[str]:
    width = max(8, *(len(n) for n in labels))
    out = [
        f"accuracy {_pct(m['accuracy']).strip()}, macro-F1 {m['macro_f1']:.3f} "
        f"over {m['windows']} windows",
        "confusion (rows: true, columns: predicted):",
        " " * (width + 1) + " ".join(f"{n[:7]:>7}" for n in labels) + f" {'F1':>6}",
    ]
    for name, row, f1 in zip(labels, m["confusion"], m["f1"], strict=True):
        cells = " ".join(f"{v:7d}" for v in row)
        out.append(f"{name:<{width}} {cells} {f1:6.3f}")
    return out


def sets_table(s: dict[str, Any], labels: tuple[str, ...], method: str) -> list[str]:
    out = [
        f"{method.upper()} sets at {s['target']:g}: coverage {_pct(s['coverage']).strip()}, "
        f"mean set size {s['mean_set_size']:.2f}, empty sets {_pct(s['empty_sets']).strip()}",
        "  coverage per label: "
        + ", ".join(f"{n} {_pct(v).strip()}" for n, v in zip(labels, s["per_label"], strict=True)),
    ]
    return out


__all__ = ["classification_table", "probability_table", "sets_table"]

"""`fsqd model parity`: every backend that can run, on the same windows, compared.

Reports, per pair, the cosine similarity of the encoder outputs (mean and worst window),
the largest absolute difference and the share of windows with the same FSQ code. Targets
from the model's requirements: HEF vs ONNX cosine >= 0.95, ONNX vs the training framework
(``--reference``: the encoder outputs your PyTorch code saved for the same windows) >= 0.99.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.backends.hailo.encoder import HailoEncoder
from fsqd.backends.hailo.status import HailoUnavailableError
from fsqd.backends.onnx import OnnxEncoder
from fsqd.backends.select import hef_path
from fsqd.config.hailo import HailoSettings
from fsqd.errors import DataError
from fsqd.fsq import FSQ
from fsqd.model.card import expected_input_shape
from fsqd.model.package import ModelPackage
from fsqd.safefile import ARRAY_MAX, regular_file

TARGETS: dict[tuple[str, str], float] = {("hailo", "onnx"): 0.95, ("onnx", "reference"): 0.99}
BATCH = 256

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    windows: int
    cosine_mean: float
    cosine_min: float
    max_abs_diff: float
    same_codes: float  # share of windows whose FSQ code index is identical
    target: float | None  # minimum mean cosine, when the requirements name one

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.cosine_mean >= self.target


@dataclass(frozen=True)
class ParityReport:
    windows: int
    backends: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    hailo: dict[str, Any] = field(default_factory=dict)  # the NPU's counters (range share)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.comparisons)

    def lines(self) -> list[str]:
        out = [f"{self.windows} windows through {', '.join(self.backends)}"]
        for name, why in self.skipped.items():
            out.append(f"{name}: skipped ({why})")
        out.append(
            f"{'pair':<18} {'cos mean':>9} {'cos min':>9} {'max |d|':>9} {'same code':>10}  target"
        )
        for c in self.comparisons:
            verdict = "-" if c.target is None else f">= {c.target:g} {'ok' if c.passed else 'FAIL'}"
            out.append(
                f"{c.a + ' vs ' + c.b:<18} {c.cosine_mean:9.4f} {c.cosine_min:9.4f} "
                f"{c.max_abs_diff:9.4g} {c.same_codes:10.1%}  {verdict}"
            )
        share = self.hailo.get("input_out_of_range_share")
        if share is not None:
            lo, hi = self.hailo["input_range"]
            out.append(f"inputs outside the HEF's range [{lo:.4g}, {hi:.4g}]: {share:.2%}")
        return out


def cosine(a: Array, b: Array) -> npt.NDArray[np.float64]:
    """Per-window cosine similarity; two zero vectors count as identical."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
    dot = (a64 * b64).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = dot / (na * nb)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, np.nan_to_num(c, nan=0.0))


def compare(package: ModelPackage, a: str, ya: Array, b: str, yb: Array) -> Comparison:
    fsq = FSQ(package.card.levels)
    bound = fsq.bound if package.card.output.stage == "projection" else (lambda v: v)
    cos = cosine(ya, yb)
    same = fsq.indices_from_bounded(bound(ya)) == fsq.indices_from_bounded(bound(yb))
    return Comparison(
        a,
        b,
        len(ya),
        float(cos.mean()),
        float(cos.min()),
        float(np.abs(ya.astype(np.float64) - yb).max()),
        float(same.mean()),
        TARGETS.get((a, b)),
    )


def _load(path: Path, what: str) -> npt.NDArray[np.floating]:
    regular_file(path, what="a .npy array", limit=ARRAY_MAX)  # loaded whole
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype not in (np.float32, np.float64):
        raise DataError(f"{path}: {what} must be one float32 array")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: {what} hold NaN or inf values")
    return arr


def _run(encoder: Any, x: Array) -> Array:
    return np.concatenate([encoder(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])


def run_parity(
    package: ModelPackage,
    windows: Path,
    *,
    reference: Path | None = None,
    hailo: HailoSettings | None = None,
) -> ParityReport:
    card = package.card
    want = expected_input_shape(card)
    x = _load(windows, "windows")
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or len(x) == 0:
        raise DataError(
            f"{windows}: windows have shape {list(x.shape)}, model {package.label} expects "
            f"[N, {', '.join(map(str, want))}] (layout {card.input.layout}), normalised"
        )
    x32 = np.ascontiguousarray(x, np.float32)
    outputs: dict[str, Array] = {}
    skipped: dict[str, str] = {}
    hailo_stats: dict[str, Any] = {}
    hef = hef_path(package)
    if hef is None:
        skipped["hailo"] = "no encoder.hef in the package"
    else:
        try:
            npu = HailoEncoder(package, hef, hailo)
        except HailoUnavailableError as e:
            skipped["hailo"] = str(e)
        else:
            try:
                outputs["hailo"] = _run(npu, x32)
                hailo_stats = npu.stats()
            finally:
                npu.close()
    outputs["onnx"] = _run(OnnxEncoder(package), x32)
    if reference is not None:
        ref = _load(reference, "reference outputs")
        if ref.shape != (len(x), card.output.width):
            raise DataError(
                f"{reference}: reference outputs are {list(ref.shape)}, expected "
                f"[{len(x)}, {card.output.width}] ({card.output.stage} stage, one row per window)"
            )
        outputs["reference"] = np.asarray(ref, np.float32)
    pairs = [("hailo", "onnx"), ("onnx", "reference"), ("hailo", "reference")]
    comparisons = tuple(
        compare(package, a, outputs[a], b, outputs[b])
        for a, b in pairs
        if a in outputs and b in outputs
    )
    return ParityReport(len(x), tuple(outputs), comparisons, skipped, hailo_stats)

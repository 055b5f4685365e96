"""Running a model that takes exactly B rows per call on any number of rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Run = Callable[[npt.NDArray[Any]], Sequence[npt.NDArray[Any]]]


def fixed_batch_of(shape: Sequence[Any]) -> int | None:
    """The batch size baked into an ONNX input shape, or None when the axis is dynamic."""
    first = shape[0] if len(shape) else None
    return first if isinstance(first, int) and first > 0 else None


def run_padded(run: Run, x: npt.NDArray[Any], batch: int | None) -> list[npt.NDArray[Any]]:
    """``run(x)`` for a model whose batch axis is fixed at ``batch``: slices of ``batch``
    rows, the last one zero-padded, and only the real rows of every output kept."""
    if batch is None or len(x) == batch:
        return list(run(x))
    parts: list[list[npt.NDArray[Any]]] = []
    for i in range(0, len(x), batch):
        part = x[i : i + batch]
        rows = len(part)
        if rows < batch:
            padded = np.zeros((batch, *x.shape[1:]), x.dtype)
            padded[:rows] = part
            part = padded
        parts.append([np.asarray(o)[:rows] for o in run(part)])
    if not parts:
        raise ValueError("run_padded needs at least one row")
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

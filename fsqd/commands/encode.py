"""`fsqd encode`: already-shaped, normalised windows from a .npy file -> JSON lines.

The parity tool: feed the windows your training code fed the model and compare codes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from fsqd.backends.select import open_encoder
from fsqd.console import note
from fsqd.errors import DataError, NoInputError
from fsqd.model.card import expected_input_shape
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline
from fsqd.recordings.arrays import NPY_MAGIC
from fsqd.safefile import regular_file
from fsqd.sinks.batchlines import BatchLineFormatter
from fsqd.sinks.jsonl import Output, write_lines


@dataclass(frozen=True)
class EncodeOptions:
    windows: Path  # a .npy of windows already cut and normalised, (N, *input shape)
    model: Path | None = None  # model package (None: bundled)
    out: Path | None = None  # JSON lines here (None: stdout)
    batch: int = 1024  # windows per inference
    backend: str = "auto"


def encode(opts: EncodeOptions) -> int:
    n = _encode(opts.model, opts.windows, lambda: Output(opts.out), opts.batch, opts.backend)
    note(f"encoded {n} windows")
    return 0


def load_windows(path: Path) -> npt.NDArray[np.floating]:
    """Memory-map a .npy of windows; reject what is not a float array."""
    regular_file(path, what="a .npy array")  # memory-mapped: no size cap
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
    except OSError as e:
        raise NoInputError(f"{path}: cannot read: {e.strerror or e}") from None
    if magic != NPY_MAGIC:
        raise DataError(
            f"{path}: not a .npy array; encode takes windows already cut and normalised "
            f"(N, *input shape); for a recording (CSV, .npz) use: fsqd replay {path}"
        )
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: expected one .npy array, got an archive")
    if arr.dtype not in (np.float32, np.float64):
        raise DataError(f"{path}: windows have dtype {arr.dtype}, expected float32 (or float64)")
    return arr


def encode_file(
    model: Path | None, windows: Path, out: TextIO, *, batch: int = 1024, backend: str = "auto"
) -> int:
    return _encode(model, windows, lambda: nullcontext(out), batch, backend)


def _encode(
    model: Path | None,
    windows: Path,
    open_out: Callable[[], AbstractContextManager[TextIO]],
    batch: int,
    backend: str,
) -> int:
    # The model, the windows and the encoder are all checked before the output is opened:
    # bad input is one line and leaves nothing behind (no partial file, an old output
    # untouched).
    pkg = load_package(model)
    arr = checked_windows(pkg, windows, batch)
    encoder = open_encoder(pkg, backend)
    try:
        pipeline = CodePipeline(pkg, encoder)
        with open_out() as out:
            return _write_codes(pkg, pipeline, arr, out, batch)
    finally:
        encoder.close()


def checked_windows(
    pkg: ModelPackage, windows: Path, batch: int = 1024
) -> npt.NDArray[np.floating]:
    """The windows of ``windows`` (memory-mapped) once their type, their shape for ``pkg``
    and every value (finite) are checked: nothing is written before that."""
    arr = load_windows(windows)
    want = expected_input_shape(pkg.card)
    if arr.ndim != len(want) + 1 or tuple(arr.shape[1:]) != want:
        raise DataError(
            f"{windows}: windows have shape {list(arr.shape)}, model {pkg.label} expects "
            f"[N, {', '.join(map(str, want))}] (layout {pkg.card.input.layout})"
        )
    for start in range(0, len(arr), batch):
        finite = np.isfinite(arr[start : start + batch]).reshape(-1, int(np.prod(want))).all(axis=1)
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite)[0])
            raise DataError(f"{windows}: window {bad} holds NaN or inf values")
    return arr


def _write_codes(
    pkg: ModelPackage,
    pipeline: CodePipeline,
    arr: npt.NDArray[np.floating],
    out: TextIO,
    batch: int,
) -> int:
    fmt = BatchLineFormatter(pkg.label, pipeline.labels)
    for start in range(0, len(arr), batch):
        x = np.ascontiguousarray(arr[start : start + batch], dtype=np.float32)
        write_lines(out, fmt(start, pipeline.encode(x)))
    return len(arr)


__all__ = ["EncodeOptions", "checked_windows", "encode", "encode_file", "load_windows"]

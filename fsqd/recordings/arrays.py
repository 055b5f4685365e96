"""NumPy recordings: ``.npy`` (samples x channels, with ``--rate``), or ``.npz`` with
``t``/``x`` or one array per column. Arrays are memory-mapped where numpy can and
checked block by block, naming a bad row by its index."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, FsqdError, NoInputError
from fsqd.recordings.base import (
    ABSOLUTE_AFTER,
    F64,
    PROBE_ROWS,
    TIME_NAMES,
    ReadOptions,
    Recording,
    Where,
    shown_names,
)
from fsqd.units import column_names

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (possibly empty)


class ArrayRecording(Recording):
    """.npy (n, 9*D) with ``rate_hz``, or .npz with ``t``/``x`` or one array per column."""

    def __init__(self, path: Path, options: ReadOptions) -> None:
        super().__init__(path, options)
        self._datetime = False  # the time array was datetime64
        self.t, self.x = self._load()
        if self.t is None and options.rate_hz is None:
            raise DataError(f"{path}: no time array (t, time or timestamp); give --rate")
        self.timed = self.t is not None
        if self._datetime:
            self.time_unit, self.time_unit_reason = "iso", "datetime64 array"
        elif self.t is not None:
            self._decide_time_unit(np.asarray(self.t[:PROBE_ROWS], np.float64))
        if len(self.x) == 0:
            raise DataError(f"{path}: no samples")

    def _load(self) -> tuple[F64 | None, npt.NDArray[Any]]:
        path = self.path
        try:
            with path.open("rb") as fh:
                magic = fh.read(6)
        except OSError as e:
            raise NoInputError(f"{path}: cannot read: {e.strerror or e}") from None
        if not (magic.startswith(NPY_MAGIC) or magic.startswith(ZIP_MAGICS)):
            raise DataError(f"{path}: not a NumPy .npy or .npz file")
        try:
            loaded = np.load(path, mmap_mode="r", allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                x = _matrix(loaded, path)
                self._device_count(x.shape[1], str(path))
                self.columns = tuple(column_names(self.options.channels, self.file_devices))
                return None, x
            with loaded:
                return self._load_npz(loaded)
        except FsqdError:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            why = " ".join(str(e).split())
            raise DataError(f"{path}: not a readable NumPy file ({why})") from None

    def _load_npz(self, z: Any) -> tuple[F64 | None, npt.NDArray[Any]]:
        path, opts = self.path, self.options
        keys = {k.lower(): k for k in z.files}
        listing = shown_names(z.files)
        if opts.time_column is not None:
            if opts.time_column.lower() not in keys:
                raise DataError(f"{path}: no array {opts.time_column!r}; the file has: {listing}")
            tkey: str | None = keys[opts.time_column.lower()]
        else:
            tkey = next((keys[n] for n in TIME_NAMES if n in keys), None)
        t = None if tkey is None else self._times(np.asarray(z[tkey]))
        if "x" in keys and opts.columns is None:
            x = _matrix(z[keys["x"]], path)
            self._device_count(x.shape[1], str(path))
            self.columns = tuple(column_names(opts.channels, self.file_devices))
        else:
            names = self._pick_names(keys)
            missing = [n for n in names if n.lower() not in keys]
            if missing:
                raise DataError(f"{path}: no array {missing[0]!r}; the file has: {listing}")
            self._device_count(len(names), str(path))
            arrays = [np.asarray(z[keys[n.lower()]]) for n in names]
            for n, a in zip(names, arrays, strict=True):
                if a.ndim != 1 or len(a) != len(arrays[0]) or a.dtype.kind not in "fiu":
                    raise DataError(
                        f"{path}: array {n!r} has shape {a.shape} and dtype {a.dtype}, "
                        f"expected ({len(arrays[0])},) numbers"
                    )
            x = np.column_stack(arrays)
            self.columns = tuple(keys[n.lower()] for n in names)
        if t is not None and (t.ndim != 1 or len(t) != len(x)):
            raise DataError(f"{path}: time array has shape {t.shape}, expected ({len(x)},)")
        return t, x

    def _times(self, t: npt.NDArray[Any]) -> F64:
        if t.dtype.kind == "M":  # datetime64: UTC by numpy's convention
            self._datetime = True
            us = t.astype("datetime64[us]")
            out = us.astype(np.int64).astype(np.float64) / 1e6
            out[np.isnat(us)] = np.nan
            return out
        if t.dtype.kind not in "fiu":
            raise DataError(f"{self.path}: time array has dtype {t.dtype}, expected numbers")
        return np.asarray(t, np.float64)

    def chunks(self) -> Iterator[SampleChunk]:
        opts = self.options
        finish = self._finisher()
        n = len(self.x)
        last: float | None = None
        for a in range(0, n, opts.chunk_rows):
            b = min(n, a + opts.chunk_rows)
            x = np.asarray(self.x[a:b], np.float64)
            if self.t is not None:
                t = self._to_seconds(self.t[a:b])
            else:
                t = np.arange(a, b, dtype=np.float64) / float(opts.rate_hz or 1.0)
            t, x = self._check_rows(t, x, _at_row(self.path, a), last)
            if len(t) == 0:
                continue
            if last is None:
                self.absolute_time = self._datetime or float(t[0]) > ABSOLUTE_AFTER
            new_segment = last is None
            last = float(t[-1])
            yield SampleChunk(t, finish(x), new_segment=new_segment)
        if last is None:
            raise DataError(f"{self.path}: no samples")


def _at_row(path: Path, first: int) -> Where:
    return lambda k: f"{path}: row {first + k}"


def _matrix(a: Any, path: Path) -> npt.NDArray[Any]:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype.kind not in "fiu":
        shape, dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
        raise DataError(
            f"{path}: expected a 2-D numeric array (samples, channels), "
            f"got shape {shape} dtype {dtype}"
        )
    return a


__all__ = ["NPY_MAGIC", "ArrayRecording"]

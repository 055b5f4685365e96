"""What every recorded-file reader shares: the options, and the opened ``Recording``.

A ``Recording`` resolves the file's columns against the model card's channels (device-major,
``ax`` or ``ax_0 ..``), decides the time unit, scales and fills devices, and checks every
block of rows: values finite and within float32 once scaled, timestamps increasing. Each
format (``csvfile``, ``arrays``, ``fsqr``) subclasses it and only reads.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, UsageError
from fsqd.stream.timebase import UNITS, detect_time_unit
from fsqd.units import column_names

TIME_NAMES = ("t", "time", "timestamp")
ABSOLUTE_AFTER = 1e8  # numeric seconds past this are UNIX epoch times (1973 onwards)
PROBE_ROWS = 4096  # timestamps read ahead to decide their unit, whatever the chunk size
F32_MAX = float(np.finfo(np.float32).max)
TIME_UNITS = (*UNITS, "iso")

F64 = npt.NDArray[np.float64]
Where = Callable[[int], str]  # row k of a block -> "FILE:LINE" or "FILE: row N"


@dataclass(frozen=True)
class ReadOptions:
    channels: tuple[str, ...]  # the card's channel names, e.g. ax..mz
    devices: int = 1  # the card's device count D
    time_column: str | None = None  # default: t, time or timestamp (any case)
    columns: tuple[str, ...] | None = None  # file columns in card order, device by device
    rate_hz: float | None = None  # for files without timestamps: t = k / rate
    scale: Mapping[str, float] = field(default_factory=dict)  # channel name or pattern -> factor
    fill: Literal["duplicate"] | None = None  # fewer devices in the file: copy device 0
    skip_bad_rows: bool = False  # also: time going back passes through (a new segment)
    use_arrow: bool = True  # pyarrow's CSV parser when installed (the `csv` extra)
    chunk_rows: int = 65536
    time_unit: str | None = None  # s, ms, us, ns or iso; default: detected


def iso_to_epoch(text: str) -> float:
    """ISO-8601 (``Z``, an offset, or naive = UTC) -> UNIX seconds; ValueError otherwise."""
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def iso_column_to_epoch(strings: list[str]) -> F64:
    """ISO-8601 -> UNIX seconds; numpy's vectorised parser for plain UTC forms.

    numpy only warns about UTC offsets (and reads some other forms loosely), so it gets
    only strings that are plainly ``YYYY-MM-DD[T ]hh:mm[:ss[.f]][Z]``; the rest, and any
    block it fails on, go through ``iso_to_epoch`` row by row (ValueError on a bad one).
    """
    clean = [s.strip().strip('"') for s in strings]
    plain = [s[:-1] if s.endswith("Z") else s for s in clean]
    joined = "".join(plain)
    if not any(c in joined for c in "+,zZ") and joined.count("-") == 2 * len(plain):
        try:
            stamps = np.array(plain, dtype="datetime64[us]")
        except ValueError:
            stamps = None
        if stamps is not None and not np.isnat(stamps).any():
            return stamps.astype(np.int64).astype(np.float64) / 1e6
    return np.array([iso_to_epoch(s) for s in clean], np.float64)


def _check_options(options: ReadOptions) -> None:
    if not options.channels:
        raise UsageError("the model card names no channels")
    if options.devices < 1:
        raise UsageError(f"devices must be >= 1, got {options.devices}")
    if options.rate_hz is not None and not (math.isfinite(options.rate_hz) and options.rate_hz > 0):
        raise UsageError(f"--rate must be a positive number of Hz, got {options.rate_hz}")
    if options.fill not in (None, "duplicate"):
        raise UsageError(f"--fill must be 'duplicate', got {options.fill!r}")
    if options.chunk_rows < 1:
        raise UsageError(f"chunk_rows must be >= 1, got {options.chunk_rows}")
    if options.time_unit is not None and options.time_unit not in TIME_UNITS:
        raise UsageError(
            f"--time-unit must be one of {', '.join(TIME_UNITS)}, got {options.time_unit!r}"
        )


def _scale_vector(options: ReadOptions) -> F64 | None:
    """Per-channel factors from names or fnmatch patterns; None when there are none."""
    if not options.scale:
        return None
    factors = np.ones(len(options.channels), np.float64)
    for pattern, factor in options.scale.items():
        hits = [i for i, c in enumerate(options.channels) if fnmatch.fnmatchcase(c, pattern)]
        if not hits:
            raise UsageError(
                f"scale {pattern!r} matches no channel of the model ({', '.join(options.channels)})"
            )
        if not math.isfinite(factor) or factor == 0:
            raise UsageError(f"scale factor for {pattern!r} must be finite and non-zero")
        factors[hits] = factor
    return factors


def shown_names(names: Sequence[str]) -> str:
    """Column names for a one-line message; anything unprintable (a binary file) as a repr."""
    text = ", ".join(n if n.isprintable() else repr(n) for n in names)
    return text if len(text) <= 300 else text[:300] + " ..."


class Recording:
    """An opened recording: columns resolved and checked; ``chunks()`` reads the samples."""

    path: Path
    columns: tuple[str, ...]  # the file columns used, in card order
    absolute_time: bool  # timestamps are UNIX epoch seconds (known after the first chunk)
    file_devices: int  # devices in the file (fewer than the card's with fill)
    bad_rows: int  # rows skipped (only with skip_bad_rows)
    timed: bool  # the file has timestamps (else t = k / rate from --rate)
    time_unit: str  # s, ms, us, ns or iso: how the time column was read
    time_unit_reason: str  # "given", "detected: step 10 ms -> 100 Hz, ..." for the summary

    def __init__(self, path: Path, options: ReadOptions) -> None:
        _check_options(options)
        self.path = path
        self.options = options
        self.bad_rows = 0
        self.absolute_time = False
        self.file_devices = options.devices
        self.columns = ()
        self._scale = _scale_vector(options)
        self.timed = True  # subclasses without timestamps say so
        self.time_unit = "s"
        self.time_unit_reason = "seconds"
        self._seconds_per_unit = 1.0

    def _decide_time_unit(self, probe: F64) -> None:
        """Numeric timestamps' unit: the one asked for, else detected on the file's head."""
        forced = self.options.time_unit
        if forced == "iso":
            raise DataError(f"{self.path}: --time-unit iso, but the time column holds numbers")
        if forced is not None:
            self.time_unit, self.time_unit_reason = forced, "given with --time-unit"
        else:
            probe = probe[np.isfinite(probe)]
            if len(probe) < 2:
                self.time_unit, self.time_unit_reason = "s", "assumed (fewer than 2 timestamps)"
            else:
                try:
                    guess = detect_time_unit(probe)
                except DataError as e:
                    raise DataError(f"{self.path}: {e}") from None
                self.time_unit, self.time_unit_reason = guess.unit, f"detected: {guess.reason}"
        self._seconds_per_unit = UNITS[self.time_unit]

    def _to_seconds(self, t: F64) -> F64:
        return t if self._seconds_per_unit == 1.0 else t * self._seconds_per_unit

    def chunks(self) -> Iterator[SampleChunk]:
        raise NotImplementedError

    def _pick_names(self, available: Collection[str]) -> list[str]:
        """File columns to use, given the lower-cased names the file has.

        A card with several devices takes ``<ch>_<d>``; a file holding one device may
        name it plainly or as device 0, and ``_device_count`` then decides about fill.
        """
        opts = self.options
        if opts.columns is not None:
            return list(opts.columns)
        full = column_names(opts.channels, opts.devices)
        if opts.devices == 1 or all(n.lower() in available for n in full):
            return full
        for one in (list(opts.channels), [f"{c}_0" for c in opts.channels]):
            if all(n.lower() in available for n in one):
                return one
        return full  # the caller names the first one missing

    def _device_count(self, n_columns: int, where: str) -> None:
        n_ch = len(self.options.channels)
        want = self.options.devices
        if n_columns == n_ch * want:
            self.file_devices = want
        elif n_columns == n_ch and want > 1 and self.options.fill == "duplicate":
            self.file_devices = 1
        elif n_columns == n_ch and want > 1:
            raise DataError(
                f"{where}: the file has 1 device but the model needs {want}; "
                "pass --fill duplicate to copy it to the others"
            )
        else:
            raise DataError(
                f"{where}: {n_columns} channel columns, the model needs {n_ch * want} "
                f"({n_ch} channels x {want} devices)"
            )

    @property
    def _f32_limit(self) -> F64 | float:
        """Largest raw magnitude per file column that still fits float32 once scaled."""
        if self._scale is None:
            return F32_MAX
        return F32_MAX / np.abs(np.tile(self._scale, self.file_devices))

    def _finisher(self) -> Callable[[F64], npt.NDArray[np.float32]]:
        """Scale per channel (every device's copy) and copy device 0 to missing devices."""
        n_ch, want, have = len(self.options.channels), self.options.devices, self.file_devices
        scale = None if self._scale is None else np.tile(self._scale, have)

        def finish(x: F64) -> npt.NDArray[np.float32]:
            if scale is not None:
                x = x * scale
            if have < want:
                x = np.tile(x[:, :n_ch], want)
            return np.ascontiguousarray(x, np.float32)

        return finish

    def _check_rows(self, t: F64, x: F64, where: Where, last_t: float | None) -> tuple[F64, F64]:
        """Bad values and timestamps: error, or drop and count (``skip_bad_rows``).

        Values must be finite and, once scaled, fit float32 (1e39 is finite in float64 but
        inf to the model). A timestamp equal to the previous one is a repeated row; one
        before it is an error, or with ``skip_bad_rows`` kept: the stream stages start a
        new segment there (a logger restart), they do not drop the rest of the file.
        """
        finite = np.isfinite(x)
        fits = np.abs(x) <= self._f32_limit
        keep = (finite & fits).all(axis=1) & np.isfinite(t)
        if not keep.all():
            if not self.options.skip_bad_rows:
                k = int(np.flatnonzero(~keep)[0])
                if not math.isfinite(t[k]):
                    raise DataError(f"{where(k)}: timestamp {float(t[k])!r} is not a finite number")
                if not finite[k].all():
                    raise DataError(f"{where(k)}: NaN or inf value")
                c = int(np.flatnonzero(~fits[k])[0])
                scaled = " after --scale" if self._scale is not None else ""
                raise DataError(
                    f"{where(k)}: value {float(x[k, c]):.6g} in column {self.columns[c]!r} "
                    f"does not fit float32 (largest {F32_MAX:.4g}{scaled})"
                )
            self.bad_rows += int((~keep).sum())
            rows = np.flatnonzero(keep)
            t, x = t[keep], x[keep]
            where = _renumbered(where, rows)
        prev = -np.inf if last_t is None else last_t
        steps = np.diff(t, prepend=prev)
        if (steps <= 0).any():
            if not self.options.skip_bad_rows:
                k = int(np.flatnonzero(steps <= 0)[0])
                before = float(prev if k == 0 else t[k - 1])
                raise DataError(
                    f"{where(k)}: timestamp {float(t[k])!r} is not after the previous one "
                    f"({before!r})"
                )
            # A run of repeats compares equal to the row kept before it: all dropped.
            ok = steps != 0
            self.bad_rows += int((~ok).sum())
            t, x = t[ok], x[ok]
        return t, x


def _renumbered(where: Where, rows: npt.NDArray[np.intp]) -> Where:
    """``where`` for a block from which rows were dropped: k is an index into ``rows``."""
    return lambda k: where(int(rows[k]))


__all__ = [
    "ABSOLUTE_AFTER",
    "PROBE_ROWS",
    "TIME_NAMES",
    "ReadOptions",
    "Recording",
    "Where",
    "iso_column_to_epoch",
    "iso_to_epoch",
    "shown_names",
]

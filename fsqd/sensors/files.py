"""Readers for recorded IMU files (CSV with a header, .npy, .npz), chunk by chunk.

Every reader yields ``SampleChunk``s with columns in the model card's order (device-major)
and never holds the whole file in memory. Clean CSV takes a fast path (numpy's C parser
on a block of lines); only a block that fails it is re-read line by line to name the
first bad line as FILE:LINE, or to skip and count bad rows when asked.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError, NoInputError, UsageError
from fsqd.stream.chunk import SampleChunk

TIME_NAMES = ("t", "time", "timestamp")
ABSOLUTE_AFTER = 1e8  # numeric seconds past this are UNIX epoch times (1973 onwards)


@dataclass(frozen=True)
class ReadOptions:
    channels: tuple[str, ...]  # the card's channel names, e.g. ax..mz
    devices: int = 1  # the card's device count D
    time_column: str | None = None  # default: t, time or timestamp (any case)
    columns: tuple[str, ...] | None = None  # file columns in card order, device by device
    rate_hz: float | None = None  # for files without timestamps
    scale: Mapping[str, float] = field(default_factory=dict)  # channel name or pattern -> factor
    fill: Literal["duplicate"] | None = None  # fewer devices in the file: copy device 0
    skip_bad_rows: bool = False
    chunk_rows: int = 65536


def column_names(channels: Sequence[str], devices: int) -> list[str]:
    """File column names for a card: ``ax`` for one device, ``ax_0``, ``ax_1`` for more."""
    if devices == 1:
        return list(channels)
    return [f"{c}_{d}" for d in range(devices) for c in channels]


def _scale_vector(options: ReadOptions) -> npt.NDArray[np.float64] | None:
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


class Recording:
    """An opened recording; iterate ``chunks()`` once."""

    path: Path
    columns: tuple[str, ...]
    absolute_time: bool
    file_devices: int
    bad_rows: int

    def __init__(self, path: Path, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        self.bad_rows = 0
        self.absolute_time = False
        self.file_devices = options.devices
        self.columns = ()
        self._scale = _scale_vector(options)

    def chunks(self) -> Iterator[SampleChunk]:
        raise NotImplementedError

    def _finish(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Scale per channel and copy device 0 to missing devices."""
        n_ch = len(self.options.channels)
        if self._scale is not None:
            x = x * np.tile(self._scale, self.file_devices)
        if self.file_devices < self.options.devices:
            x = np.tile(x[:, :n_ch], self.options.devices)
        return np.ascontiguousarray(x, np.float32)

    def _check_rows(
        self,
        t: npt.NDArray[np.float64],
        x: npt.NDArray[np.float64],
        where: Callable[[int], str],
        last_t: float | None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """NaN/inf values and non-increasing timestamps: error, or drop and count.

        ``where(k)`` names row k of this block for messages (FILE:LINE, or FILE: row N).
        """
        keep = np.isfinite(x).all(axis=1) & np.isfinite(t)
        if not keep.all():
            if not self.options.skip_bad_rows:
                raise DataError(f"{where(int(np.flatnonzero(~keep)[0]))}: NaN or inf value")
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
            # Keep only rows later than everything kept before them.
            running = np.maximum.accumulate(np.concatenate([[prev], t]))[:-1]
            ok = t > running
            self.bad_rows += int((~ok).sum())
            t, x = t[ok], x[ok]
        return t, x

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


# -- CSV --


class CsvRecording(Recording):
    def __init__(self, path: Path, options: ReadOptions) -> None:
        super().__init__(path, options)
        try:
            # utf-8-sig: spreadsheet exports start with a byte-order mark.
            self._fh = path.open("r", encoding="utf-8-sig", newline="")
            header = self._fh.readline()
        except UnicodeDecodeError:
            raise DataError(f"{path}:1: not a UTF-8 text file") from None
        if not header.strip():
            raise DataError(f"{path}: no samples (empty file)")
        self.delimiter = max((",", ";", "\t"), key=header.count)
        self.header = [h.strip().strip('"') for h in header.rstrip("\r\n").split(self.delimiter)]
        self._resolve_columns()

    def _resolve_columns(self) -> None:
        opts = self.options
        where = f"{self.path}:1"
        index = {h.lower(): i for i, h in enumerate(self.header)}

        def find(name: str) -> int:
            i = index.get(name.lower())
            if i is None:
                raise DataError(
                    f"{where}: no column {name!r}; the file has columns: {', '.join(self.header)}"
                )
            return i

        if opts.time_column is not None:
            self.time_index: int | None = find(opts.time_column)
        else:
            self.time_index = next((index[n] for n in TIME_NAMES if n in index), None)
        if self.time_index is None and opts.rate_hz is None:
            raise DataError(
                f"{where}: no time column (t, time or timestamp); name it with --time-column "
                "or give the sample rate with --rate"
            )
        if opts.columns is not None:
            names = list(opts.columns)
        else:
            names = column_names(opts.channels, opts.devices)
            if opts.devices > 1 and any(n.lower() not in index for n in names):
                plain = list(opts.channels)
                if all(n.lower() in index for n in plain):
                    names = plain  # one device in the file; _device_count decides
        self._device_count(len(names), where)
        self.channel_index = [find(n) for n in names]
        self.columns = tuple(self.header[i] for i in self.channel_index)

    def chunks(self) -> Iterator[SampleChunk]:
        try:
            yield from self._chunks()
        except UnicodeDecodeError:
            raise DataError(f"{self.path}: not a UTF-8 text file") from None
        finally:
            self._fh.close()

    def _chunks(self) -> Iterator[SampleChunk]:
        opts = self.options
        line_no = 1  # the header
        last_t: float | None = None
        first = True
        iso: bool | None = None
        emitted = 0
        while True:
            lines = list(itertools.islice(self._fh, opts.chunk_rows))
            if not lines:
                break
            start = line_no + 1
            line_no += len(lines)
            if iso is None:
                iso = self._is_iso(lines[0])
            t, x, numbers = self._parse(lines, start, iso)
            if t is None:
                # Time from the row's place in the file, so a skipped bad row leaves a hole.
                t = (numbers - 2).astype(np.float64) / float(opts.rate_hz or 1.0)
            t, x = self._check_rows(t, x, _at_line(self.path, numbers), last_t)
            if len(t) == 0:
                continue
            if first:
                self.absolute_time = bool(iso) or float(t[0]) > ABSOLUTE_AFTER
            last_t = float(t[-1])
            emitted += len(t)
            yield SampleChunk(t, self._finish(x), new_segment=first)
            first = False
        if emitted == 0:
            raise DataError(f"{self.path}: no samples")

    def _is_iso(self, line: str) -> bool:
        if self.time_index is None:
            return False
        fields = line.rstrip("\r\n").split(self.delimiter)
        if len(fields) <= self.time_index:
            return False
        value = fields[self.time_index].strip()
        try:
            float(value)
            return False
        except ValueError:
            return "-" in value and ":" in value

    def _parse(
        self, lines: list[str], start: int, iso: bool
    ) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """(t or None, x, line numbers); fast path first, line by line only on failure."""
        cols = list(self.channel_index)
        if self.time_index is not None and not iso:
            cols = [self.time_index, *cols]
        try:
            data = np.loadtxt(
                lines, delimiter=self.delimiter, usecols=cols, dtype=np.float64, ndmin=2,
                comments=None, quotechar='"',
            )  # fmt: skip
            if len(data) != len(lines) or (self._width_mismatch(lines)):
                raise ValueError("row count")
            t = None
            if self.time_index is not None:
                t = _parse_iso(self._time_strings(lines)) if iso else data[:, 0].copy()
                if not iso:
                    data = data[:, 1:]
            numbers = np.arange(start, start + len(lines), dtype=np.int64)
            return t, data, numbers
        except (ValueError, IndexError):
            return self._parse_slow(lines, start, iso)

    def _width_mismatch(self, lines: list[str]) -> bool:
        """loadtxt with usecols ignores extra fields; a row must have the header's width."""
        d = self.delimiter
        want = len(self.header) - 1
        first, last = lines[0].count(d), lines[-1].count(d)
        if first != want or last != want:
            return True
        # One C-level count over the block; only a block that fails is examined per line.
        return "".join(lines).count(d) != want * len(lines)

    def _time_strings(self, lines: list[str]) -> list[str]:
        i, d = self.time_index, self.delimiter
        assert i is not None
        return [line.split(d, i + 1)[i] for line in lines]

    def _parse_slow(
        self, lines: list[str], start: int, iso: bool
    ) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        rows: list[list[float]] = []
        times: list[float] = []
        numbers: list[int] = []
        width = len(self.header)
        for k, line in enumerate(lines):
            no = start + k
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split(self.delimiter)
            try:
                if len(fields) != width:
                    raise ValueError(f"{len(fields)} fields, the header has {width}")
                row = [_number(fields[i], self.header[i]) for i in self.channel_index]
                if self.time_index is not None:
                    raw = fields[self.time_index].strip().strip('"')
                    times.append(
                        iso_to_epoch(raw) if iso else _number(raw, self.header[self.time_index])
                    )
            except ValueError as e:
                self._bad(no, str(e))
                continue
            rows.append(row)
            numbers.append(no)
        x = np.asarray(rows, np.float64).reshape(len(rows), len(self.channel_index))
        t = np.asarray(times, np.float64) if self.time_index is not None else None
        return t, x, np.asarray(numbers, np.int64)

    def _bad(self, line_no: int, why: str) -> None:
        if not self.options.skip_bad_rows:
            raise DataError(f"{self.path}:{line_no}: {why}")
        self.bad_rows += 1


def _number(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} in column {column!r} is not a number") from None


def iso_to_epoch(text: str) -> float:
    """ISO-8601 (``Z``, an offset, or naive = UTC) -> UNIX seconds; ValueError otherwise."""
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _parse_iso(strings: list[str]) -> npt.NDArray[np.float64]:
    """ISO-8601 -> UNIX seconds; numpy's vectorised parser for plain UTC forms."""
    clean = [s.strip().strip('"') for s in strings]
    if any(len(s) > 19 and s[-6] in "+-" and s[-3] == ":" for s in clean):
        return np.array([iso_to_epoch(s) for s in clean], np.float64)  # UTC offsets
    plain = [s[:-1] if s.endswith("Z") else s for s in clean]
    try:
        us = np.array(plain, dtype="datetime64[us]").astype(np.int64)
        return us.astype(np.float64) / 1e6
    except ValueError:
        return np.array([iso_to_epoch(s) for s in clean], np.float64)  # offsets: raises ValueError


# -- NumPy files --


class ArrayRecording(Recording):
    """.npy (n, 9*D) with ``rate_hz``, or .npz with ``t``/``x`` or one array per column."""

    def __init__(self, path: Path, options: ReadOptions) -> None:
        super().__init__(path, options)
        self.t, self.x = self._load()
        self._device_count(self.x.shape[1], str(path))
        self.columns = tuple(column_names(options.channels, self.file_devices))

    def _load(self) -> tuple[npt.NDArray[Any] | None, npt.NDArray[Any]]:
        path, opts = self.path, self.options
        try:
            if path.suffix == ".npy":
                return None, _matrix(np.load(path, mmap_mode="r", allow_pickle=False), path)
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable NumPy file ({e})") from None
        with z:
            keys = {k.lower(): k for k in z.files}
            tkey = next((keys[n] for n in TIME_NAMES if n in keys), None)
            t = np.asarray(z[tkey], np.float64) if tkey is not None else None
            if "x" in keys:
                x = _matrix(z[keys["x"]], path)
            else:
                names = (
                    list(opts.columns)
                    if opts.columns
                    else column_names(opts.channels, opts.devices)
                )
                if opts.devices > 1 and opts.fill and any(n.lower() not in keys for n in names):
                    names = list(opts.channels)
                missing = [n for n in names if n.lower() not in keys]
                if missing:
                    raise DataError(
                        f"{path}: no array {missing[0]!r}; the file has: {', '.join(z.files)}"
                    )
                x = np.column_stack([np.asarray(z[keys[n.lower()]]) for n in names])
        if t is not None and (t.ndim != 1 or len(t) != len(x)):
            raise DataError(f"{path}: time array has shape {t.shape}, expected ({len(x)},)")
        return t, x

    def chunks(self) -> Iterator[SampleChunk]:
        opts = self.options
        if self.t is None and opts.rate_hz is None:
            raise DataError(f"{self.path}: no time array; give the sample rate with --rate")
        n = len(self.x)
        if n == 0:
            raise DataError(f"{self.path}: no samples")
        last: float | None = None
        for a in range(0, n, opts.chunk_rows):
            b = min(n, a + opts.chunk_rows)
            x = np.asarray(self.x[a:b], np.float64)
            if self.t is not None:
                t = np.asarray(self.t[a:b], np.float64)
            else:
                t = np.arange(a, b, dtype=np.float64) / float(opts.rate_hz or 1.0)
            t, x = self._check_rows(t, x, _at_row(self.path, a), last)
            if len(t) == 0:
                continue
            if last is None:
                self.absolute_time = float(t[0]) > ABSOLUTE_AFTER
            new_segment = last is None
            last = float(t[-1])
            yield SampleChunk(t, self._finish(x), new_segment=new_segment)


def _at_line(path: Path, numbers: npt.NDArray[np.int64]) -> Callable[[int], str]:
    return lambda k: f"{path}:{numbers[k]}"


def _at_row(path: Path, first: int) -> Callable[[int], str]:
    return lambda k: f"{path}: row {first + k}"


def _renumbered(where: Callable[[int], str], rows: npt.NDArray[np.intp]) -> Callable[[int], str]:
    """``where`` for a block from which rows were dropped: k is an index into ``rows``."""
    return lambda k: where(int(rows[k]))


def _matrix(a: Any, path: Path) -> npt.NDArray[Any]:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype.kind not in "fiu":
        shape = getattr(a, "shape", None)
        raise DataError(f"{path}: expected a 2-D numeric array (samples, channels), got {shape}")
    return a


def open_recording(path: str | Path, options: ReadOptions) -> Recording:
    p = Path(path)
    if not p.exists():
        raise NoInputError(f"{p}: no such file")
    if not p.is_file():
        raise NoInputError(f"{p}: not a regular file")
    try:
        with p.open("rb") as fh:
            fh.read(1)
    except OSError as e:
        raise NoInputError(f"{p}: cannot read: {e.strerror}") from None
    if p.suffix.lower() in (".npy", ".npz"):
        return ArrayRecording(p, options)
    return CsvRecording(p, options)

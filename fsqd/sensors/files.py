"""Readers for recorded IMU files (CSV with a header, .npy, .npz), chunk by chunk.

Every reader yields ``SampleChunk``s with columns in the model card's order (device-major)
and never holds a whole CSV in memory. Clean CSV takes a fast path (numpy's C parser on a
block of lines); only a block that fails it is re-read line by line to name the first bad
line as FILE:LINE, or to skip and count bad rows when asked. NumPy files are checked the
same way, naming a bad row by its index.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import fnmatch
import itertools
import math
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError, FsqdError, NoInputError, UsageError
from fsqd.safefile import regular_file
from fsqd.stream.chunk import SampleChunk
from fsqd.stream.timebase import UNITS, detect_time_unit
from fsqd.units import column_names

TIME_NAMES = ("t", "time", "timestamp")
ABSOLUTE_AFTER = 1e8  # numeric seconds past this are UNIX epoch times (1973 onwards)
MAX_HEADER = 1 << 16  # characters; a longer first line is not a CSV header
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (possibly empty)
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


def _shown(names: Sequence[str]) -> str:
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


# -- CSV --


class CsvRecording(Recording):
    """A delimited text file with a header row (``,``, ``;`` or tab)."""

    def __init__(self, path: Path, options: ReadOptions) -> None:
        super().__init__(path, options)
        header, first = self._head()
        self.delimiter = max((",", ";", "\t"), key=header.count)
        self.header = [h.strip().strip('"').strip() for h in self._fields(header)]
        self._resolve_columns()
        self.timed = self.time_index is not None
        self._iso = self._is_iso(first)
        if self.options.time_unit == "iso" and not self._iso and self.time_index is not None:
            raise DataError(f"{self.path}: --time-unit iso, but the time column holds numbers")
        if self._iso and self.options.time_unit not in (None, "iso"):
            raise DataError(
                f"{self.path}: --time-unit {self.options.time_unit}, but the time column holds "
                "ISO-8601 text"
            )
        if self._iso:
            self.time_unit, self.time_unit_reason = "iso", "ISO-8601 text"
        elif self.time_index is not None:
            self._decide_time_unit(self._probe_times())

    def _fields(self, line: str) -> list[str]:
        """A line's fields; quoted ones may hold the delimiter (a note, a label)."""
        if '"' not in line:
            return line.split(self.delimiter)
        return next(csv.reader([line], delimiter=self.delimiter, skipinitialspace=True), [])

    def _probe_times(self) -> F64:
        """The numeric timestamps of the first rows that have one, for the unit."""
        assert self.time_index is not None
        values: list[float] = []
        with self._open() as fh:
            fh.readline()
            for line in itertools.islice(fh, PROBE_ROWS):
                fields = self._fields(line.rstrip("\r\n"))
                if len(fields) > self.time_index:
                    try:
                        values.append(float(fields[self.time_index].strip().strip('"')))
                    except ValueError:
                        continue
        return np.asarray(values, np.float64)

    def _open(self) -> TextIO:
        return self.path.open("r", encoding=self._encoding, newline="")

    def _undecodable(self) -> DataError:
        """The error for text that does not decode, naming the first line that fails."""
        decoder = codecs.getincrementaldecoder(self._encoding)()
        line = 1
        with self.path.open("rb") as fh:
            while piece := fh.readline(1 << 20):  # bounded: a binary file may have no newline
                try:
                    decoder.decode(piece)
                except UnicodeDecodeError:
                    break
                line += piece.endswith(b"\n")
        name = "UTF-16" if self._encoding == "utf-16" else "UTF-8"
        return DataError(f"{self.path}:{line}: not {name} text (is this a CSV file?)")

    def _head(self) -> tuple[str, str]:
        """The header line and the first data line (to refuse a header-only file now)."""
        try:
            # Spreadsheet exports start with a byte-order mark; "Unicode text" is UTF-16.
            with self.path.open("rb") as raw:
                bom = raw.read(3)
            utf16 = bom[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            self._bom = utf16 or bom == codecs.BOM_UTF8
            self._encoding = "utf-16" if utf16 else "utf-8-sig"
            with self._open() as fh:
                header = fh.readline(MAX_HEADER)
                first = fh.readline(MAX_HEADER)
                for _ in range(1000):  # skip blank lines, within reason
                    if first.strip() or not first:
                        break
                    first = fh.readline(MAX_HEADER)
        except UnicodeDecodeError:
            raise self._undecodable() from None
        except OSError as e:
            raise NoInputError(f"{self.path}: cannot read: {e.strerror or e}") from None
        text = header.rstrip("\r\n")
        if not text.strip():
            raise DataError(f"{self.path}: no samples (empty file)")
        if "\x00" in text or (len(header) == MAX_HEADER and text == header):
            raise DataError(f"{self.path}:1: not a CSV file (no header line)")
        if not first.strip():
            raise DataError(f"{self.path}: no samples (only a header)")
        return text, first.rstrip("\r\n")

    def _resolve_columns(self) -> None:
        opts = self.options
        where = f"{self.path}:1"
        index: dict[str, int] = {}
        for i, h in enumerate(self.header):
            index.setdefault(h.lower(), i)

        def find(name: str) -> int:
            i = index.get(name.lower())
            if i is None:
                raise DataError(
                    f"{where}: no column {name!r}; the file has columns: {_shown(self.header)}"
                )
            if sum(h.lower() == name.lower() for h in self.header) > 1:
                raise DataError(f"{where}: column {name!r} appears more than once")
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
        names = self._pick_names(index)
        self._device_count(len(names), where)
        self.channel_index = [find(n) for n in names]
        self.columns = tuple(self.header[i] for i in self.channel_index)

    def _is_iso(self, line: str) -> bool:
        """Whether the time column holds ISO-8601 text, judged on the first data row."""
        if self.time_index is None:
            return False
        fields = self._fields(line)
        if len(fields) <= self.time_index:
            return False
        value = fields[self.time_index].strip().strip('"')
        try:
            float(value)
            return False
        except ValueError:
            return "-" in value and ":" in value

    def chunks(self) -> Iterator[SampleChunk]:
        """pyarrow's streaming parser when it is installed and the file is plain; the
        line-by-line reader otherwise, and from the first block pyarrow cannot take."""
        fast = self._arrow_reader() if self._arrow_ok() else None
        if fast is None:
            yield from self._classic_chunks()
            return
        state = _ReadState()
        try:
            yield from self._arrow_chunks(fast, state)
            if state.emitted == 0:
                raise DataError(f"{self.path}: no samples")
            return
        except _ArrowFallback:
            pass
        # Rows map 1:1 to lines (blank lines are rows of nulls): continue after the last
        # row handed out, with the reader that names FILE:LINE.
        yield from self._classic_chunks(state)

    def _arrow_ok(self) -> bool:
        return (
            self.options.use_arrow
            and self._encoding == "utf-8-sig"
            and not self._bom
            and not self._iso
            and _arrow() is not None
        )

    def _arrow_reader(self) -> Any:
        pa, pc = _arrow()
        cols = [f"f{i}" for i in self._columns_used()]
        try:
            return pc.open_csv(
                self.path,
                read_options=pc.ReadOptions(
                    block_size=1 << 20, skip_rows=1, autogenerate_column_names=True,
                    use_threads=False,
                ),
                parse_options=pc.ParseOptions(
                    delimiter=self.delimiter, ignore_empty_lines=False, newlines_in_values=False
                ),
                convert_options=pc.ConvertOptions(
                    include_columns=cols, column_types=dict.fromkeys(cols, pa.float64())
                ),
            )  # fmt: skip
        except (pa.ArrowException, OSError):
            return None  # e.g. the first block is malformed: the classic reader names it

    def _columns_used(self) -> list[int]:
        ti = self.time_index
        return [ti, *self.channel_index] if ti is not None else list(self.channel_index)

    def _arrow_chunks(self, reader: Any, state: _ReadState) -> Iterator[SampleChunk]:
        pa, _ = _arrow()
        opts = self.options
        finish = self._finisher()
        width = len(self._columns_used())
        parts: list[F64] = []
        rows = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowException as e:
                raise _ArrowFallback from e
            if batch.num_rows == 0:
                continue
            if any(c.null_count for c in batch.columns):
                raise _ArrowFallback
            block = np.empty((batch.num_rows, width), np.float64)
            for j, c in enumerate(batch.columns):
                data = c.buffers()[1]
                block[:, j] = np.frombuffer(data, np.float64, count=len(c), offset=8 * c.offset)
            parts.append(block)
            rows += len(block)
            while rows >= opts.chunk_rows:
                whole = np.concatenate(parts)
                yield from self._arrow_emit(whole[: opts.chunk_rows], state, finish)
                parts, rows = [whole[opts.chunk_rows :]], rows - opts.chunk_rows
        if rows:
            yield from self._arrow_emit(np.concatenate(parts), state, finish)

    def _arrow_emit(
        self, data: F64, state: _ReadState, finish: Callable[[F64], npt.NDArray[np.float32]]
    ) -> Iterator[SampleChunk]:
        opts = self.options
        start = state.line_no + 1
        numbers = np.arange(start, start + len(data), dtype=np.int64)
        state.line_no += len(data)
        if self.time_index is not None:
            t, x = self._to_seconds(data[:, 0].copy()), data[:, 1:]
        else:
            t, x = (numbers - 2).astype(np.float64) / float(opts.rate_hz or 1.0), data
        chunk = self._finish_block(t, x, numbers, state, finish)
        if chunk is not None:
            yield chunk

    def _finish_block(
        self,
        t: F64,
        x: F64,
        numbers: npt.NDArray[np.int64],
        state: _ReadState,
        finish: Callable[[F64], npt.NDArray[np.float32]],
    ) -> SampleChunk | None:
        t, x = self._check_rows(t, x, _at_line(self.path, numbers), state.last_t)
        if len(t) == 0:
            return None
        if state.last_t is None:
            self.absolute_time = self._iso or float(t[0]) > ABSOLUTE_AFTER
        state.last_t = float(t[-1])
        chunk = SampleChunk(t, finish(x), new_segment=state.emitted == 0)
        state.emitted += len(t)
        return chunk

    def _classic_chunks(self, state: _ReadState | None = None) -> Iterator[SampleChunk]:
        state = state or _ReadState()
        try:
            with self._open() as fh:
                # The header, and the rows already read by the fast path.
                for _ in itertools.islice(fh, state.line_no):
                    pass
                yield from self._chunks(fh, state)
        except UnicodeDecodeError:
            raise self._undecodable() from None
        except OSError as e:
            raise NoInputError(f"{self.path}: cannot read: {e.strerror or e}") from None

    def _chunks(self, fh: Iterator[str], state: _ReadState) -> Iterator[SampleChunk]:
        opts = self.options
        finish = self._finisher()
        while lines := list(itertools.islice(fh, opts.chunk_rows)):
            start = state.line_no + 1
            state.line_no += len(lines)
            t, x, numbers = self._parse(lines, start)
            if t is None:
                # Time from the row's place in the file, so a skipped bad row leaves a hole.
                t = (numbers - 2).astype(np.float64) / float(opts.rate_hz or 1.0)
            elif not self._iso:
                t = self._to_seconds(t)
            chunk = self._finish_block(t, x, numbers, state, finish)
            if chunk is not None:
                yield chunk
        if state.emitted == 0:
            raise DataError(f"{self.path}: no samples")

    def _parse(self, lines: list[str], start: int) -> tuple[F64 | None, F64, npt.NDArray[np.int64]]:
        """(t or None, x, line numbers); fast path first, line by line only on failure."""
        ti = self.time_index
        numeric_time = ti is not None and not self._iso
        cols = [ti, *self.channel_index] if ti is not None and numeric_time else self.channel_index
        try:
            if self._width_mismatch(lines):
                raise ValueError("a row has the wrong number of fields")
            data = np.loadtxt(
                lines, delimiter=self.delimiter, usecols=cols, dtype=np.float64, ndmin=2,
                comments=None, quotechar='"',
            )  # fmt: skip
            if len(data) != len(lines):
                raise ValueError("blank lines")
            t = None
            if numeric_time:
                t, data = data[:, 0].copy(), data[:, 1:]
            elif self.time_index is not None:
                t = _parse_iso(self._time_strings(lines))
            return t, data, np.arange(start, start + len(lines), dtype=np.int64)
        except (ValueError, IndexError):
            return self._parse_slow(lines, start)

    def _width_mismatch(self, lines: list[str]) -> bool:
        """loadtxt with usecols ignores extra fields; every row must have the header's width."""
        d = self.delimiter
        want = len(self.header) - 1
        if lines[0].count(d) != want or lines[-1].count(d) != want:
            return True
        # One C-level count over the block; only a block that fails is examined per line.
        return "".join(lines).count(d) != want * len(lines)

    def _time_strings(self, lines: list[str]) -> list[str]:
        i, d = self.time_index, self.delimiter
        assert i is not None
        return [self._fields(line)[i] if '"' in line else line.split(d, i + 1)[i] for line in lines]

    def _parse_slow(
        self, lines: list[str], start: int
    ) -> tuple[F64 | None, F64, npt.NDArray[np.int64]]:
        rows: list[list[float]] = []
        times: list[float] = []
        numbers: list[int] = []
        width = len(self.header)
        for k, line in enumerate(lines):
            no = start + k
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = self._fields(text)
            try:
                if len(fields) != width:
                    raise ValueError(f"{len(fields)} fields, the header has {width}")
                row = [_number(fields[i], self.header[i]) for i in self.channel_index]
                if self.time_index is not None:
                    raw = fields[self.time_index].strip().strip('"')
                    name = self.header[self.time_index]
                    times.append(iso_to_epoch(raw) if self._iso else _number(raw, name))
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


@dataclass
class _ReadState:
    """Where a CSV read stands: lines consumed (header included), samples handed out."""

    line_no: int = 1
    last_t: float | None = None
    emitted: int = 0


class _ArrowFallback(Exception):
    """pyarrow cannot take this block: the line-by-line reader continues from it."""


def _arrow() -> Any:
    """(pyarrow, pyarrow.csv), or None when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pc
    except ImportError:
        return None
    return pa, pc


def _number(text: str, column: str) -> float:
    value = text.strip().strip('"')
    try:
        return float(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"{shown!r} in column {column!r} is not a number") from None


def _parse_iso(strings: list[str]) -> F64:
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


# -- NumPy files --


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
        listing = _shown(z.files)
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


def _at_line(path: Path, numbers: npt.NDArray[np.int64]) -> Where:
    return lambda k: f"{path}:{numbers[k]}"


def _at_row(path: Path, first: int) -> Where:
    return lambda k: f"{path}: row {first + k}"


def _renumbered(where: Where, rows: npt.NDArray[np.intp]) -> Where:
    """``where`` for a block from which rows were dropped: k is an index into ``rows``."""
    return lambda k: where(int(rows[k]))


def _matrix(a: Any, path: Path) -> npt.NDArray[Any]:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype.kind not in "fiu":
        shape, dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
        raise DataError(
            f"{path}: expected a 2-D numeric array (samples, channels), "
            f"got shape {shape} dtype {dtype}"
        )
    return a


def open_recording(path: str | Path, options: ReadOptions) -> Recording:
    """Open ``path`` (.npy, .npz, .fsqr by suffix, anything else as CSV), check its columns."""
    p = Path(path)
    # Read in bounded chunks, so no size cap; but never a FIFO or a device (no end).
    regular_file(p, what="a recording")
    try:
        with p.open("rb") as fh:
            fh.read(1)
    except OSError as e:
        raise NoInputError(f"{p}: cannot read: {e.strerror or e}") from None
    if p.suffix.lower() in (".npy", ".npz"):
        return ArrayRecording(p, options)
    if p.suffix.lower() == ".fsqr":  # fsqd record's native format
        from fsqd.sensors.recording import NativeRecording

        return NativeRecording(p, options)
    return CsvRecording(p, options)

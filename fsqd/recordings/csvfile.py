"""CSV recordings: a delimited text file with a header row, read chunk by chunk.

The file is never held whole in memory. pyarrow's streaming parser takes plain files
when it is installed (``csvarrow``); otherwise, and from the first block pyarrow cannot
take, numpy's C parser reads a block of lines at a time, and only a block that fails it
is re-read line by line to name the first bad line as FILE:LINE, or to skip and count
bad rows when asked.
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, NoInputError
from fsqd.recordings.base import (
    ABSOLUTE_AFTER,
    F64,
    PROBE_ROWS,
    TIME_NAMES,
    ReadOptions,
    Recording,
    Where,
    iso_column_to_epoch,
    iso_to_epoch,
    shown_names,
)
from fsqd.recordings.csvarrow import ArrowFallback, float_blocks, open_reader, pyarrow_csv

MAX_HEADER = 1 << 16  # characters; a longer first line is not a CSV header


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
                    f"{where}: no column {name!r}; the file has columns: {shown_names(self.header)}"
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
        except ArrowFallback:
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
            and pyarrow_csv() is not None
        )

    def _arrow_reader(self) -> Any:
        return open_reader(self.path, self.delimiter, self._columns_used())

    def _columns_used(self) -> list[int]:
        ti = self.time_index
        return [ti, *self.channel_index] if ti is not None else list(self.channel_index)

    def _arrow_chunks(self, reader: Any, state: _ReadState) -> Iterator[SampleChunk]:
        finish = self._finisher()
        width = len(self._columns_used())
        for block in float_blocks(reader, width, self.options.chunk_rows):
            yield from self._arrow_emit(block, state, finish)

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
                t = iso_column_to_epoch(self._time_strings(lines))
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


def _number(text: str, column: str) -> float:
    value = text.strip().strip('"')
    try:
        return float(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"{shown!r} in column {column!r} is not a number") from None


def _at_line(path: Path, numbers: npt.NDArray[np.int64]) -> Where:
    return lambda k: f"{path}:{numbers[k]}"


__all__ = ["CsvRecording"]

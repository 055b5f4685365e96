"""Recorded-file readers: columns, times, chunking, and one-line FILE:LINE errors."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, FsqdError, NoInputError, UsageError
from fsqd.recordings import ReadOptions, csvfile, iso_to_epoch, open_recording

CH = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
OPTS = ReadOptions(channels=CH)
HEADER = "t," + ",".join(CH)
T_2026 = 1795341600.0  # 2026-11-22T10:00:00Z


@pytest.fixture(autouse=True, params=["pyarrow", "classic"])
def csv_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with pyarrow's parser (falling back where it must) and without it."""
    if request.param == "classic":
        monkeypatch.setattr(csvfile, "pyarrow_csv", lambda: None)
    return str(request.param)


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def rows(n: int, start: float = 0.0, step: float = 0.01) -> list[str]:
    return [
        f"{start + i * step:.6f}," + ",".join(str(i * 10 + c) for c in range(9)) for i in range(n)
    ]


def read_all(
    path: Path, opts: ReadOptions = OPTS
) -> tuple[np.ndarray, np.ndarray, list[SampleChunk]]:
    rec = open_recording(path, opts)
    chunks = list(rec.chunks())
    return np.concatenate([c.t for c in chunks]), np.concatenate([c.x for c in chunks]), chunks


def error(path: Path, opts: ReadOptions = OPTS) -> str:
    """The one-line message reading ``path`` fails with."""
    with pytest.raises(FsqdError) as info:
        read_all(path, opts)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


def opts(**kw: object) -> ReadOptions:
    return ReadOptions(channels=CH, **kw)  # type: ignore[arg-type]


# -- columns --


def test_reads_columns_in_card_order_whatever_the_file_order(tmp_path: Path) -> None:
    header = "mz,my,mx,gz,gy,gx,az,ay,ax,Time,label"
    body = [",".join(str(9 - c) for c in range(9)) + f",{i / 100},walk" for i in range(5)]
    rec = open_recording(write(tmp_path / "a.csv", header, body), OPTS)
    chunks = list(rec.chunks())
    (chunk,) = chunks
    assert chunk.x.dtype == np.float32 and chunk.t.dtype == np.float64
    assert chunk.x[0].tolist() == list(range(1, 10))
    assert chunk.t.tolist() == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert chunk.new_segment and not rec.absolute_time
    assert rec.columns == CH and rec.file_devices == 1 and rec.bad_rows == 0


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "t,ax,ay,az", ["0,1,2,3"])
    assert error(path) == f"{path}:1: no column 'gx'; the file has columns: t, ax, ay, az"
    path2 = write(tmp_path / "b.csv", "t,ax,ay,az,ax_0,ay_0", ["0,1,2,3,4,5"])
    assert error(path2, opts(devices=2)) == (
        f"{path2}:1: no column 'az_0'; the file has columns: t, ax, ay, az, ax_0, ay_0"
    )


def test_devices_naming_and_fill(tmp_path: Path) -> None:
    two = opts(devices=2)
    names = [f"{c}_{d}" for d in range(2) for c in CH]
    path = write(
        tmp_path / "two.csv", "t," + ",".join(names), ["0," + ",".join(map(str, range(18)))]
    )
    _, x, _ = read_all(path, two)
    assert x[0].tolist() == list(range(18))
    one = write(tmp_path / "one.csv", HEADER, ["0," + ",".join(map(str, range(9)))])
    assert error(one, two) == (
        f"{one}:1: the file has 1 device but the model needs 2; "
        "pass --fill duplicate to copy it to the others"
    )
    rec = open_recording(one, opts(devices=2, fill="duplicate"))
    (chunk,) = rec.chunks()
    assert chunk.x[0].tolist() == list(range(9)) * 2
    assert rec.file_devices == 1 and rec.columns == CH
    # One device named as device 0 is the same thing.
    zero = write(
        tmp_path / "zero.csv",
        "t," + ",".join(names[:9]),
        ["0," + ",".join(map(str, range(9)))],
    )
    _, x, _ = read_all(zero, opts(devices=2, fill="duplicate"))
    assert x[0].tolist() == list(range(9)) * 2


def test_explicit_columns_and_scale_by_pattern(tmp_path: Path) -> None:
    header = "t,AccX,AccY,AccZ,GyrX,GyrY,GyrZ,MagX,MagY,MagZ"
    path = write(tmp_path / "a.csv", header, ["0,1000,0,-1000,1,1,1,2,2,2"])
    cols = tuple(header.split(",")[1:])
    rec = open_recording(path, opts(columns=cols, scale={"a*": 0.00980665, "g?": 2.0}))
    (chunk,) = rec.chunks()
    assert rec.columns == cols
    np.testing.assert_allclose(chunk.x[0], [9.80665, 0, -9.80665, 2, 2, 2, 2, 2, 2], rtol=1e-6)
    with pytest.raises(UsageError, match=r"scale 'q\*' matches no channel of the model \(ax, ay"):
        open_recording(path, opts(columns=cols, scale={"q*": 2.0}))
    with pytest.raises(UsageError, match="must be finite and non-zero"):
        open_recording(path, opts(columns=cols, scale={"ax": 0.0}))
    with pytest.raises(DataError, match="8 channel columns, the model needs 9"):
        open_recording(path, opts(columns=cols[:8]))


def test_scale_applies_to_every_devices_copy(tmp_path: Path) -> None:
    names = [f"{c}_{d}" for d in range(2) for c in CH]
    path = write(tmp_path / "a.csv", "t," + ",".join(names), ["0," + ",".join(["1"] * 18)])
    _, x, _ = read_all(path, opts(devices=2, scale={"ax": 3.0, "m*": -1.0}))
    assert x[0].tolist() == [3, 1, 1, 1, 1, 1, -1, -1, -1] * 2
    one = write(tmp_path / "one.csv", HEADER, ["0," + ",".join(["1"] * 9)])
    _, x, _ = read_all(one, opts(devices=2, fill="duplicate", scale={"g*": 2.0}))
    assert x[0].tolist() == [1, 1, 1, 2, 2, 2, 1, 1, 1] * 2


def test_delimiters_quotes_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    body = "".join(f"{i / 100};" + ";".join(str(c) for c in range(9)) + "\r\n" for i in range(3))
    path.write_bytes(("\ufeffT;" + ";".join(CH) + "\r\n" + body).encode())
    t, x, _ = read_all(path)
    assert t.tolist() == [0.0, 0.01, 0.02]
    assert x[2].tolist() == list(range(9))
    tab = write(
        tmp_path / "a.tsv", HEADER.replace(",", "\t"), [r.replace(",", "\t") for r in rows(3)]
    )
    _, x, _ = read_all(tab)
    assert x[1].tolist() == list(range(10, 19))
    quoted = write(
        tmp_path / "q.csv",
        ",".join(f'"{h}"' for h in HEADER.split(",")),
        ['"0.0",' + ",".join(f'"{c}"' for c in range(9)), " 0.01 , 1,2,3,4,5,6,7,8,9 "],
    )
    _, x, _ = read_all(quoted)
    assert x.tolist() == [list(range(9)), list(range(1, 10))]


# -- time --


def test_iso_times_become_epoch_seconds(tmp_path: Path) -> None:
    body = [f"2026-11-22T10:00:00.{i:02d}0Z," + ",".join("1" * 9) for i in range(3)]
    rec = open_recording(write(tmp_path / "a.csv", "timestamp," + ",".join(CH), body), OPTS)
    (chunk,) = rec.chunks()
    assert rec.absolute_time
    assert chunk.t[0] == T_2026
    assert np.diff(chunk.t) == pytest.approx([0.01, 0.01])
    for i, stamp in enumerate(
        ["2026-11-22T12:00:00+02:00", "2026-11-22 10:00:00", "2026-11-22T05:00:00-05:00"]
    ):
        one = write(tmp_path / f"b{i}.csv", HEADER, [stamp + ",1" * 9])
        (chunk,) = open_recording(one, OPTS).chunks()
        assert chunk.t[0] == T_2026, stamp


def test_vectorised_iso_equals_row_by_row(tmp_path: Path) -> None:
    base = np.datetime64("2026-11-22T23:59:58.000", "ms")
    stamps = [str(base + np.timedelta64(int(k), "ms")) for k in np.cumsum(np.full(500, 7))]
    body = [s + "Z," + ",".join("1" * 9) for s in stamps]
    path = write(tmp_path / "a.csv", HEADER, body)
    t, _, _ = read_all(path)
    np.testing.assert_array_equal(t, [iso_to_epoch(s + "Z") for s in stamps])
    t7, _, _ = read_all(path, opts(chunk_rows=7))
    np.testing.assert_array_equal(t7, t)
    # A block with one offset time goes row by row and agrees.
    mixed = write(
        tmp_path / "m.csv", HEADER, [*body[:3], "2026-11-23T01:00:00.028+01:00,1,1,1,1,1,1,1,1,1"]
    )
    tm, _, _ = read_all(mixed)
    assert tm[-1] == pytest.approx(t[3]) and tm[:3].tolist() == t[:3].tolist()


def test_bad_iso_time_names_the_line(tmp_path: Path) -> None:
    body = [f"2026-11-22T10:00:00.{i:02d}0Z,1,1,1,1,1,1,1,1,1" for i in range(3)]
    path = write(tmp_path / "a.csv", HEADER, [*body, "yesterday,1,1,1,1,1,1,1,1,1"])
    assert error(path) == f"{path}:5: 'yesterday' is not an ISO-8601 time"


def test_time_column_by_name_and_by_option(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "TimeStamp,elapsed," + ",".join(CH),
        ["5,0" + ",1" * 9, "6,1" + ",1" * 9],
    )
    t, _, _ = read_all(path)
    assert t.tolist() == [0.005, 0.006]  # integer steps of 1: milliseconds (1 kHz), not 1 Hz
    t, _, _ = read_all(path, opts(time_column="ELAPSED", time_unit="s"))
    assert t.tolist() == [0.0, 1.0]
    assert error(path, opts(time_column="clock")) == (
        f"{path}:1: no column 'clock'; the file has columns: "
        "TimeStamp, elapsed, ax, ay, az, gx, gy, gz, mx, my, mz"
    )


def test_large_numeric_seconds_are_absolute(tmp_path: Path) -> None:
    rec = open_recording(write(tmp_path / "a.csv", HEADER, rows(3, start=T_2026)), OPTS)
    (chunk,) = rec.chunks()
    assert chunk.t[0] == T_2026 and rec.absolute_time


def test_rate_when_there_is_no_time_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ",".join(CH), [",".join("1" * 9)] * 4)
    with pytest.raises(
        DataError, match=r"no time column .*--time-column or give the sample rate with --rate"
    ):
        open_recording(path, OPTS)
    t, _, _ = read_all(path, opts(rate_hz=50.0))
    assert t.tolist() == [0.0, 0.02, 0.04, 0.06]
    with pytest.raises(UsageError, match="--rate must be a positive number"):
        open_recording(path, opts(rate_hz=-50.0))


def test_a_skipped_row_keeps_its_place_in_rate_time(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ",".join(CH), ["1" + ",1" * 8, "x" + ",1" * 8, "1" + ",1" * 8])
    rec = open_recording(path, opts(rate_hz=10.0, skip_bad_rows=True))
    t = np.concatenate([c.t for c in rec.chunks()])
    assert t.tolist() == [0.0, 0.2] and rec.bad_rows == 1


# -- bad rows --

BAD_ROWS = [
    ("0.030000,1,2,x,4,5,6,7,8,9", "5: 'x' in column 'az' is not a number"),
    ("0.030000,1,2,,4,5,6,7,8,9", "5: '' in column 'az' is not a number"),
    ("0.030000,1,2,3", "5: 4 fields, the header has 10"),
    ("0.030000,1,2,3,4,5,6,7,8,9,10", "5: 11 fields, the header has 10"),
    ("0.030000,1,2,nan,4,5,6,7,8,9", "5: NaN or inf value"),
    ("0.030000,1,2,3,4,5,6,7,8,-inf", "5: NaN or inf value"),
    ("0.030000,1,2,3,4,5,6,7,8,1e999", "5: NaN or inf value"),
    ("nan,1,2,3,4,5,6,7,8,9", "5: timestamp nan is not a finite number"),
    ("abc,1,2,3,4,5,6,7,8,9", "5: 'abc' in column 't' is not a number"),
    ("0.010000,1,2,3,4,5,6,7,8,9", "5: timestamp 0.01 is not after the previous one (0.02)"),
    ("0.020000,1,2,3,4,5,6,7,8,9", "5: timestamp 0.02 is not after the previous one (0.02)"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ROWS)
@pytest.mark.parametrize("chunk_rows", [65536, 2])
def test_bad_rows_name_file_and_line(
    tmp_path: Path, bad: str, message: str, chunk_rows: int
) -> None:
    path = write(tmp_path / "a.csv", HEADER, [*rows(3), bad, *rows(3, start=1.0)])
    assert error(path, opts(chunk_rows=chunk_rows)) == f"{path}:{message}"
    rec = open_recording(path, opts(skip_bad_rows=True, chunk_rows=chunk_rows))
    t = np.concatenate([c.t for c in rec.chunks()])
    if "not after" in message and "0.02 is" not in message:
        # Time going back is kept with --skip-bad-rows: the stream stages start a segment.
        assert rec.bad_rows == 0 and t.tolist() == [0.0, 0.01, 0.02, 0.01, 1.0, 1.01, 1.02]
    else:
        assert rec.bad_rows == 1 and t.tolist() == [0.0, 0.01, 0.02, 1.0, 1.01, 1.02]


def test_skipping_gives_the_same_samples_for_every_chunk_size(tmp_path: Path) -> None:
    body = rows(40)
    for k, bad in zip(
        (3, 9, 10, 25, 39), ("x,1", "0.1,inf" + ",1" * 8, "0.05" + ",1" * 9, "", "1,2"), strict=True
    ):
        body[k] = bad
    path = write(tmp_path / "a.csv", HEADER, body)
    want = None
    for chunk_rows in (1, 4, 7, 65536):
        rec = open_recording(path, opts(skip_bad_rows=True, chunk_rows=chunk_rows))
        chunks = list(rec.chunks())
        assert all(len(c.t) <= chunk_rows for c in chunks)
        assert [c.new_segment for c in chunks].count(True) == 1 and chunks[0].new_segment
        got = (np.concatenate([c.t for c in chunks]), np.concatenate([c.x for c in chunks]))
        assert rec.bad_rows == 3  # the blank line is not a row; time going back is kept
        if want is None:
            want = got
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert want is not None and len(want[0]) == 36


def test_time_going_back_across_a_block_boundary(tmp_path: Path) -> None:
    body = [*rows(5), *rows(3, start=0.0)]
    path = write(tmp_path / "a.csv", HEADER, body)
    assert error(path, opts(chunk_rows=5)) == (
        f"{path}:7: timestamp 0.0 is not after the previous one (0.04)"
    )


def test_chunks_stream_before_a_late_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER, [*rows(1000), "1,2"])
    it = open_recording(path, opts(chunk_rows=100)).chunks()
    assert len(next(it).t) == 100  # yielded before the rest of the file is read
    with pytest.raises(DataError, match=r"a.csv:1002: 2 fields, the header has 10"):
        list(it)


def test_chunking_does_not_change_what_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER, rows(1000))
    t1, x1, _ = read_all(path)
    t2, x2, chunks = read_all(path, opts(chunk_rows=7))
    assert len(chunks) == 143 and [c.new_segment for c in chunks].count(True) == 1
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(x1, x2)
    assert x1[999, 8] == 9998.0


# -- files that are not recordings --


def test_empty_header_only_and_all_bad(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    assert error(tmp_path / "empty.csv") == f"{tmp_path / 'empty.csv'}: no samples (empty file)"
    header_only = write(tmp_path / "h.csv", HEADER, ["", ""])
    assert error(header_only) == f"{header_only}: no samples (only a header)"
    all_bad = write(tmp_path / "bad.csv", HEADER, ["x,1", "y,2"])
    assert error(all_bad, opts(skip_bad_rows=True)) == f"{all_bad}: no samples"


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 8,
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}" + bytes(200),
        b"t,ax\n\x00\x01\x02\x03\x04",
        b"a" * 70000,
        b"t" + b",x" * 9 + b"\n" + b"0,1,\xff\xfe\n" * 3,
    ],
)
def test_binary_files_give_one_line_data_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_all(path, opts(columns=("x",) * 9) if content.startswith(b"t,x") else OPTS)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_text_that_is_not_utf8_names_its_line_and_utf16_is_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    body = [*rows(3), "0.03,1,2,3,4,5,6,7,8,9 \u00b5T", *rows(2000, start=1.0)]
    path.write_bytes((HEADER + "\n" + "\n".join(body) + "\n").encode("latin-1"))
    assert error(path) == f"{path}:5: not UTF-8 text (is this a CSV file?)"
    utf16 = tmp_path / "unicode.txt"
    utf16.write_text(HEADER.replace(",", "\t") + "\n0\t" + "\t".join("123456789"), "utf-16")
    _, x, _ = read_all(utf16)
    assert x[0].tolist() == list(range(1, 10))


def test_missing_directory_and_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NoInputError, match=r"nope\.csv: no such file"):
        open_recording(tmp_path / "nope.csv", OPTS)
    with pytest.raises(NoInputError, match="not a regular file"):
        open_recording(tmp_path, OPTS)
    locked = write(tmp_path / "locked.csv", HEADER, rows(2))
    real_open = Path.open

    def deny(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == locked:  # chmod 0 does not stop root, so refuse the way the OS would
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(NoInputError, match=r"locked\.csv: cannot read: Permission denied"):
        open_recording(locked, OPTS)


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER, rows(2))
    with pytest.raises(UsageError, match="chunk_rows"):
        open_recording(path, opts(chunk_rows=0))
    with pytest.raises(UsageError, match="--fill must be 'duplicate'"):
        open_recording(path, opts(fill="zeros"))


# -- NumPy files --


def test_npy_needs_a_rate_and_is_memory_mapped(tmp_path: Path) -> None:
    x = np.arange(90, dtype=np.float32).reshape(10, 9)
    np.save(tmp_path / "a.npy", x)
    with pytest.raises(DataError, match=r"a\.npy: no time array .*give --rate"):
        open_recording(tmp_path / "a.npy", OPTS)
    rec = open_recording(tmp_path / "a.npy", opts(rate_hz=100.0, chunk_rows=3))
    assert isinstance(rec.x, np.memmap)  # type: ignore[attr-defined]
    chunks = list(rec.chunks())
    assert [len(c.t) for c in chunks] == [3, 3, 3, 1]
    t = np.concatenate([c.t for c in chunks])
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    assert t[1] == 0.01 and not rec.absolute_time


def test_npy_shapes_values_and_fill(tmp_path: Path) -> None:
    two = opts(devices=2, rate_hz=100.0)
    np.save(tmp_path / "one.npy", np.arange(18.0).reshape(2, 9))
    with pytest.raises(DataError, match=r"one\.npy: the file has 1 device .* --fill duplicate"):
        open_recording(tmp_path / "one.npy", two)
    _, x, _ = read_all(tmp_path / "one.npy", opts(devices=2, rate_hz=100.0, fill="duplicate"))
    assert x[1].tolist() == list(range(9, 18)) * 2
    np.save(tmp_path / "wide.npy", np.zeros((2, 10)))
    with pytest.raises(DataError, match="10 channel columns, the model needs 9"):
        open_recording(tmp_path / "wide.npy", opts(rate_hz=1.0))
    bad = np.zeros((10, 9))
    bad[4, 2] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    assert error(tmp_path / "bad.npy", opts(rate_hz=100.0, chunk_rows=3)) == (
        f"{tmp_path / 'bad.npy'}: row 4: NaN or inf value"
    )
    rec = open_recording(tmp_path / "bad.npy", opts(rate_hz=100.0, skip_bad_rows=True))
    t = np.concatenate([c.t for c in rec.chunks()])
    assert rec.bad_rows == 1 and len(t) == 9 and t[4] == 0.05
    for name, arr in [("flat", np.zeros(5)), ("text", np.array([["a"] * 9]))]:
        np.save(tmp_path / f"{name}.npy", arr)
        with pytest.raises(DataError, match="expected a 2-D numeric array"):
            open_recording(tmp_path / f"{name}.npy", OPTS)
    np.save(tmp_path / "empty.npy", np.zeros((0, 9)))
    with pytest.raises(DataError, match=r"empty\.npy: no samples"):
        open_recording(tmp_path / "empty.npy", opts(rate_hz=1.0))


def test_npz_time_and_matrix(tmp_path: Path) -> None:
    x = np.arange(90, dtype=np.float32).reshape(10, 9)
    np.savez(tmp_path / "b.npz", t=np.arange(10) * 0.02 + 1.7e9, x=x)
    rec = open_recording(tmp_path / "b.npz", opts(chunk_rows=4))
    chunks = list(rec.chunks())
    t = np.concatenate([c.t for c in chunks])
    assert rec.absolute_time and t[1] - t[0] == pytest.approx(0.02)
    assert [c.new_segment for c in chunks] == [True, False, False]
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    np.savez(tmp_path / "short.npz", t=np.arange(9.0), x=x)
    with pytest.raises(DataError, match=r"time array has shape \(9,\), expected \(10,\)"):
        open_recording(tmp_path / "short.npz", OPTS)
    back = np.arange(10.0) / 100
    back[6] = 0.02
    np.savez(tmp_path / "back.npz", t=back, x=x)
    assert error(tmp_path / "back.npz") == (
        f"{tmp_path / 'back.npz'}: row 6: timestamp 0.02 is not after the previous one (0.05)"
    )
    stamps = np.datetime64("2026-11-22T10:00:00", "ms") + np.arange(10) * np.timedelta64(10, "ms")
    np.savez(tmp_path / "dt.npz", timestamp=stamps, x=x)
    rec = open_recording(tmp_path / "dt.npz", OPTS)
    t = np.concatenate([c.t for c in rec.chunks()])
    assert rec.absolute_time and t[0] == T_2026 and t[9] == pytest.approx(T_2026 + 0.09)
    np.savez(tmp_path / "s.npz", t=np.array(["a"] * 10), x=x)
    with pytest.raises(DataError, match="time array has dtype <U1, expected numbers"):
        open_recording(tmp_path / "s.npz", OPTS)
    np.savez(tmp_path / "nox.npz", x=x)
    with pytest.raises(DataError, match=r"nox\.npz: no time array"):
        open_recording(tmp_path / "nox.npz", OPTS)


def test_npz_one_array_per_column(tmp_path: Path) -> None:
    x = np.arange(90, dtype=np.float32).reshape(10, 9)
    cols = {c.upper(): x[:, i] for i, c in enumerate(CH)}
    np.savez(tmp_path / "c.npz", time=np.arange(10) * 0.01, **cols)
    rec = open_recording(tmp_path / "c.npz", OPTS)
    _, got, _ = read_all(tmp_path / "c.npz")
    np.testing.assert_array_equal(got, x)
    assert rec.columns == tuple(c.upper() for c in CH)
    with pytest.raises(DataError, match=r"c\.npz: the file has 1 device .* --fill duplicate"):
        open_recording(tmp_path / "c.npz", opts(devices=2))
    with pytest.raises(DataError, match=r"c\.npz: no array 'AccX'; the file has: time, AX, AY"):
        open_recording(tmp_path / "c.npz", opts(columns=("AccX",) * 9))
    _, got, _ = read_all(tmp_path / "c.npz", opts(devices=2, fill="duplicate"))
    np.testing.assert_array_equal(got, np.tile(x, 2))
    cols["GX"] = x[:5, 3]
    np.savez(tmp_path / "ragged.npz", time=np.arange(10) * 0.01, **cols)
    with pytest.raises(DataError, match=r"array 'gx' has shape \(5,\)"):
        open_recording(tmp_path / "ragged.npz", OPTS)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.npy", b"hello, world", "not a NumPy .npy or .npz file"),
        ("b.npz", b"PK\x03\x04" + bytes(100), "not a readable NumPy file"),
        ("c.npy", b"\x93NUMPY\x01\x00garbage", "not a readable NumPy file"),
    ],
)
def test_broken_numpy_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        open_recording(tmp_path / name, opts(rate_hz=1.0))
    assert "\n" not in str(info.value)


def test_object_arrays_are_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    with zipfile.ZipFile(path, "w") as z, z.open("x.npy", "w") as f:
        np.lib.format.write_array(f, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a readable NumPy file"):
        open_recording(path, opts(rate_hz=1.0))


# -- real-world timestamps and values --


@pytest.mark.parametrize(
    ("first", "step", "unit", "scale"),
    [
        (0.0, 0.01, "s", 1.0),
        (0, 10, "ms", 1e-3),
        (0, 10_000, "us", 1e-6),
        (0, 10_000_000, "ns", 1e-9),
        (1_795_341_600, 0.01, "s", 1.0),
        (1_795_341_600_000, 10, "ms", 1e-3),
        (1_795_341_600_000_000, 10_000, "us", 1e-6),
        (1_795_341_600_000_000_000, 10_000_000, "ns", 1e-9),
        (100_000_000, 10_000, "us", 1e-6),  # microseconds since boot, not 1973 in seconds
    ],
)
def test_time_unit_is_detected_from_magnitude_and_step(
    tmp_path: Path, first: float, step: float, unit: str, scale: float
) -> None:
    body = [f"{first + i * step}," + ",".join("1" * 9) for i in range(50)]
    path = write(tmp_path / "a.csv", HEADER, body)
    rec = open_recording(path, OPTS)
    t = np.concatenate([c.t for c in rec.chunks()])
    assert rec.time_unit == unit and rec.time_unit_reason.startswith("detected")
    assert t[1] - t[0] == pytest.approx(0.01, rel=1e-6)
    assert t[0] == pytest.approx(first * scale)


def test_time_unit_can_be_forced_and_implausible_steps_are_refused(tmp_path: Path) -> None:
    body = [f"{i * 10}," + ",".join("1" * 9) for i in range(50)]
    path = write(tmp_path / "a.csv", HEADER, body)
    rec = open_recording(path, opts(time_unit="us"))
    assert rec.time_unit == "us" and next(iter(rec.chunks())).t[1] == pytest.approx(1e-5)
    with pytest.raises(DataError, match="--time-unit iso, but the time column holds numbers"):
        open_recording(path, opts(time_unit="iso"))
    with pytest.raises(UsageError, match="--time-unit must be one of s, ms, us, ns, iso"):
        open_recording(path, opts(time_unit="min"))
    fast = write(tmp_path / "b.csv", HEADER, [f"{i * 2e-5}," + ",".join("1" * 9) for i in range(9)])
    assert error(fast) == (
        f"{fast}: timestamps advance by 2e-05 per sample (5e+04 Hz as s, 5e+07 Hz as ms, "
        "5e+10 Hz as us, 5e+13 Hz as ns): no unit gives a rate within 1 Hz..10 kHz; "
        "give --time-unit or --rate"
    )


def test_a_value_overflowing_float32_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER, [*rows(3), "0.03,1,2,1e39,4,5,6,7,8,9"])
    assert error(path) == (
        f"{path}:5: value 1e+39 in column 'az' does not fit float32 (largest 3.403e+38)"
    )
    ok = write(tmp_path / "b.csv", HEADER, [*rows(3), "0.03,1,2,1e37,4,5,6,7,8,9"])
    assert error(ok, opts(scale={"az": 100.0})).endswith(
        ":5: value 1e+37 in column 'az' does not fit float32 (largest 3.403e+38 after --scale)"
    )
    rec = open_recording(path, opts(skip_bad_rows=True))
    assert len(np.concatenate([c.t for c in rec.chunks()])) == 3 and rec.bad_rows == 1


def test_a_quoted_field_may_hold_the_delimiter(tmp_path: Path) -> None:
    body = [f'{i / 100},"walk, slow",' + ",".join(str(c) for c in range(9)) for i in range(5)]
    body[2] = '0.02,"stand",' + ",".join(str(c) for c in range(9))
    path = write(tmp_path / "a.csv", "t,note," + ",".join(CH), body)
    t, x, _ = read_all(path)
    assert t.tolist() == [0.0, 0.01, 0.02, 0.03, 0.04] and x[4].tolist() == list(range(9))
    iso = write(
        tmp_path / "b.csv",
        '"note, free text",timestamp,' + ",".join(CH),
        [f'"a, b",2026-11-22T10:00:00.{i}0Z,' + ",".join("1" * 9) for i in range(3)],
    )
    t, _, _ = read_all(iso)
    assert t[2] - t[0] == pytest.approx(0.2)


def test_a_logger_restart_is_kept_with_skip_bad_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", HEADER, [*rows(300), *rows(300), *rows(1, start=2.99)])
    assert error(path).startswith(f"{path}:302: timestamp 0.0 is not after the previous one")
    rec = open_recording(path, opts(skip_bad_rows=True, chunk_rows=64))
    t = np.concatenate([c.t for c in rec.chunks()])
    assert len(t) == 600 and rec.bad_rows == 1  # the repeated last row only


def test_pyarrow_hands_over_to_the_line_reader_at_the_first_block_it_cannot_take(
    tmp_path: Path, csv_parser: str
) -> None:
    body = rows(30000)  # several 1 MB pyarrow blocks
    body[25000] = body[25000].replace(",", ", x", 1)
    path = write(tmp_path / "a.csv", HEADER, body)
    rec = open_recording(path, opts(chunk_rows=4096))
    got = []
    with pytest.raises(DataError, match=r"a.csv:25002: 'x250000' in column 'ax' is not a number"):
        for chunk in rec.chunks():
            got.append(chunk)
    assert sum(len(c) for c in got) >= 16384
    rec = open_recording(path, opts(chunk_rows=4096, skip_bad_rows=True))
    t = np.concatenate([c.t for c in rec.chunks()])
    assert len(t) == 29999 and rec.bad_rows == 1
    want = np.round(np.delete(np.arange(30000), 25000) * 0.01, 6)
    np.testing.assert_allclose(t, want, atol=1e-9)


def test_npz_integer_milliseconds_are_detected(tmp_path: Path) -> None:
    x = np.ones((200, 9), np.float32)
    t = 1_795_341_600_000 + np.floor(np.arange(200) * 1000 / 104).astype(np.int64)
    np.savez(tmp_path / "ms.npz", t=t, x=x)
    rec = open_recording(tmp_path / "ms.npz", OPTS)
    got = np.concatenate([c.t for c in rec.chunks()])
    assert rec.time_unit == "ms" and rec.absolute_time and got[0] == pytest.approx(T_2026)
    assert got[-1] - got[0] == pytest.approx(1.913)

"""Recorded-file readers: columns, times, chunking, and one-line FILE:LINE errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsqd.errors import DataError, NoInputError, UsageError
from fsqd.sensors.files import ReadOptions, open_recording
from fsqd.stream.chunk import SampleChunk

CH = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
OPTS = ReadOptions(channels=CH)


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


def test_reads_columns_in_card_order_whatever_the_file_order(tmp_path: Path) -> None:
    header = "mz,my,mx,gz,gy,gx,az,ay,ax,Time"
    body = [",".join(str(9 - c) for c in range(9)) + f",{i / 100}" for i in range(5)]
    t, x, chunks = read_all(write(tmp_path / "a.csv", header, body))
    assert x[0].tolist() == list(range(1, 10))
    assert t.tolist() == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert chunks[0].new_segment


def test_chunking_does_not_change_what_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "t," + ",".join(CH), rows(1000))
    t1, x1, _ = read_all(path)
    t2, x2, chunks = read_all(path, ReadOptions(channels=CH, chunk_rows=7))
    assert len(chunks) == 143 and [c.new_segment for c in chunks].count(True) == 1
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(x1, x2)


def test_iso_times_become_epoch_seconds(tmp_path: Path) -> None:
    body = [f"2026-11-22T10:00:00.{i:02d}0Z," + ",".join("1" * 9) for i in range(3)]
    rec = open_recording(write(tmp_path / "a.csv", "timestamp," + ",".join(CH), body), OPTS)
    (chunk,) = rec.chunks()
    assert rec.absolute_time
    assert chunk.t[0] == pytest.approx(1795341600.0)
    assert np.diff(chunk.t) == pytest.approx([0.01, 0.01])
    offset = ["2026-11-22T12:00:00+02:00," + ",".join("1" * 9)]
    (chunk,) = open_recording(write(tmp_path / "b.csv", "t," + ",".join(CH), offset), OPTS).chunks()
    assert chunk.t[0] == pytest.approx(1795341600.0)


def test_rate_when_there_is_no_time_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", ",".join(CH), [",".join("1" * 9)] * 4)
    with pytest.raises(DataError, match="no time column"):
        open_recording(path, OPTS)
    t, _, _ = read_all(path, ReadOptions(channels=CH, rate_hz=50.0))
    assert t.tolist() == [0.0, 0.02, 0.04, 0.06]


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "t,ax,ay,az", ["0,1,2,3"])
    with pytest.raises(
        DataError, match=r"a.csv:1: no column 'gx'; the file has columns: t, ax, ay, az"
    ):
        open_recording(path, OPTS)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("0.030000,1,2,x,4,5,6,7,8,9", r"a.csv:5: 'x' in column 'az' is not a number"),
        ("0.030000,1,2,3", "a.csv:5: 4 fields, the header has 10"),
        ("0.030000,1,2,nan,4,5,6,7,8,9", "a.csv:5: NaN or inf value"),
        (
            "0.010000,1,2,3,4,5,6,7,8,9",
            r"a.csv:5: timestamp 0.01 is not after the previous one \(0.02\)",
        ),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = write(tmp_path / "a.csv", "t," + ",".join(CH), [*rows(3), bad, *rows(3, start=1.0)])
    with pytest.raises(DataError, match=message):
        read_all(path)
    rec = open_recording(path, ReadOptions(channels=CH, skip_bad_rows=True))
    t = np.concatenate([c.t for c in rec.chunks()])
    assert rec.bad_rows == 1 and len(t) == 6


def test_empty_binary_missing_and_directory(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="no samples"):
        open_recording(tmp_path / "empty.csv", OPTS)
    header_only = write(tmp_path / "h.csv", "t," + ",".join(CH), [])
    with pytest.raises(DataError, match="no samples"):
        read_all(header_only)
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_all(tmp_path / "bin.csv")
    with pytest.raises(NoInputError, match="no such file"):
        open_recording(tmp_path / "nope.csv", OPTS)
    with pytest.raises(NoInputError, match="not a regular file"):
        open_recording(tmp_path, OPTS)


def test_devices_naming_and_fill(tmp_path: Path) -> None:
    two = ReadOptions(channels=CH, devices=2)
    names = [f"{c}_{d}" for d in range(2) for c in CH]
    path = write(
        tmp_path / "two.csv", "t," + ",".join(names), ["0," + ",".join(map(str, range(18)))]
    )
    _, x, _ = read_all(path, two)
    assert x[0].tolist() == list(range(18))
    one = write(tmp_path / "one.csv", "t," + ",".join(CH), ["0," + ",".join(map(str, range(9)))])
    with pytest.raises(DataError, match="1 device but the model needs 2; pass --fill duplicate"):
        open_recording(one, two)
    _, x, _ = read_all(one, ReadOptions(channels=CH, devices=2, fill="duplicate"))
    assert x[0].tolist() == list(range(9)) * 2


def test_scale_by_pattern_and_explicit_columns(tmp_path: Path) -> None:
    header = "t,AccX,AccY,AccZ,GyrX,GyrY,GyrZ,MagX,MagY,MagZ"
    path = write(tmp_path / "a.csv", header, ["0,1000,0,-1000,1,1,1,2,2,2"])
    cols = tuple(header.split(",")[1:])
    opts = ReadOptions(channels=CH, columns=cols, scale={"a*": 0.00980665, "g?": 2.0})
    _, x, _ = read_all(path, opts)
    np.testing.assert_allclose(x[0], [9.80665, 0, -9.80665, 2, 2, 2, 2, 2, 2], rtol=1e-6)
    with pytest.raises(UsageError, match="matches no channel"):
        open_recording(path, ReadOptions(channels=CH, columns=cols, scale={"q*": 2.0}))


def test_npy_and_npz(tmp_path: Path) -> None:
    x = np.arange(90, dtype=np.float32).reshape(10, 9)
    np.save(tmp_path / "a.npy", x)
    with pytest.raises(DataError, match="--rate"):
        read_all(tmp_path / "a.npy")
    t, got, _ = read_all(tmp_path / "a.npy", ReadOptions(channels=CH, rate_hz=100.0))
    np.testing.assert_array_equal(got, x)
    assert t[1] == 0.01
    np.savez(tmp_path / "b.npz", t=np.arange(10) * 0.02 + 1.7e9, x=x)
    rec = open_recording(tmp_path / "b.npz", OPTS)
    t = np.concatenate([c.t for c in rec.chunks()])
    assert rec.absolute_time and t[1] - t[0] == pytest.approx(0.02)
    np.savez(
        tmp_path / "c.npz", time=np.arange(10) * 0.01, **{c: x[:, i] for i, c in enumerate(CH)}
    )
    _, got, _ = read_all(tmp_path / "c.npz")
    np.testing.assert_array_equal(got, x)
    bad = x.copy()
    bad[4, 2] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match="row 4: NaN or inf"):
        read_all(tmp_path / "bad.npy", ReadOptions(channels=CH, rate_hz=100.0))
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(DataError, match="expected a 2-D numeric array"):
        open_recording(tmp_path / "flat.npy", OPTS)


def test_spreadsheet_exports_bom_crlf_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    body = "".join(f"{i / 100};" + ";".join(str(c) for c in range(9)) + "\r\n" for i in range(3))
    path.write_bytes(("\ufeffT;" + ";".join(CH) + "\r\n" + body).encode())
    t, x, _ = read_all(path)
    assert t.tolist() == [0.0, 0.01, 0.02]
    assert x[2].tolist() == list(range(9))

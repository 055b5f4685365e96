"""The native .fsqr format: round trip, segments, append, torn tails, replay's reader."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, OutputError
from fsqd.recordings import (
    NativeRecording,
    NativeWriter,
    ReadOptions,
    open_recording,
    recording_header,
)
from fsqd.recordings.fsqr import KIND_HEADER, KIND_SAMPLES, KIND_STATUS, scan, valid_end
from fsqd.units import CHANNELS

T0 = 1_790_000_000.0


def header(devices: int = 1) -> dict[str, object]:
    return recording_header(devices, 104.0, [{"name": "collar"}], "2026-11-23T10:00:00+00:00")


def chunk(
    start: int, n: int, *, rate: float = 104.17, devices: int = 1, seg: bool = False
) -> SampleChunk:
    k = np.arange(start, start + n)
    x = np.sin(k[:, None] * 0.1 + np.arange(9 * devices)).astype(np.float32) * 10
    return SampleChunk(T0 + k / rate, x, new_segment=seg)


def read_all(path: Path, devices: int = 1) -> list[SampleChunk]:
    rec = open_recording(path, ReadOptions(channels=CHANNELS, devices=devices))
    assert isinstance(rec, NativeRecording)
    return list(rec.chunks())


def test_round_trip_keeps_values_exactly_and_times_to_a_microsecond(tmp_path: Path) -> None:
    path = tmp_path / "a.fsqr"
    w = NativeWriter(path, header(), fsync=False)
    parts = [chunk(0, 30, seg=True), chunk(30, 80), chunk(110, 200)]
    for c in parts:
        w.write(c)
    w.close([{"name": "collar", "samples": 310}])
    back = read_all(path)
    t = np.concatenate([c.t for c in back])
    x = np.concatenate([c.x for c in back])
    want_t = np.concatenate([c.t for c in parts])
    want_x = np.concatenate([c.x for c in parts])
    np.testing.assert_array_equal(x, want_x)
    assert np.abs(t - want_t).max() <= 0.5e-6
    assert [c.new_segment for c in back] == [True] + [False] * (len(back) - 1)
    kinds = [b.kind for b in scan(path.open("rb"), path)]
    assert kinds[0] == KIND_HEADER and kinds[-1] == KIND_STATUS
    assert kinds.count(KIND_SAMPLES) == 2  # a block once a second or more is buffered
    # 4 bytes of time + 36 of values per sample, plus 22 bytes per block.
    assert path.stat().st_size < 310 * 40 + 1000


def test_segments_survive_the_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.fsqr"
    w = NativeWriter(path, header(), fsync=False)
    w.write(chunk(0, 50, seg=True))
    w.write(chunk(300, 50, seg=True))  # a gap (an overflow) before it
    w.close()
    back = read_all(path)
    assert [(len(c), c.new_segment) for c in back] == [(50, True), (50, True)]


def test_a_torn_last_block_loses_only_that_block(tmp_path: Path) -> None:
    path = tmp_path / "torn.fsqr"
    w = NativeWriter(path, header(), fsync=False, block_s=0.5)
    for i in range(5):
        w.write(chunk(i * 105, 105))
    w.close()
    full = path.read_bytes()
    for cut in (1, 7, 200):  # in the last block's data, its checksum, its length
        path.write_bytes(full[:-cut])
        back = read_all(path)
        assert sum(len(c) for c in back) == 4 * 105
    path.write_bytes(full[:-200])
    rec = open_recording(path, ReadOptions(channels=CHANNELS))
    assert isinstance(rec, NativeRecording) and rec.torn_bytes > 0


def test_a_flipped_bit_ends_the_readable_part(tmp_path: Path) -> None:
    path = tmp_path / "bad.fsqr"
    w = NativeWriter(path, header(), fsync=False, block_s=0.5)
    for i in range(4):
        w.write(chunk(i * 105, 105))
    w.close()
    data = bytearray(path.read_bytes())
    blocks = list(scan(path.open("rb"), path))
    data[blocks[3].offset + 40] ^= 0x10  # inside the third sample block
    path.write_bytes(bytes(data))
    assert sum(len(c) for c in read_all(path)) == 2 * 105


def test_append_adds_a_session_and_cuts_a_torn_tail_first(tmp_path: Path) -> None:
    path = tmp_path / "app.fsqr"
    w = NativeWriter(path, header(), fsync=False)
    w.write(chunk(0, 105, seg=True))
    w.close()
    good = valid_end(path)
    with path.open("ab") as fh:
        # A power cut mid-block: a length, no valid data, and more bytes than we append.
        fh.write(struct.pack("<II", 50_000, 0) + bytes(20_000))
    w = NativeWriter(path, header(), fsync=False)
    w.write(chunk(1000, 105, seg=True))
    w.close()
    back = read_all(path)
    assert [(len(c), c.new_segment) for c in back] == [(105, True), (105, True)]
    assert valid_end(path) == path.stat().st_size > good


def test_append_refuses_other_channels(tmp_path: Path) -> None:
    path = tmp_path / "two.fsqr"
    NativeWriter(path, header(1), fsync=False).close()
    with pytest.raises(OutputError, match="cannot append"):
        NativeWriter(path, header(2), fsync=False)


def test_not_a_recording_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "x.fsqr"
    path.write_bytes(b"t,ax\n1,2\n")
    with pytest.raises(DataError, match="not an fsqd recording"):
        read_all(path)
    path.write_bytes(b"FSQR\x02\x00")
    with pytest.raises(DataError, match="version 2"):
        read_all(path)


def test_two_devices_and_fill(tmp_path: Path) -> None:
    path = tmp_path / "d2.fsqr"
    w = NativeWriter(path, header(2), fsync=False)
    w.write(chunk(0, 50, devices=2, seg=True))
    w.close()
    assert read_all(path, devices=2)[0].x.shape == (50, 18)
    one = tmp_path / "d1.fsqr"
    w = NativeWriter(one, header(1), fsync=False)
    w.write(chunk(0, 50, seg=True))
    w.close()
    with pytest.raises(DataError, match="--fill duplicate"):
        read_all(one, devices=2)
    rec = open_recording(one, ReadOptions(channels=CHANNELS, devices=2, fill="duplicate"))
    x = next(iter(rec.chunks())).x
    np.testing.assert_array_equal(x[:, :9], x[:, 9:])

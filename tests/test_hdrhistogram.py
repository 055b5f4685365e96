"""fsqd.hdrhistogram against the hdrhistogram package (hdrh): same layout, answers and bytes."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from fsqd.errors import DataError
from fsqd.hdrhistogram import COMPRESSED_COOKIE, ENCODING_COOKIE, HdrHistogram

try:
    from hdrh.histogram import HdrHistogram as Reference
except ImportError:  # no wheel and no compiler: the comparisons below skip, the rest run
    Reference = None

needs_hdrh = pytest.mark.skipif(
    Reference is None,
    reason="the hdrhistogram package (hdrh) cannot be imported, so there is nothing to "
    "compare with (the test extra brings it where it has wheels: not on Linux aarch64)",
)

FSQD = (1, 60_000_000, 3)  # fsqd.metrics' layout: 1 us .. 60 s, 3 digits
TOP = 2048 << 15  # the first value past the last bucket of FSQD's layout
PERCENTILES = [0.0, 0.1, 1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0]


def edges() -> list[int]:
    """Both sides of every bucket boundary and a sub-bucket walk in two buckets."""
    out = {0, 1, 60_000_000, TOP - 1}
    for k in range(27):
        out |= {(1 << k) - 1, 1 << k, (1 << k) + 1}
    out |= set(range(2040, 2060)) | set(range(4090, 4110, 1))
    return sorted(v for v in out if v < TOP)


def distributions() -> dict[str, list[tuple[int, int]]]:
    """(value, count) pairs per case; seeded, so every run sees the same values."""
    rng = np.random.default_rng(7)
    wide = np.clip(rng.lognormal(7.0, 2.5, 20_000), 0, 60_000_000).astype(np.int64)
    normal = np.clip(rng.normal(1500, 200, 5_000), 1, None).astype(np.int64)
    return {
        "empty": [],
        "one value": [(1, 1)],
        "one large value": [(59_999_999, 1)],
        "zero": [(0, 3)],
        "1 and 60e6": [(1, 1), (60_000_000, 1)],
        "bucket edges": [(v, 1) for v in edges()],
        "single zero gaps": [(v, 1) for v in range(1, 1500, 2)],
        "wide log-normal": [(int(v), 1) for v in wide],
        "latencies around 1.5 ms": [(int(v), 1) for v in normal],
        "large counts": [(3, 2**31), (700, 2**40), (5_000, 2**56 + 3), (90_000, 2**61)],
        "a count of 0 at the top": [(10, 1), (9_000, 0)],
    }


CASES = distributions()


def record(
    cls: Callable[..., Any],
    pairs: Iterable[tuple[int, int]],
    layout: tuple[int, int, int] = FSQD,
) -> Any:
    h = cls(*layout)
    for value, count in pairs:
        assert h.record_value(value, count)
    return h


def same_answers(ours: HdrHistogram, ref: Any) -> None:
    assert ours.get_total_count() == ref.get_total_count()
    assert ours.get_max_value() == ref.get_max_value()
    assert ours.get_min_value() == ref.get_min_value()
    assert ours.get_mean_value() == ref.get_mean_value()
    assert ours.get_percentile_to_value_dict(PERCENTILES) == ref.get_percentile_to_value_dict(
        PERCENTILES
    )
    for p in PERCENTILES:
        assert ours.get_value_at_percentile(p) == ref.get_value_at_percentile(p), p


@needs_hdrh
@pytest.mark.parametrize("name", list(CASES))
def test_same_bytes_and_answers_as_hdrh(name: str) -> None:
    ours, ref = record(HdrHistogram, CASES[name]), record(Reference, CASES[name])
    blob = ours.encode()
    assert blob == ref.encode()
    assert blob.startswith(b"HISTF")
    same_answers(ours, ref)


@needs_hdrh
@pytest.mark.parametrize("name", list(CASES))
def test_each_decodes_the_others_blob(name: str) -> None:
    ours, ref = record(HdrHistogram, CASES[name]), record(Reference, CASES[name])
    ours_blob, ref_blob = ours.encode(), ref.encode()
    # Each library reading the other's blob answers as the other reading its own.
    same_answers(HdrHistogram.decode(ref_blob), Reference.decode(ref_blob))
    same_answers(HdrHistogram.decode(ours_blob), Reference.decode(ours_blob))
    assert HdrHistogram.decode(ref_blob).encode() == Reference.decode(ours_blob).encode()
    if name != "a count of 0 at the top":  # a decoded maximum is the top non-empty bucket
        same_answers(HdrHistogram.decode(ref_blob), ref)
    # A str (the blob as it sits in JSON) decodes the same.
    as_str = HdrHistogram.decode(ref_blob.decode("ascii"))
    assert as_str.encode() == HdrHistogram.decode(ref_blob).encode()


@needs_hdrh
@pytest.mark.parametrize(
    "layout",
    [(1, 2, 1), (1, 1000, 1), (1, 3_600_000_000, 2), (2, 10**6, 3), (3, 10**7, 3),
     (1000, 10**12, 4), (1, 600_000, 5), (1024, 2**40, 3), (1, 2**62, 3)],
)  # fmt: skip
def test_layout_matches_hdrh_beyond_fsqds_parameters(layout: tuple[int, int, int]) -> None:
    ours, ref = HdrHistogram(*layout), Reference(*layout)
    for attr in ("counts_len", "bucket_count", "sub_bucket_count", "unit_magnitude"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    rng = np.random.default_rng(sum(layout) % 2**32)
    top = ours.get_highest_equivalent_value(ours.get_value_from_index(ours.counts_len - 1))
    values = [0, 1, layout[0], layout[1], top] + [
        int(v) for v in rng.integers(0, top, 200, endpoint=True)
    ]
    for v in values:
        assert ours.get_counts_array_index(v) == ref.get_counts_array_index(v), v
        assert ours.get_lowest_equivalent_value(v) == ref.get_lowest_equivalent_value(v), v
        assert ours.get_highest_equivalent_value(v) == ref.get_highest_equivalent_value(v), v
        ours.record_value(v, 1 + v % 5)
        ref.record_value(v, 1 + v % 5)
    for index in range(0, ours.counts_len, 97):
        assert ours.get_value_from_index(index) == ref.get_value_from_index(index)
    assert not ours.record_value(top + 1) and not ref.record_value(top + 1)
    assert ours.encode() == ref.encode()
    same_answers(ours, ref)


@needs_hdrh
def test_merging_matches_hdrh_and_recording_everything_once() -> None:
    a, b = CASES["wide log-normal"][:10_000], CASES["wide log-normal"][10_000:]
    ours, ref = record(HdrHistogram, a), record(Reference, a)
    ours.add(record(HdrHistogram, b))
    ref.add(record(Reference, b))
    assert ours.encode() == ref.encode() == record(HdrHistogram, a + b).encode()
    same_answers(ours, ref)
    # Into an empty histogram (how a fleet sums its nodes' blobs).
    fleet = HdrHistogram(*FSQD)
    fleet.add(HdrHistogram.decode(ours.encode()))
    assert fleet.encode() == ref.encode()


@needs_hdrh
def test_merging_a_different_layout_rerecords_like_hdrh() -> None:
    pairs = CASES["latencies around 1.5 ms"]
    ours, ref = HdrHistogram(1, 3_600_000_000, 2), Reference(1, 3_600_000_000, 2)
    ours.add(record(HdrHistogram, pairs))
    ref.add(record(Reference, pairs))
    assert ours.encode() == ref.encode()
    same_answers(ours, ref)


@needs_hdrh
def test_copy_and_reset() -> None:
    ours = record(HdrHistogram, CASES["wide log-normal"])
    twin = ours.copy()
    ours.reset()
    assert ours.encode() == HdrHistogram(*FSQD).encode() == Reference(*FSQD).encode()
    assert (ours.get_total_count(), ours.get_max_value(), ours.get_min_value()) == (0, 0, 0)
    assert twin.encode() == record(Reference, CASES["wide log-normal"]).encode()
    twin.record_value(5)
    assert ours.get_total_count() == 0  # independent counts


def test_adding_an_empty_histogram_keeps_the_minimum() -> None:
    # hdrh 0.10 sets the minimum to 0 here; Java and C leave it alone, and so does fsqd.
    h = record(HdrHistogram, [(500, 1), (7000, 1)])
    h.add(HdrHistogram(*FSQD))
    assert h.get_min_value() == 500 and h.get_total_count() == 2


def test_adding_counts_past_63_bits_raises_and_changes_nothing() -> None:
    h = record(HdrHistogram, [(100, 2**62), (200, 1)])
    before = h.encode()
    with pytest.raises(OverflowError):
        h.add(record(HdrHistogram, [(100, 2**62)]))
    assert h.encode() == before and h.get_total_count() == 2**62 + 1


def test_adding_a_histogram_with_larger_values_raises() -> None:
    small = HdrHistogram(1, 1000, 3)
    with pytest.raises(ValueError, match="holds"):
        small.add(record(HdrHistogram, [(50_000_000, 1)]))


def test_out_of_range_values_are_refused_and_change_nothing() -> None:
    h = record(HdrHistogram, [(10, 1)])
    assert not h.record_value(-1)
    assert not h.record_value(TOP)
    assert h.record_value(TOP - 1)
    assert h.get_total_count() == 2 and h.get_min_value() == 10


@pytest.mark.parametrize(
    ("layout", "match"),
    [((1, 1000, 6), "significant_figures"), ((0, 1000, 3), "lowest"), ((10, 19, 3), "highest"),
     ((1, 2**63, 3), "highest"), ((2**60, 2**62, 3), "too large")],
)  # fmt: skip
def test_bad_parameters_are_refused(layout: tuple[int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HdrHistogram(*layout)


def test_counts_of_62_and_63_bits_round_trip_through_nine_byte_varints() -> None:
    # ZigZag(2**62) = 2**63: its 9th LEB128 byte is 0x80, all 8 bits significant. (hdrh's
    # decoder keeps only 7 of them and reads 0; Java's and fsqd's read the count.)
    for count in (2**62 - 1, 2**62, 2**63 - 1):
        h = HdrHistogram.decode(record(HdrHistogram, [(100, count)]).encode())
        assert h.get_count_at_value(100) == count == h.get_total_count()


# -- blobs built by hand: what other encoders may write, and what no encoder should --


def varint(value: int) -> bytes:
    """ZigZag LEB128-64b9B, written out bit by bit (independent of the encoder under test)."""
    word = ((value << 1) ^ (value >> 63)) & (2**64 - 1)
    out = bytearray()
    for k in range(8):
        if word >> (7 * (k + 1)) == 0:
            return bytes(out + bytes([word >> (7 * k) & 0x7F]))
        out.append((word >> (7 * k) & 0x7F) | 0x80)
    return bytes(out + bytes([word >> 56]))


def blob(
    payload: bytes,
    layout: tuple[int, int, int] = FSQD,
    cookie: int = ENCODING_COOKIE,
    payload_len: int | None = None,
    outer_cookie: int = COMPRESSED_COOKIE,
    offset: int = 0,
) -> bytes:
    n = len(payload) if payload_len is None else payload_len
    lowest, highest, digits = layout
    header = struct.pack(">Iiiiqqd", cookie, n, offset, digits, lowest, highest, 1.0)
    body = zlib.compress(header + payload)
    return base64.b64encode(struct.pack(">II", outer_cookie, len(body)) + body)


def test_hand_built_blobs_decode_as_the_format_says() -> None:
    # Java writes a lone zero count as 0, hdrh as -1: both mean one empty bucket.
    for zero in (varint(0), varint(-1)):
        h = HdrHistogram.decode(blob(zero + varint(5) + varint(-2000) + varint(2)))
        assert h.get_count_at_value(1) == 5 and h.get_count_at_value(2002) == 2
        assert (h.get_total_count(), h.get_min_value(), h.get_max_value()) == (7, 1, 2002)
    # The 9-byte rule: 8 bytes with the continuation bit, then one byte of 8 full bits.
    nine = bytes([0xFE] + [0xFF] * 8)  # the 9th byte 0xFF: its top bit is data, not "more"
    assert varint(2**63 - 1) == nine and len(varint(-(2**63))) == 9
    assert HdrHistogram.decode(blob(nine)).get_count_at_value(0) == 2**63 - 1
    # A shifted Java histogram's index offset leaves the counts as written (Java writes them
    # in value order); the word-size nibble of the cookie is not part of the format's identity.
    h = HdrHistogram.decode(blob(varint(-10) + varint(4), offset=512, cookie=0x1C849303))
    assert h.get_count_at_value(10) == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HISTF", "not base64"),
        (base64.b64encode(b"abc"), "too short"),
        (blob(b"", outer_cookie=0x1C849302), "not a compressed V2"),
        (base64.b64encode(struct.pack(">II", COMPRESSED_COOKIE, 99) + b"x" * 10), "says 99"),
        (base64.b64encode(struct.pack(">II", COMPRESSED_COOKIE, 4) + b"junk"), "inflate"),
        (
            base64.b64encode(struct.pack(">II", COMPRESSED_COOKIE, 13) + zlib.compress(b"short")),
            "header too short",
        ),
        (blob(b"", cookie=0x1C849301), "not a V2 HdrHistogram encoding"),
        (blob(varint(1), payload_len=2), "payload length 2"),
        (blob(varint(1), layout=(1, 1000, 9)), "significant_figures"),
        (blob(varint(1) + b"\x80"), "inside a varint"),
        (blob(varint(-17408) + varint(1)), "overruns 17408"),
    ],
)
def test_malformed_blobs_raise_one_line_data_errors(raw: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message) as e:
        HdrHistogram.decode(raw)
    assert "\n" not in str(e.value)

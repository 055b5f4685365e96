"""HdrHistogram in pure Python and numpy: the reference's bucket layout, queries and wire format.

The counts array has the layout of HdrHistogram (Java, C) and the ``hdrhistogram`` package
(``hdrh``) for the same lowest/highest/significant figures. Queries follow ``hdrh``: a
percentile's target count is rounded half up, its value is the highest value equivalent to
the bucket that reaches it (the lowest for percentile 0), the mean weighs bucket middles.
``encode()`` writes the compressed V2 ``HISTF...`` blob byte for byte as ``hdrh`` does, which
every standard HdrHistogram library decodes; ``decode()`` reads blobs from any of them.

The wire format, all integers big-endian:

  base64( cookie 0x1c849314 | u32 length of the zlib stream | zlib(
      cookie 0x1c849313 | u32 payload length | i32 normalizing index offset (0) |
      i32 significant figures | i64 lowest | i64 highest | f64 int-to-double ratio (1.0) |
      payload ) )

The payload runs over the counts from index 0 to the index of the largest value: each count
as a ZigZag LEB128 varint, each run of zero counts as one negative varint (``-run``; ``hdrh``
and the C library write -1 for a single zero, Java writes 0, decoders accept both). The
varint is the 64-bit, 9-byte variant: bytes 1..8 carry 7 bits each, a 9th byte all 8.

Not thread-safe: callers that record from several threads hold a lock around each call.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import sys
import zlib
from array import array

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError

ENCODING_COOKIE = 0x1C849303 | 0x10  # V2 encoding; 0x10: the LEB128 word-size marker
COMPRESSED_COOKIE = 0x1C849304 | 0x10  # V2 compressed wrapper
_COOKIE_BASE_MASK = ~0xF0
_WRAPPER = struct.Struct(">II")  # cookie, length of the zlib stream
# cookie, payload length, normalizing index offset, significant figures, lowest, highest, ratio
_HEADER = struct.Struct(">Iiiiqqd")
_NO_MIN = sys.maxsize  # min_value before the first value, as in hdrh
_LEB_SHIFTS = np.arange(9, dtype=np.uint64) * np.uint64(7)


class HdrHistogram:
    """Counts of integer values in [0, highest] at ``significant_figures`` decimal digits."""

    __slots__ = (
        "_bucket_shift",
        "_counts",
        "_view",
        "bucket_count",
        "counts_len",
        "highest_trackable_value",
        "lowest_trackable_value",
        "max_value",
        "min_value",
        "significant_figures",
        "sub_bucket_count",
        "sub_bucket_half_count",
        "sub_bucket_half_count_magnitude",
        "sub_bucket_mask",
        "total_count",
        "unit_magnitude",
    )

    def __init__(
        self, lowest_trackable_value: int, highest_trackable_value: int, significant_figures: int
    ) -> None:
        lowest, highest = lowest_trackable_value, highest_trackable_value
        digits = significant_figures
        if not 0 <= digits <= 5:
            raise ValueError(f"significant_figures must be 0..5, not {digits}")
        if lowest < 1:
            raise ValueError(f"lowest_trackable_value must be >= 1, not {lowest}")
        if highest < 2 * lowest or highest >= 1 << 63:
            raise ValueError(f"highest_trackable_value {highest} not in [2 * lowest, 2**63)")
        self.lowest_trackable_value = lowest
        self.highest_trackable_value = highest
        self.significant_figures = digits
        # The reference's float formulas, kept so the layout matches theirs exactly.
        self.unit_magnitude = math.floor(math.log(lowest) / math.log(2))
        count_magnitude = math.ceil(math.log(2 * 10**digits) / math.log(2))
        self.sub_bucket_half_count_magnitude = max(count_magnitude, 1) - 1
        if self.unit_magnitude + self.sub_bucket_half_count_magnitude > 61:
            raise ValueError("lowest_trackable_value too large for the significant figures")
        self.sub_bucket_count = 1 << (self.sub_bucket_half_count_magnitude + 1)
        self.sub_bucket_half_count = self.sub_bucket_count // 2
        self.sub_bucket_mask = (self.sub_bucket_count - 1) << self.unit_magnitude
        self.bucket_count = _buckets_needed(highest, self.sub_bucket_count, self.unit_magnitude)
        self.counts_len = (self.bucket_count + 1) * self.sub_bucket_half_count
        self._bucket_shift = self.unit_magnitude + self.sub_bucket_half_count_magnitude + 1
        # array('q'): cheap scalar increments for record_value, int64 overflow raises, and a
        # zero-copy numpy view for everything that touches many counts.
        self._counts = array("q", bytes(8 * self.counts_len))
        self._view: npt.NDArray[np.int64] = np.frombuffer(self._counts, dtype=np.int64)
        self.total_count = 0
        self.min_value = _NO_MIN
        self.max_value = 0

    # -- recording: the hot path, plain int arithmetic --

    def record_value(self, value: int, count: int = 1) -> bool:
        """Count ``value`` ``count`` times; False (nothing recorded) when it is out of range."""
        if value < 0:
            return False
        bucket = (value | self.sub_bucket_mask).bit_length() - self._bucket_shift
        index = (
            ((bucket + 1) << self.sub_bucket_half_count_magnitude)
            + (value >> (bucket + self.unit_magnitude))
            - self.sub_bucket_half_count
        )
        if index >= self.counts_len:
            return False
        self._counts[index] += count
        self.total_count += count
        if value < self.min_value:
            self.min_value = value
        if value > self.max_value:
            self.max_value = value
        return True

    # -- the layout --

    def _bucket_index(self, value: int) -> int:
        return (value | self.sub_bucket_mask).bit_length() - self._bucket_shift

    def get_counts_array_index(self, value: int) -> int:
        if value < 0:
            raise ValueError(f"histogram values cannot be negative: {value}")
        bucket = self._bucket_index(value)
        sub_bucket = value >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << self.sub_bucket_half_count_magnitude) + (
            sub_bucket - self.sub_bucket_half_count
        )

    def get_value_from_index(self, index: int) -> int:
        bucket = (index >> self.sub_bucket_half_count_magnitude) - 1
        sub_bucket = (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        if bucket < 0:
            sub_bucket -= self.sub_bucket_half_count
            bucket = 0
        return sub_bucket << (bucket + self.unit_magnitude)

    def get_lowest_equivalent_value(self, value: int) -> int:
        bucket = self._bucket_index(value)
        return (value >> (bucket + self.unit_magnitude)) << (bucket + self.unit_magnitude)

    def _equivalent_range(self, value: int) -> int:
        bucket = self._bucket_index(value)
        if value >> (bucket + self.unit_magnitude) >= self.sub_bucket_count:
            bucket += 1
        return 1 << (self.unit_magnitude + bucket)

    def get_highest_equivalent_value(self, value: int) -> int:
        return self.get_lowest_equivalent_value(value) + self._equivalent_range(value) - 1

    # -- queries --

    def get_total_count(self) -> int:
        return self.total_count

    def get_max_value(self) -> int:
        return 0 if self.max_value == 0 else self.get_highest_equivalent_value(self.max_value)

    def get_min_value(self) -> int:
        if self.total_count == 0 or self._counts[0] > 0:
            return 0
        if self.min_value == _NO_MIN:
            return _NO_MIN
        return self.get_lowest_equivalent_value(self.min_value)

    def get_mean_value(self) -> float:
        """The mean, each bucket weighted at its middle value (as every HdrHistogram does)."""
        if not self.total_count:
            return 0.0
        total = 0
        for top, count in self.recorded():
            middle = self.get_lowest_equivalent_value(top) + (self._equivalent_range(top) >> 1)
            total += count * middle
        return float(total) / self.total_count

    def _target_count(self, percentile: float) -> int:
        return max(int((min(percentile, 100.0) * self.total_count / 100) + 0.5), 1)

    def _cumulative(self) -> npt.NDArray[np.uint64]:
        return np.cumsum(self._view[: self._used_length()], dtype=np.uint64)

    def _value_at(self, cumulative: npt.NDArray[np.uint64], percentile: float) -> int | None:
        index = int(np.searchsorted(cumulative, self._target_count(percentile), side="left"))
        if index == len(cumulative):
            return None
        value = self.get_value_from_index(index)
        if percentile:
            return self.get_highest_equivalent_value(value)
        return self.get_lowest_equivalent_value(value)

    def get_value_at_percentile(self, percentile: float) -> int:
        value = self._value_at(self._cumulative(), percentile)
        return 0 if value is None else value

    def get_percentile_to_value_dict(self, percentiles: list[float]) -> dict[float, int]:
        """Values at several percentiles in one pass; like hdrh, stops at the first above 100."""
        cumulative = self._cumulative()
        result: dict[float, int] = {}
        for percentile in sorted(set(percentiles)):
            if percentile > 100:
                break
            value = self._value_at(cumulative, percentile)
            if value is None:
                break
            result[percentile] = value
        return result

    def get_count_at_value(self, value: int) -> int:
        return self._counts[self.get_counts_array_index(value)]

    def recorded(self) -> list[tuple[int, int]]:
        """(highest equivalent value, count) of every non-empty bucket, lowest first."""
        return [
            (self.get_highest_equivalent_value(self.get_value_from_index(i)), self._counts[i])
            for i in np.flatnonzero(self._view).tolist()
        ]

    # -- whole histograms --

    def _same_layout(self, other: HdrHistogram) -> bool:
        return (
            self.bucket_count == other.bucket_count
            and self.sub_bucket_count == other.sub_bucket_count
            and self.unit_magnitude == other.unit_magnitude
        )

    def add(self, other: HdrHistogram) -> None:
        """Add ``other``'s counts (merge); a different layout is re-recorded value by value."""
        top = self.get_highest_equivalent_value(self.get_value_from_index(self.counts_len - 1))
        if top < other.get_max_value():
            raise ValueError(f"histogram to add holds {other.get_max_value()} > this one's {top}")
        if not self._same_layout(other):
            for index in np.flatnonzero(other._view).tolist():
                self.record_value(other.get_value_from_index(index), other._counts[index])
            return
        merged = self._view + other._view
        if (merged < 0).any():  # int64 wrapped: counts are never negative
            raise OverflowError("histogram counts overflow 63 bits")
        self._view[:] = merged
        self.total_count += other.total_count
        # The raw minimum: an empty ``other`` leaves it alone (hdrh 0.10 sets it to 0 there).
        self.min_value = min(self.min_value, other.min_value)
        self.max_value = max(self.max_value, other.max_value)

    def copy(self) -> HdrHistogram:
        twin = HdrHistogram(
            self.lowest_trackable_value, self.highest_trackable_value, self.significant_figures
        )
        twin._view[:] = self._view
        twin.total_count, twin.min_value = self.total_count, self.min_value
        twin.max_value = self.max_value
        return twin

    def reset(self) -> None:
        self._view.fill(0)
        self.total_count = 0
        self.min_value = _NO_MIN
        self.max_value = 0

    # -- the V2 compressed format --

    def _used_length(self) -> int:
        """Counts that matter: up to the largest value's bucket (none when empty)."""
        return self.get_counts_array_index(self.max_value) + 1 if self.total_count else 0

    def encode(self) -> bytes:
        """The base64 ``HISTF...`` blob of the compressed V2 format, as ``hdrh`` encodes it."""
        payload = _encode_counts(self._view[: self._used_length()])
        header = _HEADER.pack(
            ENCODING_COOKIE,
            len(payload),
            0,
            self.significant_figures,
            self.lowest_trackable_value,
            self.highest_trackable_value,
            1.0,
        )
        body = zlib.compress(header + payload)
        return base64.b64encode(_WRAPPER.pack(COMPRESSED_COOKIE, len(body)) + body)

    @staticmethod
    def decode(blob: str | bytes) -> HdrHistogram:
        """A histogram from a base64 V2 compressed blob (any HdrHistogram library's)."""
        try:
            raw = base64.b64decode(blob)
        except (binascii.Error, ValueError) as e:
            raise DataError(f"histogram blob is not base64: {e}") from None
        if len(raw) < _WRAPPER.size:
            raise DataError(f"histogram blob too short: {len(raw)} bytes")
        cookie, length = _WRAPPER.unpack_from(raw)
        if cookie & _COOKIE_BASE_MASK != COMPRESSED_COOKIE & _COOKIE_BASE_MASK:
            raise DataError(f"not a compressed V2 HdrHistogram (cookie {cookie:#010x})")
        if length != len(raw) - _WRAPPER.size:
            raise DataError(f"histogram blob says {length} bytes, holds {len(raw) - 8}")
        try:
            data = zlib.decompress(raw[_WRAPPER.size :])
        except zlib.error as e:
            raise DataError(f"histogram blob does not inflate: {e}") from None
        if len(data) < _HEADER.size:
            raise DataError(f"histogram header too short: {len(data)} bytes")
        cookie, payload_len, _offset, digits, lowest, highest, _ratio = _HEADER.unpack_from(data)
        # _offset (a shifted Java histogram's storage rotation) and _ratio (DoubleHistogram's
        # scale) do not change the counts as written: Java writes them in value order too.
        if cookie & _COOKIE_BASE_MASK != ENCODING_COOKIE & _COOKIE_BASE_MASK:
            raise DataError(f"not a V2 HdrHistogram encoding (cookie {cookie:#010x})")
        if not 0 <= payload_len <= len(data) - _HEADER.size:
            raise DataError(f"histogram payload length {payload_len} beyond the data")
        try:
            h = HdrHistogram(lowest, highest, digits)
        except ValueError as e:
            raise DataError(f"histogram blob: {e}") from None
        h._decode_counts(data[_HEADER.size : _HEADER.size + payload_len])
        return h

    def _decode_counts(self, payload: bytes) -> None:
        counts, end, pos, index, total = self._counts, len(payload), 0, 0, 0
        first = last = -1
        while pos < end:
            byte = payload[pos]
            pos += 1
            word, shift = byte & 0x7F, 7
            while byte & 0x80:
                if pos == end:
                    raise DataError("histogram payload ends inside a varint")
                byte = payload[pos]
                pos += 1
                if shift == 56:  # the 9th byte carries 8 bits and ends the varint
                    word |= byte << 56
                    break
                word |= (byte & 0x7F) << shift
                shift += 7
            value = (word >> 1) ^ -(word & 1)
            if value < 0:
                index -= value  # a run of zero counts
                continue
            if index >= self.counts_len:
                raise DataError(f"histogram payload overruns {self.counts_len} counts")
            if value:
                counts[index] = value
                total += value
                last = index
                if first < 0:
                    first = index
            index += 1
        self.total_count = total
        if total:
            self.min_value = self.get_value_from_index(first)
            self.max_value = self.get_highest_equivalent_value(self.get_value_from_index(last))


def _buckets_needed(value: int, sub_bucket_count: int, unit_magnitude: int) -> int:
    smallest_untrackable = sub_bucket_count << unit_magnitude
    needed = 1
    while smallest_untrackable <= value:
        if smallest_untrackable > sys.maxsize // 2:
            return needed + 1
        smallest_untrackable <<= 1
        needed += 1
    return needed


def _encode_counts(counts: npt.NDArray[np.int64]) -> bytes:
    """The V2 payload: ZigZag LEB128-64b9B counts, zero runs as negative run lengths."""
    if not len(counts):
        return b""
    nonzero = np.flatnonzero(counts)
    gaps = np.diff(nonzero, prepend=-1) - 1  # zero counts before each non-zero one
    tokens = np.empty(2 * len(nonzero), dtype=np.int64)
    tokens[0::2], tokens[1::2] = -gaps, counts[nonzero]
    keep = np.ones(len(tokens), dtype=bool)
    keep[0::2] = gaps > 0
    tail = len(counts) - 1 - (int(nonzero[-1]) if len(nonzero) else -1)
    if tail:  # zero counts up to the largest value's bucket (recorded with count 0)
        tokens = np.concatenate([tokens[keep], np.array([-tail], dtype=np.int64)])
    else:
        tokens = tokens[keep]
    zigzag = ((tokens << 1) ^ (tokens >> 63)).view(np.uint64)
    width = min(9, max(1, -(-int(zigzag.max()).bit_length() // 7)))  # the longest varint
    groups = zigzag[:, None] >> _LEB_SHIFTS[:width]  # column k: the word shifted by 7k
    present = groups != 0
    present[:, 0] = True  # byte k is written when the word has bits at 7k or above
    out = groups & np.uint64(0x7F)
    if width == 9:
        out[:, 8] = groups[:, 8]  # the 9th byte: all 8 remaining bits, no continuation
    out[:, : width - 1] |= present[:, 1:].astype(np.uint64) << np.uint64(7)
    written: bytes = out.astype(np.uint8)[present].tobytes()
    return written

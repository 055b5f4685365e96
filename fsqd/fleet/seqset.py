"""A set of integers as sorted disjoint intervals: the keys of a run seen so far.

A run's ``seq`` values arrive almost contiguous, so a run of a million windows with three
holes is four intervals: de-duplication and the holes (lost windows) both come from it in
memory that grows with the holes, not with the rows.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["SeqSet"]


class SeqSet:
    """Sorted, disjoint, non-adjacent closed intervals ``[lo, hi]``."""

    __slots__ = ("_hi", "_lo")

    def __init__(self, values: Iterable[int] = ()) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        for v in values:
            self.add(v)

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._lo, value) - 1
        return i >= 0 and value <= self._hi[i]

    def __len__(self) -> int:
        return sum(h - lo + 1 for lo, h in zip(self._lo, self._hi, strict=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqSet) and self.intervals() == other.intervals()

    def __repr__(self) -> str:
        return f"SeqSet({self.intervals()})"

    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self._lo, self._hi, strict=True))

    def add(self, value: int) -> bool:
        """Add ``value``; False when it was already there (a duplicate)."""
        return self.add_range(value, value) > 0

    def add_range(self, lo: int, hi: int) -> int:
        """Add ``[lo, hi]``; how many of its values were new."""
        if hi < lo:
            return 0
        # Intervals that overlap or touch [lo, hi] are merged into one.
        first = bisect.bisect_left(self._hi, lo - 1)
        last = bisect.bisect_right(self._lo, hi + 1)
        covered = sum(
            min(hi, self._hi[i]) - max(lo, self._lo[i]) + 1
            for i in range(first, last)
            if self._lo[i] <= hi and self._hi[i] >= lo
        )
        new = hi - lo + 1 - covered
        if first < last:
            lo = min(lo, self._lo[first])
            hi = max(hi, self._hi[last - 1])
        self._lo[first:last] = [lo]
        self._hi[first:last] = [hi]
        return new

    @classmethod
    def from_sorted(cls, values: npt.NDArray[np.int64]) -> SeqSet:
        """From sorted integers (repeats allowed), in one numpy pass."""
        s = cls()
        if len(values) == 0:
            return s
        v = np.unique(values)
        breaks = np.flatnonzero(np.diff(v) != 1)
        s._lo = [int(x) for x in v[np.concatenate(([0], breaks + 1))]]
        s._hi = [int(x) for x in v[np.concatenate((breaks, [len(v) - 1]))]]
        return s

    def update(self, other: SeqSet) -> None:
        for lo, hi in other.intervals():
            self.add_range(lo, hi)

    def holes(self) -> list[tuple[int, int]]:
        """The missing ``[from, to]`` between the first and the last value held."""
        return [(h + 1, lo - 1) for h, lo in zip(self._hi, self._lo[1:], strict=False)]

    @property
    def last(self) -> int | None:
        return self._hi[-1] if self._hi else None

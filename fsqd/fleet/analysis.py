"""What the report shows, computed from one node-day's rows (no plotting here).

Behaviour comes from the node's ``events`` (the behaviour states' segments) when it sent
any that day, otherwise from the codes' ``label`` (each window one step of time, runs of
one label merged into segments). Times are UNIX seconds; a day is a UTC day.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fsqd.hdrhistogram import HdrHistogram

__all__ = [
    "PERCENTILES",
    "Completeness",
    "DayReport",
    "Segment",
    "analyse_day",
    "day_bounds",
    "merged_latency",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
BIN_S = 3600.0  # perplexity and completeness per hour


@dataclass(frozen=True)
class Segment:
    behaviour: str
    start: float
    end: float

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Completeness:
    expected: int  # windows the runs' seq numbers say were coded that day
    present: int
    hours: list[tuple[float, int, int]]  # (hour start, expected, present)
    gaps: list[tuple[float, float]]  # time spans of the missing windows

    @property
    def share(self) -> float:
        return self.present / self.expected if self.expected else 0.0


@dataclass
class DayReport:
    node: str
    date: str
    source: str  # "events" or "codes"
    segments: list[Segment] = field(default_factory=list)
    budget_s: dict[str, float] = field(default_factory=dict)
    perplexity: list[tuple[float, float]] = field(default_factory=list)  # (hour start, value)
    completeness: Completeness | None = None

    @property
    def budget_share(self) -> dict[str, float]:
        total = sum(self.budget_s.values())
        return {k: v / total for k, v in self.budget_s.items()} if total else {}

    def durations(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for s in self.segments:
            out[s.behaviour].append(s.duration_s)
        return dict(out)


def day_bounds(date: str) -> tuple[float, float]:
    y, m, d = (int(x) for x in date.split("-"))
    start = float(calendar.timegm((y, m, d, 0, 0, 0, 0, 0, 0)))
    return start, start + 86400.0


def _clip(segments: list[Segment], lo: float, hi: float) -> list[Segment]:
    out = []
    for s in segments:
        a, b = max(s.start, lo), min(s.end, hi)
        if b > a:
            out.append(Segment(s.behaviour, a, b))
    return out


def _step(t_end: np.ndarray) -> float:
    d = np.diff(np.sort(t_end))
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1.0


def code_segments(codes: pa.Table) -> list[Segment]:
    """Runs of one label, each window standing for one step; a missing stretch splits them."""
    if codes.num_rows == 0:
        return []
    t_end = codes.column("t_end").to_numpy(zero_copy_only=False).astype(float)
    labels = codes.column("label").to_pylist()
    order = np.argsort(t_end, kind="stable")
    step = _step(t_end)
    segments: list[Segment] = []
    cur: list[float | str] = []
    for i in order.tolist():
        label = labels[i] or "unlabelled"
        end = float(t_end[i])
        if cur and cur[0] == label and end - float(cur[2]) <= 1.5 * step:
            cur[2] = end
            continue
        if cur:
            segments.append(Segment(str(cur[0]), float(cur[1]), float(cur[2])))
        cur = [label, end - step, end]
    segments.append(Segment(str(cur[0]), float(cur[1]), float(cur[2])))
    return segments


def event_segments(events: pa.Table) -> list[Segment]:
    rows = zip(
        events.column("behaviour").to_pylist(),
        events.column("start").to_pylist(),
        events.column("end").to_pylist(),
        strict=True,
    )
    return sorted((Segment(b, s, e) for b, s, e in rows if e > s), key=lambda s: s.start)


def perplexity_by_hour(codes: pa.Table, lo: float) -> list[tuple[float, float]]:
    """exp(entropy) of the codes used in each hour: how many codes the hour spread over."""
    if codes.num_rows == 0:
        return []
    t = codes.column("t_end").to_numpy(zero_copy_only=False)
    c = codes.column("code").to_numpy(zero_copy_only=False)
    hour = np.floor((t - lo) / BIN_S).astype(int)
    out = []
    for h in np.unique(hour).tolist():
        counts = np.array(list(Counter(c[hour == h].tolist()).values()), dtype=float)
        p = counts / counts.sum()
        out.append((lo + h * BIN_S, float(math.exp(-(p * np.log(p)).sum()))))
    return out


def completeness(codes: pa.Table, lo: float) -> Completeness:
    """Windows present against the windows each run's seq numbers say it coded that day."""
    if codes.num_rows == 0:
        return Completeness(0, 0, [], [])
    runs = codes.column("run").to_pylist()
    seq = codes.column("seq").to_numpy(zero_copy_only=False)
    t_end = codes.column("t_end").to_numpy(zero_copy_only=False).astype(float)
    step = _step(t_end)
    expected = present = 0
    hours_expected: Counter[int] = Counter()
    hours_present: Counter[int] = Counter()
    spans: list[tuple[float, float]] = []
    by_run: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(runs):
        by_run[r].append(i)
    for _run, idx in by_run.items():
        ii = np.array(idx)
        s, te = seq[ii], t_end[ii]
        order = np.argsort(s)
        s, te = s[order], te[order]
        expected += int(s[-1] - s[0] + 1)
        present += len(s)
        for k, n in Counter(np.floor((te - lo) / BIN_S).astype(int).tolist()).items():
            hours_present[k] += n
        # Missing windows: placed in time between their stored neighbours.
        jumps = np.flatnonzero(np.diff(s) > 1)
        for j in jumps.tolist():
            missing = int(s[j + 1] - s[j] - 1)
            a, b = float(te[j]), float(te[j + 1]) - step
            spans.append((a, b))
            for m in range(missing):
                hours_expected[int((a + (m + 1) * step - lo) // BIN_S)] += 1
    for k, n in hours_present.items():
        hours_expected[k] += n
    hours = [(lo + k * BIN_S, hours_expected[k], hours_present[k]) for k in sorted(hours_expected)]
    return Completeness(expected, present, hours, sorted(spans))


def analyse_day(node: str, date: str, codes: pa.Table, events: pa.Table) -> DayReport:
    lo, hi = day_bounds(date)
    if events.num_rows:
        source, segments = "events", event_segments(events)
    else:
        source, segments = "codes", code_segments(codes)
    segments = _clip(segments, lo, hi)
    budget: dict[str, float] = defaultdict(float)
    for s in segments:
        budget[s.behaviour] += s.duration_s
    return DayReport(
        node=node,
        date=date,
        source=source,
        segments=segments,
        budget_s=dict(sorted(budget.items())),
        perplexity=perplexity_by_hour(codes, lo),
        completeness=completeness(codes, lo),
    )


def merged_latency(blobs: list[str]) -> HdrHistogram | None:
    """Every stats period's end-to-end histogram merged: the fleet's true percentiles."""
    merged: HdrHistogram | None = None
    for blob in blobs:
        h = HdrHistogram.decode(blob)
        if merged is None:
            merged = h
        else:
            merged.add(h)
    return merged

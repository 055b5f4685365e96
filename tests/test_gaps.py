"""GapSplitter: cuts where time jumps, across chunk boundaries too; refuses time going back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError, DataError
from fsqd.stream.gaps import GapSplitter


def chunked(t: np.ndarray, x: np.ndarray, cuts: list[int]) -> list[SampleChunk]:
    edges = [0, *cuts, len(t)]
    return [SampleChunk(t[a:b], x[a:b], a == 0) for a, b in itertools.pairwise(edges)]


def segments(pieces: list[SampleChunk]) -> list[list[float]]:
    """The stream regrouped by segment, whatever the chunking."""
    out: list[list[float]] = []
    for p in pieces:
        if p.new_segment or not out:
            out.append([])
        out[-1].extend(p.t.tolist())
    return out


def test_cuts_counts_and_marks_new_segments() -> None:
    t = np.concatenate([np.arange(100) / 100, 5 + np.arange(100) / 100])
    x = np.zeros((200, 2), np.float32)
    g = GapSplitter(100.0)
    pieces = [p for c in chunked(t, x, [50, 150]) for p in g.split(c)]
    assert [len(p) for p in pieces] == [50, 50, 50, 50]
    assert [p.new_segment for p in pieces] == [True, False, True, False]
    assert g.gaps == 1 and g.gap_seconds == pytest.approx(5 - 0.99 - 0.01)


def test_a_gap_between_two_chunks_is_found() -> None:
    g = GapSplitter(100.0)
    x = np.zeros((3, 1), np.float32)
    (a,) = g.split(SampleChunk(np.array([0.0, 0.01, 0.02]), x, True))
    (b,) = g.split(SampleChunk(np.array([1.0, 1.01, 1.02]), x))
    assert a.new_segment and b.new_segment and g.gaps == 1
    assert g.gap_seconds == pytest.approx(0.97)


def test_the_same_segments_however_the_input_is_chunked() -> None:
    rng = np.random.default_rng(2)
    steps = np.full(600, 0.01) + rng.normal(0, 5e-4, 600)
    steps[[100, 101, 350, 599]] = [0.5, 0.024, 3.0, 0.0249]  # gaps at 100 and 350 only
    t = np.cumsum(steps)
    x = np.arange(600, dtype=np.float32)[:, None]
    whole = GapSplitter(100.0)
    want = segments(whole.split(SampleChunk(t, x, True)))
    assert [len(s) for s in want] == [100, 250, 250]
    for cuts in [list(range(1, 600)), [100], [99, 101, 350], sorted(rng.choice(599, 30) + 1)]:
        g = GapSplitter(100.0)
        got = segments([p for c in chunked(t, x, sorted(set(cuts))) for p in g.split(c)])
        assert got == want
        assert g.gaps == whole.gaps == 2 and g.gap_seconds == pytest.approx(whole.gap_seconds)


def test_threshold_is_max_gap_periods() -> None:
    g = GapSplitter(10.0, max_gap_periods=3.0)
    t = np.array([0.0, 0.3, 0.6000001])  # 3 periods is not a gap, just over is
    x = np.zeros((3, 1), np.float32)
    assert [len(p) for p in g.split(SampleChunk(t, x, True))] == [2, 1]


def test_time_going_back_names_the_sample() -> None:
    g = GapSplitter(100.0)
    x = np.zeros((3, 1), np.float32)
    g.split(SampleChunk(np.array([0.0, 0.01, 0.02]), x, True))
    with pytest.raises(DataError, match=r"sample 4: timestamp 0.03 is not after the previous one"):
        g.split(SampleChunk(np.array([0.03, 0.03, 0.04]), x))
    with pytest.raises(DataError, match=r"sample 3: timestamp 0.02 is not after .* \(0.02\)"):
        g.split(SampleChunk(np.array([0.02, 0.03, 0.04]), x))
    with pytest.raises(DataError, match="sample 4: timestamp nan is not a finite number"):
        g.split(SampleChunk(np.array([0.03, np.nan, 0.05]), x))


def test_a_new_segment_may_restart_time_and_survives_an_empty_chunk() -> None:
    g = GapSplitter(100.0)
    x = np.zeros((2, 1), np.float32)
    g.split(SampleChunk(np.array([10.0, 10.01]), x, True))
    assert g.split(SampleChunk(np.zeros(0), np.zeros((0, 1), np.float32), True)) == []
    (p,) = g.split(SampleChunk(np.array([0.0, 0.01]), x))  # a second file, say
    assert p.new_segment and g.gaps == 0


def test_rejects_bad_settings_and_mismatched_chunks() -> None:
    with pytest.raises(ConfigError, match="positive sample rate"):
        GapSplitter(0.0)
    with pytest.raises(ConfigError, match="longer than 1 sample period"):
        GapSplitter(100.0, max_gap_periods=1.0)
    with pytest.raises(DataError, match="2 timestamps but 3 samples"):
        GapSplitter(100.0).split(SampleChunk(np.zeros(2), np.zeros((3, 1), np.float32)))


def test_time_going_back_is_a_counted_new_segment_under_the_segment_policy() -> None:
    """An NTP step or a logger restart: the live daemon's policy never stops the stream."""
    t = np.concatenate([np.arange(100) / 100, 0.5 + np.arange(100) / 100])  # back by 0.49 s
    t[150] = t[149]  # and a repeated timestamp
    x = np.arange(200, dtype=np.float32)[:, None]
    want = None
    for cuts in ([], [100], [50, 150], list(range(1, 200, 3))):
        g = GapSplitter(100.0, on_backwards="segment")
        got = segments([p for c in chunked(t, x, cuts) for p in g.split(c)])
        assert g.backwards == 2 and g.gaps == 0
        want = want or got
        assert got == want
    assert want is not None and [len(s) for s in want] == [100, 50, 50]
    with pytest.raises(DataError, match=r"sample 100: timestamp 0.5 is not after"):
        GapSplitter(100.0).split(SampleChunk(t, x, True))
    with pytest.raises(ConfigError, match="on_backwards must be 'error' or 'segment'"):
        GapSplitter(100.0, on_backwards="drop")  # type: ignore[arg-type]

"""Stream stages: every one must give the same output however its input is chunked."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fsqd.errors import ConfigError, DataError
from fsqd.stream.chunk import SampleChunk
from fsqd.stream.gaps import GapSplitter
from fsqd.stream.normalize import Normalizer
from fsqd.stream.resample import LinearResampler, estimate_rate
from fsqd.stream.windows import Windower

RNG = np.random.default_rng(0)


def chunked(t: np.ndarray, x: np.ndarray, cuts: list[int]) -> list[SampleChunk]:
    edges = [0, *cuts, len(t)]
    return [SampleChunk(t[a:b], x[a:b], a == 0) for a, b in itertools.pairwise(edges)]


def splits(n: int) -> list[list[int]]:
    return [[], list(range(1, n)), sorted(RNG.choice(np.arange(1, n), 40, replace=False).tolist())]


def test_windower_is_chunk_invariant() -> None:
    t = np.arange(700) / 100.0
    x = RNG.normal(size=(700, 4)).astype(np.float32)
    results = []
    for cuts in splits(700):
        w = Windower(100, 7, 4)
        batches = [w.push(c) for c in chunked(t, x, cuts)]
        results.append(np.concatenate([b.x for b in batches]))
        assert w.windows_emitted == (700 - 100) // 7 + 1
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    np.testing.assert_array_equal(results[0][3], x[21:121])


def test_windows_carry_times_and_never_span_a_new_segment() -> None:
    t = np.arange(300) / 10.0
    x = np.arange(300, dtype=np.float32)[:, None]
    w = Windower(10, 5, 1)
    a = w.push(SampleChunk(t[:150], x[:150], True))
    b = w.push(SampleChunk(t[150:], x[150:], True))  # a gap between the two
    assert a.t_start[0] == 0.0 and a.t_end[0] == 0.9
    assert b.x[0, 0, 0] == 150.0  # restarts at the new segment
    assert len(a) == len(b) == (150 - 10) // 5 + 1


def test_hop_longer_than_window_skips_samples_across_chunks() -> None:
    t = np.arange(100, dtype=np.float64)
    x = t.astype(np.float32)[:, None]
    w = Windower(3, 10, 1)
    got = np.concatenate([w.push(c).x[:, 0, 0] for c in chunked(t, x, [5, 12, 13, 50])])
    assert got.tolist() == list(range(0, 98, 10))


@pytest.mark.parametrize(("rin", "rout"), [(50.0, 100.0), (100.0, 30.0), (100.0, 100.0)])
def test_resampler_is_chunk_invariant(rin: float, rout: float) -> None:
    t = np.arange(500) / rin
    x = RNG.normal(size=(500, 3)).astype(np.float32)
    outs = []
    for cuts in splits(500):
        r = LinearResampler(rin, rout)
        pieces = [r.push(c) for c in chunked(t, x, cuts)]
        outs.append((np.concatenate([p.t for p in pieces]), np.concatenate([p.x for p in pieces])))
    for tt, xx in outs[1:]:
        np.testing.assert_array_equal(tt, outs[0][0])
        np.testing.assert_array_equal(xx, outs[0][1])
    grid = outs[0][0]
    np.testing.assert_allclose(np.diff(grid), 1 / rout, rtol=1e-9)
    want = np.stack([np.interp(grid, t, x[:, i]) for i in range(3)], axis=1)
    np.testing.assert_allclose(outs[0][1], want, atol=1e-5)
    if rin == rout:
        np.testing.assert_array_equal(outs[0][1], x)


def test_gap_splitter_cuts_counts_and_rejects_time_going_back() -> None:
    t = np.concatenate([np.arange(100) / 100, 5 + np.arange(100) / 100])
    x = np.zeros((200, 2), np.float32)
    g = GapSplitter(100.0)
    pieces = [p for c in chunked(t, x, [50, 150]) for p in g.split(c)]
    assert [len(p) for p in pieces] == [50, 50, 50, 50]
    assert [p.new_segment for p in pieces] == [True, False, True, False]
    assert g.gaps == 1 and g.gap_seconds == pytest.approx(5 - 0.99 - 0.01)
    with pytest.raises(DataError, match="not after the previous one"):
        g.split(SampleChunk(np.array([5.0]), np.zeros((1, 2), np.float32)))


def test_estimate_rate_ignores_gaps_and_jitter() -> None:
    t = np.cumsum(np.full(1000, 0.02) + RNG.normal(0, 1e-4, 1000))
    t[500:] += 10.0
    assert estimate_rate(t) == pytest.approx(50.0, rel=1e-2)
    with pytest.raises(DataError):
        estimate_rate(np.array([1.0]))


def test_normalizer_is_float32_true_division() -> None:
    n = Normalizer([1.0, 2.0], [3.0, 0.5])
    x = np.array([[4.0, 3.0], [1.0, 2.0]], np.float32)
    out = n(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (x - np.float32([1, 2])) / np.float32([3, 0.5]))
    with pytest.raises(ConfigError):
        Normalizer([0.0], [0.0])
    with pytest.raises(DataError, match="expected \\(n, 2\\)"):
        n(np.zeros((3, 3), np.float32))

"""Rate estimate and LinearResampler: np.interp's values, the same for every chunking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fsqd.errors import ConfigError, DataError
from fsqd.stream.chunk import SampleChunk
from fsqd.stream.resample import LinearResampler, estimate_rate

RNG = np.random.default_rng(3)


def chunked(t: np.ndarray, x: np.ndarray, cuts: list[int]) -> list[SampleChunk]:
    edges = [0, *cuts, len(t)]
    return [SampleChunk(t[a:b], x[a:b], a == 0) for a, b in itertools.pairwise(edges)]


def resample(r: LinearResampler, chunks: list[SampleChunk]) -> tuple[np.ndarray, np.ndarray]:
    out = [r.push(c) for c in chunks]
    return np.concatenate([o.t for o in out]), np.concatenate([o.x for o in out])


def interp(grid: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(grid, t, x[:, i]) for i in range(x.shape[1])], axis=1)


@pytest.mark.parametrize(("rin", "rout"), [(50.0, 100.0), (100.0, 30.0), (104.3, 100.0)])
@pytest.mark.parametrize("t0", [0.0, 1.8e9])
def test_chunked_equals_whole_and_matches_interp(rin: float, rout: float, t0: float) -> None:
    n = 400
    t = t0 + np.arange(n) / rin + RNG.normal(0, 0.02 / rin, n)  # jittered clock
    x = (RNG.normal(size=(n, 3)) * [1, 10, 100]).astype(np.float32)
    grid, whole = resample(LinearResampler(rin, rout), [SampleChunk(t, x, True)])
    assert grid[0] == t[0] and grid[-1] <= t[-1] < grid[-1] + 1 / rout
    np.testing.assert_array_equal(grid, t[0] + np.arange(len(grid)) / rout)
    want = interp(grid, t, x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_max_ulp(whole, want, maxulp=1)
    cutss = [list(range(1, n))] + [
        sorted(RNG.choice(np.arange(1, n), k, replace=False).tolist()) for k in (1, 7, 80)
    ]
    for cuts in cutss:
        tt, xx = resample(LinearResampler(rin, rout), chunked(t, x, cuts))
        np.testing.assert_array_equal(tt, grid)
        np.testing.assert_array_equal(xx, whole)


def test_a_new_segment_restarts_the_grid_at_its_first_sample() -> None:
    r = LinearResampler(50.0, 100.0)
    x = np.arange(4, dtype=np.float32)[:, None]
    a = r.push(SampleChunk(np.arange(4) / 50, x, True))
    b = r.push(SampleChunk(10.005 + np.arange(4) / 50, x, True))
    assert a.new_segment and b.new_segment
    assert a.t.tolist() == pytest.approx([0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    assert b.t[0] == 10.005 and b.x[:, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3]


def test_a_segment_flag_on_an_empty_chunk_is_not_lost() -> None:
    r = LinearResampler(50.0, 100.0)
    x = np.zeros((2, 1), np.float32)
    r.push(SampleChunk(np.array([0.0, 0.02]), x, True))
    empty = r.push(SampleChunk(np.zeros(0), np.zeros((0, 1), np.float32), True))
    assert empty.x.shape == (0, 1) and empty.x.dtype == np.float32
    out = r.push(SampleChunk(np.array([5.0, 5.02]), x))
    assert out.new_segment and out.t[0] == 5.0


def test_equal_rates_pass_samples_through() -> None:
    r = LinearResampler(100.0, 100.0)
    chunk = SampleChunk(np.array([0.0, 0.0101, 0.0199]), np.ones((3, 2), np.float32), True)
    assert r.push(chunk) is chunk
    out = r.push(SampleChunk(np.array([0.03]), np.ones((1, 2), np.float64)))
    assert out.x.dtype == np.float32 and out.t[0] == 0.03


def test_estimate_rate_ignores_gaps_jitter_and_repeats() -> None:
    t = np.cumsum(np.full(1000, 0.02) + RNG.normal(0, 1e-4, 1000))
    t[500:] += 10.0
    t[10] = t[9]
    assert estimate_rate(t) == pytest.approx(50.0, rel=1e-2)
    for bad in ([1.0], [], [2.0, 2.0]):
        with pytest.raises(DataError, match="at least two increasing timestamps"):
            estimate_rate(np.array(bad))


def test_rejects_bad_rates() -> None:
    for rates in [(0.0, 100.0), (100.0, -1.0), (float("nan"), 100.0), (100.0, float("inf"))]:
        with pytest.raises(ConfigError, match="rate must be positive"):
            LinearResampler(*rates)

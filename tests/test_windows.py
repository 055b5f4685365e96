"""Windower: windows at k * hop of each segment, the same however the input is chunked."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError, DataError
from fsqd.stream.windows import WindowBatch, Windower

RNG = np.random.default_rng(1)


def chunkings(n: int) -> list[list[int]]:
    """Cut points: none, every sample, and a few random splits."""
    cuts: list[list[int]] = [[], list(range(1, n))]
    for k in (1, 5, 40):
        cuts.append(sorted(RNG.choice(np.arange(1, n), min(k, n - 1), replace=False).tolist()))
    return cuts


def pieces(t: np.ndarray, x: np.ndarray, cuts: list[int], segments: set[int]) -> list[SampleChunk]:
    """Chunks cut at ``cuts``; a segment starts at 0 and at each index in ``segments``."""
    edges = sorted({0, len(t), *cuts, *segments})
    return [
        SampleChunk(t[a:b], x[a:b], a == 0 or a in segments) for a, b in itertools.pairwise(edges)
    ]


def reference(x: np.ndarray, window: int, hop: int, bounds: list[int]) -> np.ndarray:
    """Windows computed the obvious way, segment by segment."""
    out = [
        x[s + k : s + k + window]
        for s, e in itertools.pairwise(bounds)
        for k in range(0, e - s - window + 1, hop)
    ]
    return np.stack(out) if out else np.zeros((0, window, x.shape[1]), np.float32)


def run(w: Windower, chunks: list[SampleChunk]) -> WindowBatch:
    batches = [w.push(c) for c in chunks]
    return WindowBatch(
        np.concatenate([b.x for b in batches]),
        np.concatenate([b.t_start for b in batches]),
        np.concatenate([b.t_end for b in batches]),
    )


@pytest.mark.parametrize(("window", "hop"), [(100, 50), (100, 7), (10, 10), (3, 10), (1, 1)])
def test_same_windows_however_the_input_is_chunked(window: int, hop: int) -> None:
    n = 437
    t = np.arange(n) / 100.0
    x = RNG.normal(size=(n, 4)).astype(np.float32)
    segments = {150, 300}
    want = reference(x, window, hop, [0, 150, 300, n])
    for cuts in chunkings(n):
        w = Windower(window, hop, 4)
        got = run(w, pieces(t, x, cuts, segments))
        np.testing.assert_array_equal(got.x, want)
        assert w.windows_emitted == len(want)
        starts = np.array([s + k for s, e in [(0, 150), (150, 300), (300, n)]
                           for k in range(0, e - s - window + 1, hop)], dtype=int)  # fmt: skip
        np.testing.assert_array_equal(got.t_start, t[starts])
        np.testing.assert_array_equal(got.t_end, t[starts + window - 1])


def test_no_window_spans_a_new_segment() -> None:
    t = np.arange(300) / 10.0
    x = np.arange(300, dtype=np.float32)[:, None]
    w = Windower(10, 5, 1)
    a = w.push(SampleChunk(t[:148], x[:148], True))
    b = w.push(SampleChunk(t[148:], x[148:], True))
    assert a.t_start[0] == 0.0 and a.t_end[0] == pytest.approx(0.9)
    assert a.x[-1, -1, 0] == 144.0  # the 3 samples after it are dropped, not carried
    assert b.x[0, 0, 0] == 148.0  # window 0 of the new segment starts at its first sample
    assert len(a) == (148 - 10) // 5 + 1 and len(b) == (152 - 10) // 5 + 1


def test_batches_are_contiguous_float32_and_empty_ones_keep_their_shape() -> None:
    w = Windower(100, 50, 18)
    empty = w.push(SampleChunk(np.arange(99.0), np.zeros((99, 18), np.float32), True))
    assert empty.x.shape == (0, 100, 18) and empty.x.dtype == np.float32
    assert empty.t_start.shape == empty.t_end.shape == (0,) and len(empty) == 0
    full = w.push(SampleChunk(np.arange(99.0, 250.0), np.ones((151, 18), np.float64)))
    assert full.x.shape == (4, 100, 18) and full.x.dtype == np.float32
    assert full.x.flags.c_contiguous


def test_the_kept_tail_does_not_alias_the_callers_buffer() -> None:
    x = np.arange(30, dtype=np.float32)[:, None]
    t = np.arange(30.0)
    w = Windower(10, 10, 1)
    head = x[:15].copy()
    w.push(SampleChunk(t[:15], head, True))
    head[:] = -1  # a reader reusing its buffer must not change what comes next
    got = w.push(SampleChunk(t[15:], x[15:]))
    assert got.x[0, :, 0].tolist() == list(range(10, 20))


def test_rejects_bad_shapes_and_settings() -> None:
    w = Windower(10, 5, 3)
    with pytest.raises(DataError, match=r"shape \(4, 2\), expected \(n, 3\)"):
        w.push(SampleChunk(np.arange(4.0), np.zeros((4, 2), np.float32)))
    with pytest.raises(DataError, match="4 timestamps but 5 samples"):
        w.push(SampleChunk(np.arange(4.0), np.zeros((5, 3), np.float32)))
    for args in [(0, 5, 3), (10, 0, 3), (10, 5, 0)]:
        with pytest.raises(ConfigError, match="must be >= 1"):
            Windower(*args)

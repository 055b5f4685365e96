"""Respacer: a burst logger's timestamps become even, gaps and time going back survive."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fsqd.chunk import SampleChunk
from fsqd.errors import ConfigError
from fsqd.stream.respace import Respacer


def bursts(n: int, start: float = 0.0) -> np.ndarray:
    """5 samples stamped 0.1 ms apart every 50 ms: 100 Hz on average."""
    i = np.arange(n)
    return start + (i // 5) * 0.05 + (i % 5) * 1e-4


def test_bursts_become_an_even_grid_for_any_chunking() -> None:
    t = np.concatenate([bursts(500), bursts(500, start=30.0), bursts(100, start=10.0)])
    x = np.arange(len(t), dtype=np.float32)[:, None]
    want = None
    for cuts in ([], [3, 500, 777], list(range(1, len(t), 7))):
        r = Respacer(100.0, gap_s=0.075)
        edges = [0, *cuts, len(t)]
        out = np.concatenate(
            [r.push(SampleChunk(t[a:b], x[a:b], a == 0)).t for a, b in itertools.pairwise(edges)]
        )
        assert r.anchors == 3  # the start, the gap to 30 s, time going back to 10 s
        want = out if want is None else want
        np.testing.assert_array_equal(out, want)
    assert want is not None
    np.testing.assert_allclose(np.diff(want[:500]), 0.01, atol=1e-12)
    assert want[500] == 30.0 and want[1000] == 10.0
    assert want[999] == pytest.approx(30.0 + 499 * 0.01)


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="positive rate and gap"):
        Respacer(0.0, 0.1)

"""WindowStream: the stages wired together, chunk-invariant, with the caller's policies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fsqd.chunk import SampleChunk
from fsqd.errors import DataError
from fsqd.model.package import load_package
from fsqd.pipeline import WindowStream
from fsqd.sim import SimConfig, simulate

PKG = load_package(None)


def feed(stream: WindowStream, t: np.ndarray, x: np.ndarray, cuts: list[int]) -> np.ndarray:
    edges = [0, *cuts, len(t)]
    batches = [
        b
        for a, z in itertools.pairwise(edges)
        for b in stream.push(SampleChunk(t[a:z], x[a:z], a == 0))
    ] + stream.flush()
    if not batches:
        return np.zeros(0)
    return np.concatenate([b.t_start for b in batches])


def test_a_live_sensor_off_its_nominal_rate_lands_on_the_models_grid() -> None:
    """An I2C chip nominally at 100 Hz whose oscillator runs 3 % fast, fed in small reads."""
    rec = simulate(30, SimConfig(seed=1))
    t = 1_800_000_000.0 + np.arange(len(rec.t)) / 103.0
    stream = WindowStream(PKG, 100.0, hop=10, track_clock=True, on_backwards="segment")
    starts = feed(stream, t, rec.x, list(range(7, len(t), 13)))
    # Window starts every 10 samples of the model's 100 Hz grid, in real time.
    np.testing.assert_allclose(np.diff(starts), 0.1, atol=1e-6)
    assert len(starts) == pytest.approx((t[-1] - t[0]) * 10 - 9, abs=1)
    plain = WindowStream(PKG, 100.0, hop=10)  # without tracking: samples taken as 100 Hz
    assert np.diff(feed(plain, t, rec.x, []))[0] == pytest.approx(10 / 103)


def test_an_ntp_step_back_is_a_new_segment_for_the_live_policy() -> None:
    rec = simulate(20, SimConfig(seed=2))
    t = rec.t.copy()
    t[1000:] -= 5.0  # the clock steps back 5 s after 10 s
    live = WindowStream(PKG, 100.0, hop=50, on_backwards="segment")
    starts = feed(live, t, rec.x, [500, 1000, 1500])
    assert live.gaps.backwards == 1 and len(starts) == 2 * ((1000 - 100) // 50 + 1)
    with pytest.raises(DataError, match=r"sample 1000: timestamp 5\.0 is not after"):
        feed(WindowStream(PKG, 100.0), t, rec.x, [])


def test_resampled_windows_do_not_depend_on_chunking() -> None:
    rec = simulate(15, SimConfig(seed=3, rate_hz=208.0))
    t = np.floor(rec.t * 1000) / 1000
    want = None
    for cuts in ([], [1], list(range(5, len(t), 97)), list(range(1, len(t), 3))):
        s = WindowStream(PKG, 208.0, hop=25)
        edges = [0, *cuts, len(t)]
        batches = [
            b
            for a, z in itertools.pairwise(edges)
            for b in s.push(SampleChunk(t[a:z], rec.x[a:z], a == 0))
        ] + s.flush()
        got = np.concatenate([b.x for b in batches])
        want = got if want is None else want
        np.testing.assert_array_equal(got, want)

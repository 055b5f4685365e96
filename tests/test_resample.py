"""Resampler: anti-aliasing measured on tones, chunk invariance, timestamps drive the grid."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from invensensekit import acquisition
from scipy import signal

from fsqd.chunk import SampleChunk
from fsqd.daemon.clock import sample_time
from fsqd.errors import ConfigError, DataError
from fsqd.model.package import ModelPackage
from fsqd.pipeline import LOW_LATENCY_HALF_TAPS, LOW_LATENCY_STOP_DB, WindowStream
from fsqd.stream.resample import PHASES, Resampler, design, kernel_table


def chunked(t: np.ndarray, x: np.ndarray, cuts: list[int]) -> list[SampleChunk]:
    edges = [0, *cuts, len(t)]
    return [SampleChunk(t[a:b], x[a:b], a == 0) for a, b in itertools.pairwise(edges)]


def run(r: Resampler, chunks: list[SampleChunk]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    out = [p for c in chunks for p in r.push(c)] + r.flush()
    return (
        np.concatenate([o.t for o in out]),
        np.concatenate([o.x for o in out]),
        [o.new_segment for o in out],
    )


def tone_gain_db(
    rin: float, rout: float, f: float, seconds: float = 20.0, r: Resampler | None = None
) -> float:
    """Amplitude of what a unit tone at ``f`` becomes at its (aliased) output frequency."""
    t = np.arange(int(seconds * rin)) / rin
    x = np.sin(2 * np.pi * f * t)[:, None].astype(np.float32)
    tt, y, _ = run(r or Resampler(rin, rout), [SampleChunk(t, x, True)])
    alias = abs((f + rout / 2) % rout - rout / 2)
    m = slice(int(rout), len(y) - int(rout))  # away from the held ends
    amp = 2 * abs(np.mean(y[m, 0] * np.exp(-2j * np.pi * alias * tt[m])))
    return float(20 * np.log10(max(amp, 1e-12)))


@pytest.mark.parametrize(
    ("rin", "rout", "f"),
    [
        (1000.0, 100.0, 95.0),
        (1000.0, 100.0, 55.0),
        (833.0, 100.0, 60.0),
        (208.0, 100.0, 50.5),
        (104.0, 100.0, 50.5),
        (104.0, 100.0, 51.5),
    ],
)
def test_a_tone_above_the_new_nyquist_is_more_than_60_db_down(
    rin: float, rout: float, f: float
) -> None:
    """README: "a tone above the new Nyquist comes out more than 60 dB down"."""
    assert tone_gain_db(rin, rout, f) < -60


def test_the_documented_95_hz_alias_from_1_khz_is_100_db_down() -> None:
    """docs/ingest.md's table: 95 Hz at 1000 Hz in lands on 5 Hz at -101 dB."""
    assert tone_gain_db(1000.0, 100.0, 95.0) < -100


@pytest.mark.parametrize(("rin", "rout"), [(1000.0, 100.0), (208.0, 100.0), (104.0, 100.0)])
@pytest.mark.parametrize("f", [1.0, 5.0, 12.0, 25.0, 40.0])
def test_in_band_tones_pass_within_a_hundredth_of_a_db(rin: float, rout: float, f: float) -> None:
    """docs/ingest.md's table: 1-40 Hz within 0.01 dB (the pass band ends at 40 Hz)."""
    assert abs(tone_gain_db(rin, rout, f)) < 0.01


@pytest.mark.parametrize("f", [1.0, 5.0, 12.0, 20.0])
def test_upsampled_in_band_tones_pass_within_a_hundredth_of_a_db(f: float) -> None:
    """50 -> 100 Hz: the pass band ends at 0.8 x 25 Hz."""
    assert abs(tone_gain_db(50.0, 100.0, f)) < 0.01


@pytest.mark.parametrize("rin", [1000.0, 833.0, 208.0, 104.3, 104.0])
def test_the_kernel_matches_its_design_in_scipys_frequency_response(rin: float) -> None:
    """Every tabulated phase is an ordinary FIR at the input rate: flat in the pass band,
    near the 60 dB design from the stop edge (Kaiser's formula is approximate: 57.9 dB at
    worst, for 104 Hz in) and more than 60 dB down above the new Nyquist (the README)."""
    d = design(rin, 100.0)
    table = kernel_table(d)
    assert d.stop_hz < 50 and table.shape == (PHASES + 1, 2 * d.half_taps)
    for h in table[::32]:
        freqs, resp = signal.freqz(h, worN=16384, fs=rin)
        db = 20 * np.log10(np.abs(resp) + 1e-15)
        assert np.abs(db[freqs <= d.pass_hz]).max() < 0.05
        assert db[freqs >= d.stop_hz].max() < -d.stop_db + 2.5
        assert db[freqs >= 50.0].max() < -60


@pytest.mark.parametrize(("rin", "rout"), [(50.0, 100.0), (1000.0, 100.0), (104.3, 100.0)])
@pytest.mark.parametrize("t0", [0.0, 1.8e9])
def test_chunked_equals_whole_bit_for_bit(rin: float, rout: float, t0: float) -> None:
    rng = np.random.default_rng(3)
    n = 1500
    t = t0 + np.arange(n) / rin + rng.normal(0, 0.02 / rin, n)  # jittered clock
    x = (rng.normal(size=(n, 3)) * [1, 10, 100]).astype(np.float32)
    grid, whole, flags = run(Resampler(rin, rout), [SampleChunk(t, x, True)])
    assert flags[0] and not any(flags[1:])
    np.testing.assert_array_equal(grid, t[0] + np.arange(len(grid)) / rout)
    assert grid[-1] <= t[-1] < grid[-1] + 1 / rout  # the grid covers the segment
    cutss = [list(range(1, n, 7))] + [
        sorted(rng.choice(np.arange(1, n), k, replace=False).tolist()) for k in (1, 13, 200)
    ]
    for cuts in cutss:
        tt, xx, _ = run(Resampler(rin, rout), chunked(t, x, cuts))
        np.testing.assert_array_equal(tt, grid)
        np.testing.assert_array_equal(xx, whole)


def test_a_segment_on_the_output_grid_keeps_its_last_sample_whatever_the_rounding() -> None:
    """Stamps as the acquisition makes them (monotonic + a UNIX-sized offset): the grid
    time of the last sample can come out an ulp after it; it is still emitted at flush,
    so a segment of N samples at the output rate gives N outputs (and the daemon codes
    its last window at stop)."""
    rng = np.random.default_rng(9)
    for t0 in rng.uniform(1e3, 1e5, 200):
        t = np.array([sample_time(t0 + k * 0.01) for k in range(300)])
        r = Resampler(100.0, 100.0)
        out = r.push(SampleChunk(t, np.zeros((300, 1), np.float32), True)) + r.flush()
        assert sum(len(o) for o in out) == 300, t0


def test_a_sensor_clock_off_nominal_still_lands_on_the_grid() -> None:
    """A chip nominally at 104 Hz really running 3 % fast: the timestamps place the output."""
    true_rate = 104.0 * 1.03
    t = 5.0 + np.arange(3000) / true_rate
    x = np.sin(2 * np.pi * 2.0 * t)[:, None].astype(np.float32)
    r = Resampler(104.0, 100.0)
    pieces = [p for c in chunked(t, x, list(range(100, 3000, 100))) for p in r.push(c)]
    tt = np.concatenate([p.t for p in pieces])
    y = np.concatenate([p.x for p in pieces])[:, 0]
    np.testing.assert_array_equal(tt, 5.0 + np.arange(len(tt)) / 100.0)
    inner = slice(50, len(y) - 50)
    np.testing.assert_allclose(y[inner], np.sin(2 * np.pi * 2.0 * tt[inner]), atol=2e-3)


def test_segments_restart_the_grid_and_finish_the_previous_one() -> None:
    r = Resampler(50.0, 100.0)
    x = np.arange(40, dtype=np.float32)[:, None]
    a = r.push(SampleChunk(np.arange(40) / 50, x, True))
    b = r.push(SampleChunk(10.005 + np.arange(40) / 50, x, True))
    c = r.flush()
    assert [p.new_segment for p in a + b + c] == [True, False, True, False]
    first = np.concatenate([p.t for p in a + b[:1]])
    assert len(first) == 79 and first[-1] == pytest.approx(0.78)  # up to the last input
    assert b[1].t[0] == 10.005 and c[-1].t[-1] == pytest.approx(10.785)
    assert r.flush() == []


def test_an_empty_chunk_keeps_its_segment_flag() -> None:
    r = Resampler(50.0, 100.0)
    x = np.zeros((40, 1), np.float32)
    r.push(SampleChunk(np.arange(40) / 50, x, True))
    tail = r.push(SampleChunk(np.zeros(0), np.zeros((0, 1), np.float32), True))
    assert tail and tail[-1].t[-1] == pytest.approx(0.78)  # the first segment finished
    out = r.push(SampleChunk(5.0 + np.arange(40) / 50, x)) + r.flush()
    assert out[0].new_segment and out[0].t[0] == 5.0


def test_output_is_bounded_by_the_input() -> None:
    """A step far longer than the gap threshold is refused, not turned into a huge grid."""
    r = Resampler(100.0, 100.0 * 0.99)
    x = np.zeros((200, 1), np.float32)
    t = np.arange(200) / 100.0
    t[100:] += 1e6  # a unit error (us read as s) that was not split off as a gap
    with pytest.raises(DataError, match="outputs due for 200 input samples"):
        r.push(SampleChunk(t, x, True))


def test_absurd_ratios_are_refused_before_any_allocation() -> None:
    """Epoch microseconds read as seconds (1e-4 Hz) would ask for 1e6 outputs per input."""
    with pytest.raises(
        DataError, match=r"0\.0001 Hz -> 100 Hz changes the rate by more than 1000x"
    ):
        Resampler(1e-4, 100.0)
    with pytest.raises(DataError, match="more than 1000x"):
        Resampler(1e6, 100.0)
    Resampler(1.0, 1000.0)


def test_rejects_bad_rates() -> None:
    for rates in [(0.0, 100.0), (100.0, -1.0), (float("nan"), 100.0), (100.0, float("inf"))]:
        with pytest.raises(ConfigError, match="rate must be positive"):
            Resampler(*rates)


def low_latency(rin: float, rout: float = 100.0) -> Resampler:
    return Resampler(rin, rout, half_taps=LOW_LATENCY_HALF_TAPS, stop_db=LOW_LATENCY_STOP_DB)


def emission_delay_s(r: Resampler, rin: float) -> float:
    """Worst time from an output's grid time to the input that lets it out (live feeding)."""
    t = 1000.0 + np.arange(int(5 * rin)) / rin
    x = np.zeros((len(t), 1), np.float32)
    worst = 0.0
    for i in range(len(t)):
        for piece in r.push(SampleChunk(t[i : i + 1], x[i : i + 1], i == 0)):
            worst = max(worst, float(t[i] - piece.t[0]))
    return worst


def test_the_live_kernel_is_short_flat_in_the_behaviour_band_and_still_attenuates() -> None:
    # 104 -> 100 Hz: only 50..52 Hz folds (onto 48..50 Hz); the short kernel trades
    # stop-band depth for latency, and both are pinned here.
    for f in (1.0, 5.0, 12.0, 20.0):
        assert abs(tone_gain_db(104.0, 100.0, f, r=low_latency(104.0))) < 0.1, f
    assert tone_gain_db(104.0, 100.0, 51.5, r=low_latency(104.0)) < -10
    # The design's own kernel: 27 inputs of look-ahead, the short one 2.
    long_delay = emission_delay_s(Resampler(104.0, 100.0), 104.0)
    short_delay = emission_delay_s(low_latency(104.0), 104.0)
    assert long_delay > 0.24
    assert short_delay <= LOW_LATENCY_HALF_TAPS / 104.0 + 1e-9


def test_window_stream_takes_the_short_kernel_only_for_live_data_at_close_rates(
    pkg_d2: ModelPackage,
) -> None:
    def k(rate: float, **kw: bool) -> int | None:
        r = WindowStream(pkg_d2, rate, track_clock=True, **kw).resampler
        return None if r is None else r.design.half_taps

    assert k(104.0, low_latency=True) == LOW_LATENCY_HALF_TAPS
    assert k(100.0, low_latency=True) == LOW_LATENCY_HALF_TAPS
    assert k(104.0) == design(104.0, 100.0).half_taps  # replay: the full anti-alias filter
    assert k(208.0, low_latency=True) == design(208.0, 100.0).half_taps  # real decimation


def test_the_linear_kernel_is_linear_interpolation_whatever_the_chunks() -> None:
    """Against numpy's own interpolation, on jittered stamps of a clock 3.7 % fast."""
    rng = np.random.default_rng(7)
    n = 2000
    t = 1000.0 + np.cumsum(np.full(n, 1 / 103.7) + rng.normal(0, 2e-5, n))
    x = rng.normal(size=(n, 3)).astype(np.float32)
    r = Resampler(104.0, 100.0, kernel="linear")
    assert r.design.half_taps == 1
    cuts = np.sort(rng.choice(np.arange(1, n), 150, replace=False))
    pieces = [
        SampleChunk(a, b, i == 0)
        for i, (a, b) in enumerate(zip(np.split(t, cuts), np.split(x, cuts), strict=True))
    ]
    tt, y, _ = run(r, pieces)
    tt1, y1, _ = run(Resampler(104.0, 100.0, kernel="linear"), [SampleChunk(t, x, True)])
    assert tt.tobytes() == tt1.tobytes() and y.tobytes() == y1.tobytes()
    assert np.allclose(np.diff(tt), 0.01) and tt[0] == t[0]
    want = np.stack([np.interp(tt, t, x[:, c].astype(np.float64)) for c in range(3)], axis=1)
    np.testing.assert_allclose(y, want, atol=2e-6)


def test_the_linear_kernel_waits_for_one_sample_past_an_output() -> None:
    linear = emission_delay_s(Resampler(104.0, 100.0, kernel="linear"), 104.0)
    assert linear <= 1 / 104.0 + 1e-9
    assert emission_delay_s(low_latency(104.0), 104.0) > 1 / 104.0 + 1e-3


def test_rejects_an_unknown_kernel() -> None:
    with pytest.raises(ConfigError, match="kernel must be 'sinc' or 'linear'"):
        Resampler(104.0, 100.0, kernel="cubic")  # type: ignore[arg-type]


def test_live_data_is_interpolated_linearly_only_when_the_chip_filtered_it(
    pkg_d2: ModelPackage,
) -> None:
    """Linear needs a rate within 5 % of the model's and the chip's own low-pass below the
    model's Nyquist frequency (nothing left to fold); else the 4-tap or the full kernel."""

    def kernel(rate: float, band: float | None, **kw: bool) -> tuple[str, int] | None:
        r = WindowStream(pkg_d2, rate, track_clock=True, band_limit_hz=band, **kw).resampler
        return None if r is None else (r.kernel, r.design.half_taps)

    short = ("sinc", LOW_LATENCY_HALF_TAPS)
    assert kernel(104.0, 33.0, low_latency=True) == ("linear", 1)
    assert kernel(102.27, 44.8, low_latency=True) == ("linear", 1)
    assert kernel(104.0, 51.2, low_latency=True) == short  # the chip lets 50-52 Hz through
    assert kernel(104.0, None, low_latency=True) == short  # not known
    assert kernel(108.0, 33.0, low_latency=True) == short  # 8 % off: the 4-tap kernel
    assert kernel(104.0, 33.0) == ("sinc", design(104.0, 100.0).half_taps)  # replay
    assert kernel(208.0, 33.0, low_latency=True) == ("sinc", design(208.0, 100.0).half_taps)
    stream = WindowStream(pkg_d2, 104.0, track_clock=True, low_latency=True, band_limit_hz=33.0)
    assert stream.look_ahead == 1
    assert WindowStream(pkg_d2, 100.0).look_ahead == 0  # no resampling


@pytest.mark.parametrize(
    ("driver", "address", "rate", "band"),
    [
        ("lsm6dsox", 0x6A, 104, 0.317 * 6667 / 64),  # accel LPF2 26 Hz, gyro 33 Hz
        ("mpu6500", 0x68, 100, 44.8),  # DLPF: gyro 41 Hz, accel 44.8 Hz
        ("icm20948", 0x69, 100, 51.2),  # DLPF at 102.27 Hz: gyro 51.2 Hz, accel 50.4 Hz
    ],
)
def test_an_acquisition_reports_its_chips_own_low_pass(
    driver: str, address: int, rate: float, band: float
) -> None:
    run = acquisition(driver, address, rate)
    assert run.acq.bandwidth_hz == pytest.approx(band, rel=1e-3)

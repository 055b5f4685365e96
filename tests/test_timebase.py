"""Timestamp units and the rate fit, on timestamps shaped like real loggers write them."""

from __future__ import annotations

import numpy as np
import pytest

from fsqd.errors import DataError
from fsqd.stream.timebase import check_rate, detect_time_unit, estimate_rate

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("rate", [104.0, 208.0, 416.0, 833.0, 64.0, 12.5, 26.0, 52.0])
def test_millisecond_quantised_rates_are_fitted_within_half_a_percent(rate: float) -> None:
    t_ms = np.floor(np.arange(3000) * 1000 / rate)  # what a logger with a ms clock writes
    unit = detect_time_unit(t_ms)
    assert unit.unit == "ms"
    est = estimate_rate(t_ms * unit.factor)
    assert est.rate_hz == pytest.approx(rate, rel=0.005) and not est.bursty


def test_a_jittery_phone_logger_averages_out() -> None:
    steps = RNG.gamma(8.0, 1 / (95.6 * 8), 20000)  # independent steps, mean 1 / 95.6 s
    t = np.round(np.cumsum(steps) * 1000) / 1000
    est = estimate_rate(t)
    assert est.rate_hz == pytest.approx(95.6, rel=0.005) and est.step_jitter > 0.3


def test_bursts_give_the_long_run_rate() -> None:
    i = np.arange(3000)
    t = (i // 5) * 0.05 + (i % 5) * 1e-4
    est = estimate_rate(t)
    assert est.bursty and est.rate_hz == pytest.approx(100.0, rel=1e-3)
    assert 0.05 < est.gap_s < 0.1  # the 50 ms step between bursts is not a gap


def test_gaps_and_restarts_do_not_bend_the_fit() -> None:
    t = np.concatenate([np.arange(1000) / 104, 60 + np.arange(1000) / 104, np.arange(500) / 104])
    est = estimate_rate(np.round(t, 3))
    assert est.rate_hz == pytest.approx(104.0, rel=1e-3) and est.stretches == 3


@pytest.mark.parametrize(
    ("t", "message"),
    [
        ([1.0], "at least two timestamps"),
        ([2.0, 2.0, 2.0], "at least two increasing timestamps"),
    ],
)
def test_too_little_to_fit(t: list[float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        estimate_rate(np.array(t))


def test_unit_candidates_and_refusal() -> None:
    assert detect_time_unit(np.arange(100) * 0.001).unit == "s"  # 1 kHz in fractional seconds
    assert detect_time_unit(np.arange(100) * 1.0).unit == "ms"  # integers: 1 kHz, not 1 Hz
    assert detect_time_unit(1.7e9 + np.arange(100) * 1.0).unit == "s"  # 1 Hz epoch seconds
    with pytest.raises(DataError, match=r"no unit gives a rate within 1 Hz\.\.10 kHz"):
        detect_time_unit(np.arange(100) * 2e9)


@pytest.mark.parametrize("rate", [0.5, 20_000.0])
def test_implausible_rates_are_refused_with_the_number(rate: float) -> None:
    with pytest.raises(DataError, match=f"sample rate {rate:g} Hz is implausible .*1 Hz..10 kHz"):
        check_rate(rate, "f.csv")
    check_rate(1.0)
    check_rate(10_000.0)


def test_the_rate_alone_for_callers_that_need_only_it() -> None:
    from fsqd.stream.resample import estimate_rate as rate_only

    t = np.floor(np.arange(3000) * 1000 / 104) / 1000
    assert rate_only(t) == estimate_rate(t).rate_hz == pytest.approx(104.0, rel=1e-3)

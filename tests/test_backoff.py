"""Capped, jittered exponential back-off (fsqd.backoff)."""

from __future__ import annotations

import random

import pytest

from fsqd.backoff import Backoff


def test_delays_double_from_first_up_to_the_cap() -> None:
    b = Backoff(0.5, 8.0)
    assert [b.delay(n) for n in range(0, 8)] == [0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_day_of_failures_stays_at_the_cap() -> None:
    """2.0 ** 1024 overflows a float: the exponent stops growing at the cap."""
    b = Backoff(1.0, 60.0, jitter=0.5, rng=random.Random(1))
    for n in (1025, 10**6):
        assert 30.0 <= b.delay(n) <= 60.0


def test_jitter_spreads_each_step_within_its_share() -> None:
    b = Backoff(1.0, 60.0, jitter=0.5, rng=random.Random(7))
    delays = [b.delay(4) for _ in range(2000)]
    assert 4.0 <= min(delays) < 4.1 and 7.9 < max(delays) <= 8.0
    assert len(set(delays)) > 1900


def test_jitter_draws_the_same_as_a_seeded_uniform() -> None:
    """One ``uniform(1 - jitter, 1)`` draw per delay: seeded runs repeat exactly."""
    rng = random.Random(3)
    b = Backoff(1.0, 60.0, jitter=0.5, rng=random.Random(3))
    assert [b.delay(n) for n in (1, 2, 3)] == [
        base * rng.uniform(0.5, 1.0) for base in (1.0, 2.0, 4.0)
    ]


def test_a_first_step_above_the_cap_is_capped() -> None:
    assert Backoff(10.0, 2.0).delay(1) == 2.0


@pytest.mark.parametrize(
    "kwargs", [{"first_s": -1.0}, {"max_s": -1.0}, {"factor": 0.5}, {"jitter": 1.5}]
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    args = {"first_s": 1.0, "max_s": 2.0, **kwargs}
    with pytest.raises(ValueError, match="back-off needs"):
        Backoff(**args)  # type: ignore[arg-type]

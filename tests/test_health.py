"""Code-usage health: perplexity, unseen share and Jensen-Shannon drift, by hand and
against scipy."""

from __future__ import annotations

import math
import tomllib
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from fsqd.behaviour.health import (
    SUSTAIN_CHECKS,
    CodeHealth,
    jensen_shannon,
    perplexity,
)
from fsqd.config.health import HealthSettings, parse_health
from fsqd.errors import ConfigError
from fsqd.model.calibration import CodeReference
from fsqd.tomlcheck import Table


def reference(
    codes: tuple[int, ...], counts: tuple[int, ...], *, threshold: float = 0.5, windows: int = 4
) -> CodeReference:
    return CodeReference(
        codes=codes,
        counts=counts,
        perplexity=perplexity(counts) or 0.0,
        drift_threshold=threshold,
        drift_windows=windows,
    )


def test_perplexity_by_hand() -> None:
    assert perplexity([5, 5, 5, 5]) == pytest.approx(4.0)
    # p = (1/2, 1/4, 1/4): H = 1.5 bits, so exp(H) = 2 ** 1.5
    assert perplexity([2, 1, 1]) == pytest.approx(2**1.5)
    assert perplexity([7]) == pytest.approx(1.0)
    assert perplexity([3, 0, 0]) == pytest.approx(1.0)  # empty bins do not count
    assert perplexity([]) is None


def test_jensen_shannon_by_hand() -> None:
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([3, 1], [3, 1]) == pytest.approx(0.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
    # KL(p||m) = 1/2 log2(2/3) + 1/2 log2(2); KL(q||m) = log2(4/3)
    kl_p = 0.5 * math.log2(2 / 3) + 0.5
    kl_q = math.log2(4 / 3)
    assert jensen_shannon([1, 1], [1, 0]) == pytest.approx(0.5 * (kl_p + kl_q))
    assert jensen_shannon([1, 1], [1, 0]) == pytest.approx(0.3112781, abs=1e-7)
    # A code only one side has, with share s there, adds exactly s / 2 bits: code 0
    # agrees, codes 1 and 2 (1/2 on one side each) add 1/4 bit each.
    assert jensen_shannon([1, 1, 0], [1, 0, 1]) == pytest.approx(0.5)


def test_jensen_shannon_matches_scipy() -> None:
    rng = np.random.default_rng(16)
    for _ in range(200):
        k = int(rng.integers(2, 60))
        p = rng.integers(0, 20, k).astype(float)
        q = rng.integers(0, 20, k).astype(float)
        p[rng.random(k) < 0.3] = 0  # codes one side never used
        p[0] += 1
        q[-1] += 1
        # scipy returns the distance, the square root of the divergence.
        expected = jensenshannon(p, q, base=2) ** 2
        assert jensen_shannon(p, q) == pytest.approx(expected, abs=1e-12)


def test_drift_window_by_hand() -> None:
    """Reference uniform over codes 1-4, a 4-window drift window checked every 2."""
    h = CodeHealth(reference((1, 2, 3, 4), (1, 1, 1, 1)))
    assert h.check_every == 2
    assert h.observe([1, 2, 3]) == [] and h.jsd is None  # not full yet: no check
    h.observe([4])
    assert h.jsd == pytest.approx(0.0)
    h.observe([9, 9])
    # window 3, 4, 9, 9: codes 1 and 2 are missing (1/4 each -> 1/8 bit each), code 9 is
    # unseen (1/2 -> 1/4 bit), codes 3 and 4 agree: 1/2 bit.
    assert h.jsd == pytest.approx(0.5)
    p = h.roll()
    assert (p.windows, p.codes_used, p.checks) == (6, 5, 2)
    assert p.unseen_share == pytest.approx(2 / 6)
    # period histogram 1, 2, 3, 4, 9, 9
    assert p.perplexity == pytest.approx(
        math.exp(-(4 * (1 / 6) * math.log(1 / 6) + (2 / 6) * math.log(2 / 6)))
    )
    assert p.drift is False


def test_drift_is_sustained_after_three_checks_and_clears_after_three() -> None:
    assert SUSTAIN_CHECKS == 3
    h = CodeHealth(reference((1, 2, 3, 4), (1, 1, 1, 1), threshold=0.4))
    h.observe([1, 2, 3, 4])  # check 0: jsd 0
    assert h.observe([9, 9]) == []  # 0.5 > 0.4: first check above
    assert h.observe([9, 9]) == []  # 1.0: second
    changes = h.observe([9, 9])  # third: sustained
    assert len(changes) == 1 and changes[0].drift is True
    assert changes[0].jsd == pytest.approx(1.0) and changes[0].threshold == 0.4
    assert changes[0].windows == 4 and h.drift is True
    assert h.observe([1, 2]) == []  # window 9 9 1 2: 0.5, still above
    assert h.observe([3, 4]) == []  # 0.0: first below
    assert h.observe([1, 2]) == []  # second
    cleared = h.observe([3, 4])
    assert [c.drift for c in cleared] == [False] and h.drift is False


def test_a_burst_shorter_than_half_a_drift_window_does_not_raise_drift() -> None:
    """Half a drift window of unseen codes makes two checks above, then one below: the
    count starts again, so repeated short bursts never raise drift."""
    h = CodeHealth(reference((1, 2, 3, 4), (1, 1, 1, 1), threshold=0.4))
    h.observe([1, 2, 3, 4])
    for _ in range(5):
        assert h.observe([9, 9]) == []  # window 3 4 9 9: 0.5, above
        assert h.observe([1, 2]) == []  # window 9 9 1 2: 0.5, above
        assert h.jsd == pytest.approx(0.5)
        assert h.observe([3, 4]) == []  # window 1 2 3 4: 0, below
    assert h.drift is False
    assert h.observe([9, 9, 9, 9]) == []  # two above; a third raises it
    assert [c.drift for c in h.observe([9, 9])] == [True]


def test_batches_and_single_windows_agree_and_match_a_direct_computation() -> None:
    rng = np.random.default_rng(7)
    ref_codes = tuple(range(0, 40, 2))
    ref_counts = tuple(int(c) for c in rng.integers(1, 50, len(ref_codes)))
    ref = reference(ref_codes, ref_counts, threshold=0.3, windows=50)
    # A stream that drifts: reference-like first, then shifted towards unseen codes.
    probs = np.asarray(ref_counts, float) / sum(ref_counts)
    first = rng.choice(ref_codes, 400, p=probs)
    later = rng.integers(0, 60, 400)
    stream = np.concatenate([first, later]).tolist()
    one = CodeHealth(ref)
    batched = CodeHealth(ref)
    seen: list[int] = []
    changes_one = []
    for c in stream:
        changes_one += one.observe([c])
        seen.append(c)
        if len(seen) >= 50 and one._since_check == 0:  # a check just happened
            window = Counter(seen[-50:])
            support = sorted(set(ref_codes) | set(window))
            p = [dict(zip(ref_codes, ref_counts, strict=True)).get(s, 0) for s in support]
            q = [window.get(s, 0) for s in support]
            assert one.jsd == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
    changes_batched = []
    for i in range(0, len(stream), 37):
        changes_batched += batched.observe(stream[i : i + 37])
    assert changes_one == changes_batched
    assert [c.drift for c in changes_one] == [True]  # the shift is caught, once
    assert one.jsd == batched.jsd
    # Codes that left the sliding window leave its counts: memory is bounded by the window.
    assert sum(one._counts.values()) == 50 and min(one._counts.values()) > 0


def test_without_reference_only_perplexity() -> None:
    h = CodeHealth(None)
    assert h.observe([1, 1, 2, 2]) == []
    p = h.roll()
    assert p.perplexity == pytest.approx(2.0)
    assert (p.unseen_share, p.jsd, p.drift) == (None, None, None)
    assert p.as_dict()["drift"] is None
    empty = h.roll()
    assert (empty.windows, empty.perplexity) == (0, None)


def test_overrides_win_over_the_card() -> None:
    h = CodeHealth(reference((1,), (1,), threshold=0.9, windows=100), threshold=0.1, windows=6)
    assert (h.threshold, h.windows, h.check_every) == (0.1, 6, 3)


def parse_health_table(text: str) -> HealthSettings:
    return parse_health(Table(tomllib.loads(text), "fsqd.toml [health]"))


def test_health_settings() -> None:
    assert parse_health_table("") == HealthSettings(None, None)
    assert parse_health_table("drift_threshold = 0.25\ndrift_windows = 600") == HealthSettings(
        0.25, 600
    )
    for text, key in (
        ("drift_threshold = 0", "drift_threshold"),
        ("drift_threshold = 1.5", "drift_threshold"),
        ('drift_threshold = "high"', "drift_threshold"),
        ("drift_windows = 1", "drift_windows"),
        ("drift_window = 10", "drift_window"),
    ):
        with pytest.raises(ConfigError, match=rf"\[health\] {key}"):
            parse_health_table(text)

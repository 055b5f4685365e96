"""Normalizer: float32 (x - mean) / std with true division, like training code."""

from __future__ import annotations

import numpy as np
import pytest

from fsqd.errors import ConfigError, DataError
from fsqd.stream.normalize import Normalizer


def test_equals_float32_true_division_not_reciprocal_multiplication() -> None:
    rng = np.random.default_rng(4)
    mean = [0.1, -9.81, 3.0]
    std = [3.0, 0.7, 49.0]
    x = (rng.normal(size=(20000, 3)) * 20).astype(np.float32)
    m32, s32 = np.float32(mean), np.float32(std)
    want = (x - m32) / s32
    got = Normalizer(mean, std)(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # The test can tell the two apart: multiplying by 1/std differs somewhere.
    assert ((x - m32) * (np.float32(1) / s32) != want).any()


def test_per_sample_so_chunking_cannot_matter_and_float64_input_is_cast() -> None:
    rng = np.random.default_rng(4)
    n = Normalizer([1.0, 2.0], [3.0, 0.5])
    x = rng.normal(size=(50, 2))
    whole = n(x.astype(np.float32))
    parts = np.concatenate([n(x[a : a + 7].astype(np.float32)) for a in range(0, 50, 7)])
    np.testing.assert_array_equal(parts, whole)
    got = n(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, whole)


def test_identity_statistics_return_the_samples() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 2)).astype(np.float32)
    assert Normalizer([0, 0], [1, 1])(x) is x


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [
        ([0.0], [0.0], "std must be finite and > 0"),
        ([0.0, 1.0], [1.0, -2.0], "std must be finite and > 0"),
        ([0.0], [float("nan")], "std must be finite and > 0"),
        ([0.0], [float("inf")], "std must be finite and > 0"),
        ([float("nan")], [1.0], "mean must be finite"),
        ([0.0, 1.0], [1.0], "mean has 2 values but std has 1"),
        ([], [], "non-empty"),
    ],
)
def test_rejects_bad_statistics(mean: list[float], std: list[float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Normalizer(mean, std)


def test_rejects_samples_of_the_wrong_width() -> None:
    n = Normalizer([1.0, 2.0], [3.0, 0.5])
    with pytest.raises(DataError, match=r"shape \(3, 3\), expected \(n, 2\)"):
        n(np.zeros((3, 3), np.float32))
    with pytest.raises(DataError, match=r"shape \(2,\), expected \(n, 2\)"):
        n(np.zeros(2, np.float32))

"""fsqd.fsq.FSQ against vector-quantize-pytorch 1.32 (fixtures from tools/gen_fsq_fixture.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from fsqd.errors import ConfigError, DataError
from fsqd.fsq import FSQ

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "fsq").glob("levels_*.npz"))


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def test_fixtures_cover_the_level_sets() -> None:
    names = {p.stem for p in FIXTURES}
    assert {"levels_8-6-5-5-4", "levels_8-8-8-8-8-8-8-8", "levels_4-4-4"} <= names
    for path in FIXTURES:
        data = load(path)
        assert len(data["z"]) >= 10_000
        assert "vector-quantize-pytorch 1.32.0" in str(data["versions"])


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_bit_exact_with_torch_from_the_bounded_stage(path: Path) -> None:
    """Round, digits, index and zhat from torch's own bounded values: exact, every row."""
    data = load(path)
    fsq = FSQ(data["levels"].tolist())
    np.testing.assert_array_equal(bits(fsq.half_l), bits(data["half_l"]))
    np.testing.assert_array_equal(bits(fsq.shift), bits(data["shift"]))
    np.testing.assert_array_equal(fsq.indices_from_bounded(data["bounded"]), data["indices"])
    np.testing.assert_array_equal(bits(fsq.codes_from_bounded(data["bounded"])), bits(data["zhat"]))
    np.testing.assert_array_equal(fsq.indices_from_bounded(data["b"]), data["b_indices"])


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_projection_stage_matches_torch(path: Path) -> None:
    """From z, torch's float32 tanh (MKL on x86) is not correctly rounded; fsqd's is.

    So the bound agrees to one tanh ulp, and indices agree on every random row; only
    rows engineered to sit on a rounding boundary may fall on the other side.
    """
    data = load(path)
    fsq = FSQ(data["levels"].tolist())
    bounded = fsq.bound(data["z"])
    tolerance = fsq.half_l * np.float32(2**-22)
    assert (np.abs(bounded - data["bounded"]) <= tolerance).all()
    idx = fsq.indices(data["z"])
    random_rows = slice(0, 10_000)
    np.testing.assert_array_equal(idx[random_rows], data["indices"][random_rows])
    differ = np.flatnonzero(idx != data["indices"])
    # Each differing row has a dimension whose two bounded values round apart.
    ours, theirs = fsq.round_bounded(bounded[differ]), fsq.round_bounded(data["bounded"][differ])
    assert (ours != theirs).any(axis=1).all()
    assert len(differ) <= 20, f"{len(differ)} boundary rows differ"


def test_golden_table() -> None:
    fsq = FSQ([8, 6, 5, 5, 4])
    z = [
        [0, 0, 0, 0, 0],
        [0.1, -0.2, 0.3, -0.4, 0.5],
        [1, -1, 2, -2, 0.25],
        [-3, 3, -0.6, 0.6, -0.15],
        [10, -10, 10, -10, 10],
    ]
    digits = [[4, 3, 2, 2, 2], [4, 3, 3, 1, 3], [6, 1, 4, 0, 2], [0, 5, 1, 3, 2], [7, 0, 4, 0, 3]]
    assert fsq.digits(z).tolist() == digits
    assert fsq.indices(z).tolist() == [3004, 4012, 2606, 3208, 3799]
    assert fsq.basis.tolist() == [1, 8, 48, 240, 1200]
    assert fsq.codebook_size == 4800


def test_ties_round_half_to_even_and_no_negative_zero() -> None:
    fsq = FSQ([8, 5])
    b = np.array([[0.5, -0.5], [1.5, 1.5], [2.5, -1.5], [-3.5, -0.0], [-0.3, -0.2]], np.float32)
    level = fsq.round_bounded(b)
    assert level.tolist() == [[0, 0], [2, 2], [2, -2], [-4, 0], [0, 0]]
    assert not (np.signbit(level) & (level == 0)).any()
    zhat = fsq.codes_from_bounded(b)
    assert not (np.signbit(zhat) & (zhat == 0)).any()
    assert fsq.indices([[-0.0, -0.0]]).tolist() == fsq.indices([[0.0, 0.0]]).tolist()


def test_even_levels_are_asymmetric() -> None:
    fsq = FSQ([8])
    codes = fsq.indices_to_codes(np.arange(8))[:, 0]
    assert codes.tolist() == [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75]
    assert fsq.indices([[1e30], [-1e30]]).tolist() == [7, 0]


@pytest.mark.parametrize("levels", [[8, 6, 5, 5, 4], [4, 4, 4], [7, 5, 5, 5, 5], [3, 3, 3, 3]])
def test_round_trips_over_the_whole_codebook(levels: list[int]) -> None:
    fsq = FSQ(levels)
    idx = np.arange(fsq.codebook_size)
    np.testing.assert_array_equal(fsq.digits_to_indices(fsq.indices_to_digits(idx)), idx)
    codes = fsq.indices_to_codes(idx)
    np.testing.assert_array_equal(fsq.codes_to_indices(codes), idx)
    # Codes are fixed points: quantising the bounded value of a code's level gives it back.
    level = codes * fsq.half_width
    np.testing.assert_array_equal(fsq.indices_from_bounded(level), idx)
    # Every digit combination appears exactly once.
    assert {tuple(d) for d in fsq.indices_to_digits(idx).tolist()} == set(
        itertools.product(*(range(v) for v in levels))
    )


def test_large_codebook_round_trip() -> None:
    fsq = FSQ([8] * 8)
    assert fsq.codebook_size == 2**24
    idx = np.random.default_rng(0).integers(0, fsq.codebook_size, 100_000)
    np.testing.assert_array_equal(fsq.codes_to_indices(fsq.indices_to_codes(idx)), idx)


def test_batch_shapes_match_flat() -> None:
    fsq = FSQ([8, 6, 5, 5, 4])
    z = np.random.default_rng(1).normal(0, 2, (2, 3, 4, 5)).astype(np.float32)
    flat = fsq.indices(z.reshape(-1, 5))
    assert fsq.indices(z).shape == (2, 3, 4)
    np.testing.assert_array_equal(fsq.indices(z).reshape(-1), flat)
    assert fsq.quantize(z).shape == z.shape


def test_bad_inputs_raise_data_errors() -> None:
    fsq = FSQ([8, 6, 5, 5, 4])
    with pytest.raises(DataError, match="last axis of 5, got last axis 4"):
        fsq.indices(np.zeros((3, 4)))
    with pytest.raises(DataError, match="NaN/inf"):
        fsq.indices([[0, 0, np.nan, 0, 0]])
    with pytest.raises(DataError, match="NaN/inf"):
        fsq.indices_from_bounded([[0, 0, np.inf, 0, 0]])
    with pytest.raises(DataError, match="out of range"):
        fsq.indices_to_codes([4800])
    assert issubclass(DataError, ValueError)
    with pytest.raises(ConfigError, match=">= 3"):
        FSQ([8, 2])


def test_digits_and_codes_in_one_pass_agree_with_the_separate_calls() -> None:
    fsq = FSQ([8, 6, 5, 5, 4])
    b = np.random.default_rng(2).uniform(-4.4, 3.4, (1000, 5)).astype(np.float32)
    digits, codes = fsq.digits_and_codes_from_bounded(b)
    np.testing.assert_array_equal(digits, fsq.digits_from_bounded(b))
    np.testing.assert_array_equal(bits(codes), bits(fsq.codes_from_bounded(b)))

"""fsqd.fsq.FSQ against vector-quantize-pytorch 1.32 (fixtures from tools/gen_fsq_fixture.py).

From torch's bounded value (the tensor that feeds Round) every step is bit-exact. From the
projection value ``z`` fsqd uses a correctly rounded tanh while torch on x86 uses MKL's,
which is one ulp off on about 1 % of elements; the tests below pin that down exactly: the
one-ulp tanh is the only difference, and it changes an index only on a rounding tie.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fsqd.errors import ConfigError, DataError
from fsqd.fsq import FSQ

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "fsq"
FIXTURES = sorted(FIXTURE_DIR.glob("levels_*.npz"))
# The same list tools/gen_fsq_fixture.py generates from.
LEVEL_SETS = json.loads((FIXTURE_DIR / "level_sets.json").read_text())["level_sets"]
Arrays = dict[str, npt.NDArray[Any]]


def load(path: Path) -> Arrays:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module", params=FIXTURES, ids=lambda p: p.stem)
def fx(request: pytest.FixtureRequest) -> Arrays:
    path: Path = request.param
    return load(path)


def make(data: Arrays) -> FSQ:
    return FSQ(data["levels"].tolist())


def bits(a: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def assert_bits_equal(ours: npt.ArrayLike, theirs: npt.ArrayLike, what: str) -> None:
    differ = bits(ours) != bits(theirs)
    assert not differ.any(), f"{what}: {np.count_nonzero(differ)} of {differ.size} differ"


def assert_rows_equal(ours: npt.ArrayLike, theirs: npt.ArrayLike, what: str) -> None:
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.shape == b.shape, (a.shape, b.shape)
    differ = np.flatnonzero(a != b)
    assert differ.size == 0, (
        f"{what}: {differ.size} of {a.size} rows differ, first at rows {differ[:10].tolist()}"
    )


def rows_of(data: Arrays, *kinds: str) -> npt.NDArray[np.bool_]:
    names = data["kind_names"].tolist()
    out: npt.NDArray[np.bool_] = np.isin(data["kind"], [names.index(k) for k in kinds])
    return out


def is_negative_zero(a: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.bool_]:
    out: npt.NDArray[np.bool_] = (a == 0) & np.signbit(a)
    return out


# -- the fixtures themselves --


def test_fixtures_cover_every_level_set() -> None:
    assert {p.stem for p in FIXTURES} == {f"levels_{'-'.join(map(str, lv))}" for lv in LEVEL_SETS}
    assert sum(p.stat().st_size for p in FIXTURES) < 4_500_000


def test_fixture_contents(fx: Arrays) -> None:
    assert fx["versions"].tolist() == ["torch 2.13.0+cpu", "vector-quantize-pytorch 1.32.0"]
    n, d = fx["z"].shape
    assert n >= 10_000 and d == len(fx["levels"])
    assert fx["z"].dtype == fx["bounded"].dtype == fx["zhat"].dtype == np.float32
    assert fx["bounded"].shape == fx["zhat"].shape == (n, d)
    assert fx["indices"].shape == fx["kind"].shape == (n,)
    # Every input family is there, including the awkward floats.
    assert set(np.unique(fx["kind"]).tolist()) == set(range(len(fx["kind_names"])))
    z = fx["z"]
    assert is_negative_zero(z).any() and ((z == 0) & ~np.signbit(z)).any()
    assert (np.abs(z) == np.finfo(np.float32).max).any()
    assert ((z != 0) & (np.abs(z) < np.finfo(np.float32).smallest_normal)).any()
    # Some boundary rows made torch's bounded land exactly on a tie.
    bounded = fx["bounded"]
    assert (bounded - np.floor(bounded) == 0.5).any()


# -- constants and the bounded stage: bit-exact --


def test_constants_match_torch(fx: Arrays) -> None:
    fsq = make(fx)
    assert_bits_equal(fsq.half_l, fx["half_l"], "half_l")
    assert_bits_equal(fsq.shift, fx["shift"], "shift")
    levels = fx["levels"]
    assert fsq.codebook_size == int(np.prod(levels))
    np.testing.assert_array_equal(fsq.basis, np.cumprod([1, *levels[:-1].tolist()]))


def test_torch_bounded_gives_torch_indices_and_codes(fx: Arrays) -> None:
    """What an encoder cut before Round outputs goes through exactly like torch, every row."""
    fsq = make(fx)
    assert_rows_equal(fsq.indices_from_bounded(fx["bounded"]), fx["indices"], "indices")
    assert_bits_equal(fsq.codes_from_bounded(fx["bounded"]), fx["zhat"], "zhat")
    digits, codes = fsq.digits_and_codes_from_bounded(fx["bounded"])
    assert_rows_equal(fsq.digits_to_indices(digits), fx["indices"], "one-pass indices")
    assert_bits_equal(codes, fx["zhat"], "one-pass zhat")
    assert_rows_equal(fsq.codes_to_indices(fx["zhat"]), fx["indices"], "codes_to_indices")


def test_bounded_stage_set(fx: Arrays) -> None:
    fsq = make(fx)
    b = fx["b"]
    assert_rows_equal(fsq.indices_from_bounded(b), fx["b_indices"], "indices from b")
    # torch.round keeps -0.0 where round_ste and fsqd give +0.0; otherwise bit-equal.
    level = fsq.round_bounded(b)
    np.testing.assert_array_equal(level, fx["b_round"])
    assert_bits_equal(level, np.where(fx["b_round"] == 0, np.float32(0), fx["b_round"]), "round")
    assert_bits_equal(fsq.codes_from_bounded(b), fx["b_zhat"], "zhat from b")


# -- the projection stage: bit-exact but for torch's one-ulp tanh --


def tanh_image(fsq: FSQ, t: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = t * fsq.half_l - fsq.offset
    return out


def test_bound_is_torch_bound_up_to_one_ulp_of_tanh(fx: Arrays) -> None:
    """Every bounded element equals torch's, or what torch's arithmetic gives from a tanh
    one ulp beside fsqd's correctly rounded one (MKL's float32 tanh is 1 ulp off at times).
    """
    fsq = make(fx)
    z, theirs = fx["z"], fx["bounded"]
    ours = fsq.bound(z)
    t = np.tanh((z + fsq.shift).astype(np.float64)).astype(np.float32)
    # The model of fsqd's bound used here is fsqd's bound.
    assert_bits_equal(tanh_image(fsq, t), ours, "bound vs its tanh")
    same = bits(ours) == bits(theirs)
    up = bits(tanh_image(fsq, np.nextafter(t, np.float32(np.inf)))) == bits(theirs)
    down = bits(tanh_image(fsq, np.nextafter(t, np.float32(-np.inf)))) == bits(theirs)
    unexplained = ~(same | up | down)
    assert not unexplained.any(), f"{np.count_nonzero(unexplained)} elements differ by more"
    assert np.mean(same) > 0.98, f"only {np.mean(same):.2%} of bounded elements bit-equal"


@pytest.mark.xfail(
    strict=True,
    reason="torch's float32 tanh on x86 is MKL's, 1 ulp off correctly rounded on ~1% of inputs",
)
def test_bound_bit_exact_with_torch(fx: Arrays) -> None:
    assert_bits_equal(make(fx).bound(fx["z"]), fx["bounded"], "bounded")


def test_indices_match_torch_except_on_rounding_ties(fx: Arrays) -> None:
    """Indices from z agree on every row but those where the one-ulp tanh difference
    moves the bounded value across a k + 0.5 tie; only engineered boundary rows do that.
    """
    fsq = make(fx)
    z = fx["z"]
    idx = fsq.indices(z)
    plain = ~rows_of(fx, "boundary")
    assert_rows_equal(idx[plain], fx["indices"][plain], "indices on non-boundary rows")
    ours, theirs = fsq.bound(z), fx["bounded"]
    flipped = fsq.round_bounded(ours) != fsq.round_bounded(theirs)
    assert_rows_equal(idx != fx["indices"], flipped.any(axis=1), "differing rows vs flips")
    lo, hi = np.minimum(ours, theirs)[flipped], np.maximum(ours, theirs)[flipped]
    tie = np.floor(hi - np.float32(0.5)) + np.float32(0.5)
    assert ((lo <= tie) & (tie <= hi)).all()


def test_quantize_matches_torch_where_no_tie_is_crossed(fx: Arrays) -> None:
    fsq = make(fx)
    zhat = fsq.quantize(fx["z"])
    same = fsq.indices(fx["z"]) == fx["indices"]
    assert_bits_equal(zhat[same], fx["zhat"][same], "zhat")
    assert not is_negative_zero(zhat).any()
    assert not is_negative_zero(fx["zhat"]).any()


# -- properties that need no torch --


def test_golden_table() -> None:
    fsq = FSQ([8, 6, 5, 5, 4])
    z: list[list[float]] = [
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


@pytest.mark.parametrize("levels", LEVEL_SETS, ids=str)
def test_ties_round_half_to_even(levels: list[int]) -> None:
    fsq = FSQ(levels)
    for i, n in enumerate(levels):
        lo, hi = -(n // 2), (n - 1) - n // 2
        k = np.arange(lo, hi)
        b = np.zeros((len(k), len(levels)), np.float32)
        b[:, i] = k + 0.5
        level = fsq.round_bounded(b)[:, i]
        expected = np.where(k % 2 == 0, k, k + 1)
        np.testing.assert_array_equal(level, expected)
        assert not is_negative_zero(level).any()


@pytest.mark.parametrize("levels", LEVEL_SETS, ids=str)
def test_negative_zero(levels: list[int]) -> None:
    fsq = FSQ(levels)
    d = len(levels)
    pos, neg = np.zeros((1, d), np.float32), np.full((1, d), -0.0, np.float32)
    assert fsq.indices(neg).tolist() == fsq.indices(pos).tolist()
    assert fsq.indices_from_bounded(neg).tolist() == fsq.indices_from_bounded(pos).tolist()
    # Small negatives round to -0.0 in IEEE; zhat must hold +0.0 like torch's round_ste.
    b = np.array([[-0.0] * d, [-0.3] * d, [-1e-30] * d], np.float32)
    for codes in (fsq.codes_from_bounded(b), fsq.quantize(b), fsq.indices_to_codes([0])):
        assert not is_negative_zero(codes).any()


@pytest.mark.parametrize("levels", [lv for lv in LEVEL_SETS if lv != [8] * 8], ids=str)
def test_round_trips_over_the_whole_codebook(levels: list[int]) -> None:
    fsq = FSQ(levels)
    idx = np.arange(fsq.codebook_size)
    digits = fsq.indices_to_digits(idx)
    np.testing.assert_array_equal(fsq.digits_to_indices(digits), idx)
    codes = fsq.indices_to_codes(idx)
    np.testing.assert_array_equal(fsq.codes_to_indices(codes), idx)
    # A code's level, fed back as a bounded value, is a fixed point.
    np.testing.assert_array_equal(fsq.indices_from_bounded(codes * fsq.half_width), idx)
    assert {tuple(d) for d in digits.tolist()} == set(
        itertools.product(*(range(n) for n in levels))
    )


def test_large_codebook_round_trip() -> None:
    fsq = FSQ([8] * 8)
    assert fsq.codebook_size == 2**24
    idx = np.random.default_rng(0).integers(0, fsq.codebook_size, 200_000)
    idx[:2] = [0, fsq.codebook_size - 1]
    digits = fsq.indices_to_digits(idx)
    np.testing.assert_array_equal(fsq.digits_to_indices(digits), idx)
    np.testing.assert_array_equal(fsq.codes_to_indices(fsq.indices_to_codes(idx)), idx)


def test_batch_shapes_match_flat(fx: Arrays) -> None:
    fsq = make(fx)
    d = len(fx["levels"])
    z = fx["z"][:24]
    b = fx["b"][:24]
    batched_z, batched_b = z.reshape(2, 3, 4, d), b.reshape(2, 3, 4, d)
    np.testing.assert_array_equal(fsq.indices(batched_z), fsq.indices(z).reshape(2, 3, 4))
    assert_bits_equal(fsq.bound(batched_z), fsq.bound(z).reshape(2, 3, 4, d), "bound")
    assert_bits_equal(fsq.quantize(batched_z), fsq.quantize(z).reshape(2, 3, 4, d), "zhat")
    np.testing.assert_array_equal(fsq.digits(batched_z), fsq.digits(z).reshape(2, 3, 4, d))
    np.testing.assert_array_equal(
        fsq.indices_from_bounded(batched_b), fsq.indices_from_bounded(b).reshape(2, 3, 4)
    )
    idx = fsq.indices(z).reshape(2, 3, 4)
    assert fsq.indices_to_codes(idx).shape == (2, 3, 4, d)
    # A single row without a batch axis works too.
    assert fsq.indices(z[0]).shape == ()
    assert int(fsq.indices(z[0])) == fsq.indices(z)[0]


@pytest.mark.parametrize(
    "call",
    [
        "bound",
        "quantize",
        "digits",
        "indices",
        "round_bounded",
        "codes_from_bounded",
        "digits_from_bounded",
        "indices_from_bounded",
        "codes_to_indices",
        "digits_to_indices",
    ],
)
def test_wrong_last_axis_is_a_data_error(call: str) -> None:
    fn = getattr(FSQ([8, 6, 5, 5, 4]), call)
    with pytest.raises(DataError, match="last axis of 5, got last axis 4"):
        fn(np.zeros((3, 4)))
    with pytest.raises(DataError, match="got a scalar"):
        fn(0.0)
    with pytest.raises(ValueError):
        fn(np.zeros((2, 6)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["bound", "quantize", "indices", "indices_from_bounded"])
def test_nan_and_inf_are_data_errors(call: str, bad: float) -> None:
    fn = getattr(FSQ([8, 6, 5, 5, 4]), call)
    z = np.zeros((4, 5), np.float32)
    z[2, 3] = bad
    with pytest.raises(DataError, match="1 NaN/inf"):
        fn(z)


def test_out_of_range_indices_are_data_errors() -> None:
    fsq = FSQ([8, 6, 5, 5, 4])
    for bad in ([4800], [-1], [[0, 4800]]):
        with pytest.raises(DataError, match="out of range"):
            fsq.indices_to_codes(bad)


@pytest.mark.parametrize("levels", [[8, 2], [1], [0, 5], [-3], [], [3, 3, 2]], ids=str)
def test_levels_below_three_are_config_errors(levels: list[int]) -> None:
    with pytest.raises(ConfigError):
        FSQ(levels)


def test_error_types_are_value_errors() -> None:
    assert issubclass(DataError, ValueError)
    assert issubclass(ConfigError, ValueError)

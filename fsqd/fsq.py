"""Finite Scalar Quantization on the CPU, bit-exact with vector-quantize-pytorch 1.32.

The default ``vector_quantize_pytorch.FSQ(levels)`` does, per dimension with L levels::

    half_l  = (L - 1) * (1 + 1e-3) / 2          float32
    offset  = 0.5 if L is even else 0.0
    shift   = atanh(offset / half_l)
    bounded = tanh(z + shift) * half_l - offset   <- the tensor that feeds Round
    level   = round_half_even(bounded)            -> -(L // 2) .. (L - 1) // 2
    zhat    = level / (L // 2)                    <- the code vector fed to a head
    digit   = level + L // 2                      -> 0 .. L - 1
    index   = sum(digit * basis), basis = cumprod([1] + levels[:-1])

Every float operation here is done in float32 like torch does, except tanh and
atanh: those are float64 rounded once to float32, i.e. correctly rounded (up to
vanishingly rare double roundings) and so the same on every machine. torch's
float32 tanh is not: on x86 it is MKL's, one ulp off on about 1 % of inputs with
AVX-512 and 0.06 % with AVX2 (numpy's own float32 tanh is worse). So from ``z``
the bounded value can sit one ulp from torch's, which changes an index only where
it straddles a rounding tie; from the bounded value on, every step is bit-exact.
Index sums are int64 so any codebook size is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError, DataError

__all__ = ["FSQ"]

_EPS = np.float32(1e-3)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class FSQ:
    """FSQ with fixed ``levels``; every method is vectorised over any leading batch shape.

    The last axis of every input is the FSQ dimension (``len(levels)``).
    """

    def __init__(self, levels: Sequence[int]) -> None:
        lv = [int(x) for x in levels]
        if not lv:
            raise ConfigError("FSQ levels must not be empty")
        if any(x < 3 for x in lv):
            # vector-quantize-pytorch refuses L=2 without preserve_symmetry, a different bound.
            raise ConfigError(f"FSQ levels must all be >= 3, got {lv}")
        self.levels: IntArray = np.asarray(lv, dtype=np.int64)
        self.dim = len(lv)
        self.codebook_size = int(np.prod(self.levels, dtype=np.int64))
        self.basis: IntArray = np.cumprod([1, *lv[:-1]], dtype=np.int64)
        self.half_width: IntArray = self.levels // 2
        self.half_l: FloatArray = (
            (self.levels - 1).astype(np.float32) * (np.float32(1) + _EPS) / np.float32(2)
        )
        self.offset: FloatArray = np.where(self.levels % 2 == 0, 0.5, 0.0).astype(np.float32)
        ratio = self.offset / self.half_l
        self.shift: FloatArray = np.arctanh(ratio.astype(np.float64)).astype(np.float32)
        self._half_width_f: FloatArray = self.half_width.astype(np.float32)

    def __repr__(self) -> str:
        return f"FSQ(levels={self.levels.tolist()})"

    # -- projection-stage values (what the encoder's last Linear produces) --

    def bound(self, z: npt.ArrayLike) -> FloatArray:
        """The bounded value that feeds Round, from projection-stage ``z``."""
        z32 = self._check(z)
        t = np.tanh((z32 + self.shift).astype(np.float64)).astype(np.float32)
        out: FloatArray = t * self.half_l - self.offset
        return out

    def quantize(self, z: npt.ArrayLike) -> FloatArray:
        """``zhat``, the code vector in [-1, 1] that a classifier head consumes."""
        return self.codes_from_bounded(self.bound(z))

    def digits(self, z: npt.ArrayLike) -> IntArray:
        """Per-dimension digits 0..L-1 from projection-stage ``z``."""
        return self.digits_from_bounded(self.bound(z))

    def indices(self, z: npt.ArrayLike) -> IntArray:
        """Codebook indices (int64, shape ``z.shape[:-1]``) from projection-stage ``z``."""
        return self.digits_to_indices(self.digits(z))

    # -- bounded-stage values (what a model cut at the node before Round outputs) --

    def round_bounded(self, b: npt.ArrayLike) -> FloatArray:
        """Integer level offsets as float32, half to even, -0.0 folded to 0.0.

        Values outside the reachable range (only possible when ``b`` comes from a
        quantised accelerator, never from the bound) are clipped to the end levels.
        """
        b32 = self._check(b)
        level = np.round(b32) + np.float32(0.0)
        lo = -self._half_width_f
        hi = (self.levels - 1 - self.half_width).astype(np.float32)
        out: FloatArray = np.clip(level, lo, hi)
        return out

    def codes_from_bounded(self, b: npt.ArrayLike) -> FloatArray:
        """``zhat`` from bounded values."""
        out: FloatArray = self.round_bounded(b) / self._half_width_f
        return out

    def digits_from_bounded(self, b: npt.ArrayLike) -> IntArray:
        """Digits 0..L-1 from bounded values."""
        return self.round_bounded(b).astype(np.int64) + self.half_width

    def digits_and_codes_from_bounded(self, b: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
        """(digits, zhat) from one rounding pass: the streaming hot path."""
        level = self.round_bounded(b)
        codes: FloatArray = level / self._half_width_f
        return level.astype(np.int64) + self.half_width, codes

    def indices_from_bounded(self, b: npt.ArrayLike) -> IntArray:
        """Codebook indices from bounded values."""
        return self.digits_to_indices(self.digits_from_bounded(b))

    # -- index <-> digits <-> codes --

    def digits_to_indices(self, digits: npt.ArrayLike) -> IntArray:
        d = np.asarray(digits, dtype=np.int64)
        self._check_last_axis(d)
        out: IntArray = (d * self.basis).sum(axis=-1)
        return out

    def indices_to_digits(self, indices: npt.ArrayLike) -> IntArray:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.codebook_size):
            raise DataError(
                f"FSQ index out of range 0..{self.codebook_size - 1}: "
                f"min {idx.min()}, max {idx.max()}"
            )
        out: IntArray = (idx[..., None] // self.basis) % self.levels
        return out

    def indices_to_codes(self, indices: npt.ArrayLike) -> FloatArray:
        """``zhat`` for each index: the inverse of :meth:`codes_to_indices`."""
        level = (self.indices_to_digits(indices) - self.half_width).astype(np.float32)
        out: FloatArray = level / self._half_width_f
        return out

    def codes_to_indices(self, codes: npt.ArrayLike) -> IntArray:
        """Indices of ``zhat`` code vectors (the values :meth:`quantize` returns)."""
        c = self._check(codes)
        level = np.rint(c * self._half_width_f).astype(np.int64)
        return self.digits_to_indices(level + self.half_width)

    # -- checks --

    def _check_last_axis(self, a: npt.NDArray[np.generic]) -> None:
        if a.ndim == 0 or a.shape[-1] != self.dim:
            got = "a scalar" if a.ndim == 0 else f"last axis {a.shape[-1]}"
            raise DataError(
                f"FSQ with {self.dim} levels {self.levels.tolist()} needs a last axis of "
                f"{self.dim}, got {got} (shape {a.shape})"
            )

    def _check(self, x: npt.ArrayLike) -> FloatArray:
        a = np.asarray(x, dtype=np.float32)
        self._check_last_axis(a)
        if not np.isfinite(a).all():
            raise DataError(f"FSQ input holds {np.count_nonzero(~np.isfinite(a))} NaN/inf values")
        return a

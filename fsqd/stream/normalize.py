"""Per-channel z-score on the host: (x - mean) / std, in float32 like training code.

Applied to samples rather than windows: with overlapping windows each sample would
otherwise be normalised window/hop times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError, DataError


class Normalizer:
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ConfigError(f"normalisation mean has {len(mean)} values but std has {len(std)}")
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        if self.mean.ndim != 1 or len(self.mean) == 0:
            raise ConfigError("normalisation mean and std must be non-empty lists of numbers")
        if not np.isfinite(self.mean).all():
            raise ConfigError(f"normalisation mean must be finite, got {self.mean.tolist()}")
        if not (np.isfinite(self.std).all() and (self.std > 0).all()):
            raise ConfigError(f"normalisation std must be finite and > 0, got {self.std.tolist()}")
        self._identity = bool((self.mean == 0).all() and (self.std == 1).all())

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise DataError(f"samples have shape {x.shape}, expected (n, {len(self.mean)})")
        if self._identity:
            return x.astype(np.float32, copy=False)
        # True division by std, not multiplication by 1/std: bit-equal to what training
        # code computes. The second step reuses the first one's buffer.
        out = np.subtract(x, self.mean, dtype=np.float32)
        np.divide(out, self.std, out=out)
        return out

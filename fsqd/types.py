"""Value types that cross package lines: what the pipeline hands to sinks.

``SampleChunk`` (``fsqd.chunk``) and ``WindowBatch`` (``fsqd.stream``) are
re-exported here so a sink or a command needs one import for the values it handles, and
none of them has to import ``fsqd.pipeline`` (which pulls in the encoders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.chunk import SampleChunk
from fsqd.stream.windows import WindowBatch

__all__ = ["CodeBatch", "SampleChunk", "WindowBatch"]


@dataclass(frozen=True, slots=True)
class CodeBatch:
    """FSQ codes for N windows (and the head's verdict when the model has one)."""

    index: npt.NDArray[np.int64]  # (N,)
    digits: npt.NDArray[np.int64]  # (N, dim)
    codes: npt.NDArray[np.float32]  # (N, dim) zhat
    label_id: npt.NDArray[np.int64] | None  # (N,)
    p: npt.NDArray[np.float32] | None  # (N,) calibrated top probability (card's temperature)
    probs: npt.NDArray[np.float64] | None = None  # (N, K) calibrated probabilities
    sets: npt.NDArray[np.bool_] | None = None  # (N, K) conformal set (cards with conformal)

    def __len__(self) -> int:
        return len(self.index)

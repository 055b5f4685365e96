"""The unit that flows between the stages: a run of timestamped samples.

The acquisition and the recorded-file readers make them, the stream stages consume them;
it lives below all of them, so none depends on another to name it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SampleChunk:
    t: npt.NDArray[np.float64]  # (n,) seconds: UNIX epoch when absolute, else relative
    x: npt.NDArray[np.float32]  # (n, C) columns in the card's order, device-major
    new_segment: bool = False  # does not continue the previous chunk (stream start or gap)

    def __len__(self) -> int:
        return len(self.t)

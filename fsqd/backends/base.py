"""What every encoder backend offers: model-layout windows in, FSQ-stage values out."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt


class Encoder(Protocol):
    """Runs everything up to the FSQ stage the card names (``projection`` or ``bounded``)."""

    name: str

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(N, *input shape) float32 in the card's layout -> (N, FSQ dim) float32."""
        ...

"""From the stream's windows to the encoder's input layout.

Windows come out of the stream as (N, T, D*C) with columns device-major (device 0's
channels, then device 1's). The card says in which axis order the encoder wants them,
e.g. NCDT -> (N, C, D, T). The permutation is decided once, here, for every backend.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError
from fsqd.model.card import ModelCard, expected_input_shape


class InputLayout:
    """Callable turning (N, T, D*C) windows into C-contiguous (N, *card input shape)."""

    def __init__(self, card: ModelCard) -> None:
        self.window = card.window
        self.devices = card.devices
        self.channels = len(card.channels)
        self.shape = expected_input_shape(card)
        # Axis positions in the (N, T, D, C) view of a window batch.
        pos = {"N": 0, "T": 1, "D": 2, "C": 3}
        layout = card.input.layout if "D" in card.input.layout else card.input.layout + "D"
        self._perm = tuple(pos[a] for a in layout)

    def __call__(self, windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        n = windows.shape[0]
        want = (self.window, self.devices * self.channels)
        if windows.ndim != 3 or windows.shape[1:] != want:
            raise DataError(
                f"windows have shape {windows.shape}, expected (N, {want[0]}, {want[1]})"
            )
        v = windows.reshape(n, self.window, self.devices, self.channels).transpose(self._perm)
        return np.ascontiguousarray(v).reshape(n, *self.shape)

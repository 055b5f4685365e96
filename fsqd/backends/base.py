"""What every encoder backend offers: model-layout windows in, FSQ-stage values out."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Runs everything up to the FSQ stage the card names (``projection`` or ``bounded``)."""

    @property
    def name(self) -> str:
        """The backend that computes the next batch ("onnx", "hailo"), for logs, info and stats."""
        ...

    def __call__(self, x: Array) -> Array:
        """(N, *input shape) float32 in the card's layout -> (N, FSQ dim) float32."""
        ...

    def close(self) -> None:
        """Release the session or device; idempotent."""
        ...


@runtime_checkable
class HostOnlyEncoder(Protocol):
    """An encoder that only computes on this host's CPU: no device to wait for, no device
    to reopen. A short call of such an encoder may run on the daemon's event loop; a call
    to the NPU may block for a rebuild, which the loop must never wait through."""

    @property
    def host_only(self) -> bool: ...


@runtime_checkable
class AsyncEncoder(Protocol):
    """An encoder that can start a batch and return at once (the NPU works meanwhile)."""

    def submit(self, x: Array) -> Future[Array]:
        """Start encoding ``x``; the future completes from a backend thread."""
        ...

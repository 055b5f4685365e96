"""Where the daemon runs the encoder: on the event loop's thread while single calls are fast.

At 10 windows a second a CPU encoder's batch-1 call takes a few hundred microseconds, and
handing it to a worker thread (a future, the worker's wake-up, the self-pipe write that
wakes the loop again) costs about as much CPU as the call itself. So once a run of
single-window calls has each finished within ``fast_s``, the next single-window calls run
inline: the loop pauses for less than ``fast_s``. A call that takes longer (a busy core, a
device that blocks, a larger model) sends the calls back to the worker until a new run of
fast calls qualifies again. Batches of more than one window (catching up after a stall)
always go to the worker: their time grows with their size. Only an encoder that computes
on the host alone (``HostOnlyEncoder``: onnxruntime) ever runs inline: a call to the NPU
can block through a device rebuild, so it always goes to the worker.
"""

from __future__ import annotations

from fsqd.backends.base import HostOnlyEncoder

__all__ = ["FAST_S", "QUALIFYING_CALLS", "InferencePlacement", "placement_for"]

FAST_S = 0.002  # a pause of the event loop this short delays nothing that matters
QUALIFYING_CALLS = 20  # 2 s at 10 windows a second


class InferencePlacement:
    """Tracks single-window encoder calls and says whether the next one may run inline."""

    def __init__(
        self,
        fast_s: float = FAST_S,
        qualifying_calls: int = QUALIFYING_CALLS,
        *,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.fast_s = fast_s
        self.qualifying_calls = qualifying_calls
        self._fast_in_a_row = 0

    def inline(self, windows: int) -> bool:
        """Run this call on the event loop's thread?"""
        return self.enabled and windows == 1 and self._fast_in_a_row >= self.qualifying_calls

    def observe(self, windows: int, seconds: float) -> None:
        """A finished call of ``windows`` windows took ``seconds`` (wall clock)."""
        if windows != 1:
            return
        self._fast_in_a_row = self._fast_in_a_row + 1 if seconds <= self.fast_s else 0


def placement_for(encoder: object) -> InferencePlacement:
    """Inline calls allowed only for an encoder that computes on the host alone."""
    return InferencePlacement(enabled=isinstance(encoder, HostOnlyEncoder) and encoder.host_only)

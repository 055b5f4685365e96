"""How good are the behaviour states? Changes per hour, window accuracy, transition delay.

All from per-window labels of gap-free stretches (one array per stretch): the truth, the
state the tracker decided for each window, and the head's per-window argmax.

- State changes per hour against the true behaviour changes per hour (and the argmax's,
  which is what publishing the raw label would give): a tracker that flickers has many
  more changes than the truth, one that is too sticky fewer.
- Window accuracy of the state and of the argmax against the truth.
- Transition delay: for each true change (placed at the first window labelled with the
  new behaviour), the tracker's nearest change into the same behaviour between the true
  changes before and after it; the delay is the difference in windows times the step, plus
  what the daemon always adds: the smoothing lag, and half a window (a window is labelled
  by its centre; it is published when its last sample is in). A true change the tracker
  never follows is missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError

__all__ = ["change_points", "segment_report", "transition_delays"]

IntArray = npt.NDArray[np.integer]


def change_points(labels: IntArray) -> npt.NDArray[np.int64]:
    """Indices of the windows whose label differs from the previous window's."""
    out: npt.NDArray[np.int64] = (np.flatnonzero(np.diff(labels)) + 1).astype(np.int64)
    return out


def transition_delays(truth: IntArray, state: IntArray) -> tuple[list[int], int]:
    """Per true change, the tracker's change into the same behaviour nearest to it (in
    windows, negative when early), and how many true changes were never followed."""
    true_cp, state_cp = change_points(truth), change_points(state)
    bounds = np.concatenate([[0], true_cp, [len(truth)]])
    delays, missed = [], 0
    for n, i in enumerate(true_cp.tolist()):
        lo, hi = int(bounds[n]), int(bounds[n + 2])  # the true changes before and after
        into = state_cp[(state_cp > lo) & (state_cp < hi)]
        into = into[state[into] == truth[i]]
        if not len(into):
            missed += 1
            continue
        delays.append(int(into[np.argmin(np.abs(into - i))] - i))
    return delays, missed


def segment_report(
    truth: Sequence[IntArray],
    state: Sequence[IntArray],
    argmax: Sequence[IntArray],
    *,
    step_s: float,
    window_s: float,
    lag_s: float,
) -> dict[str, Any]:
    """The behaviour-state numbers of ``fsqd model evaluate`` and the benchmark.

    Each argument is one array per gap-free stretch (equal lengths across the three);
    ``step_s`` is the time between windows, ``window_s`` a window's length and ``lag_s``
    the tracker's smoothing lag (in seconds, as decided: a whole number of steps).
    """
    if not (len(truth) == len(state) == len(argmax)):
        raise DataError("truth, state and argmax must have one array per stretch each")
    total = changes_t = changes_s = changes_a = hits_s = hits_a = missed = 0
    delays: list[int] = []
    for t, s, a in zip(truth, state, argmax, strict=True):
        t, s, a = np.asarray(t), np.asarray(s), np.asarray(a)
        if not (len(t) == len(s) == len(a)):
            raise DataError(f"a stretch has {len(t)} true, {len(s)} state, {len(a)} argmax labels")
        total += len(t)
        changes_t += len(change_points(t))
        changes_s += len(change_points(s))
        changes_a += len(change_points(a))
        hits_s += int((s == t).sum())
        hits_a += int((a == t).sum())
        d, m = transition_delays(t, s)
        delays += d
        missed += m
    if not total:
        raise DataError("no windows to report on")
    hours = total * step_s / 3600.0
    delay_s = np.asarray(delays, np.float64) * step_s + lag_s + window_s / 2
    return {
        "windows": total,
        "hours": round(hours, 4),
        "changes_per_hour": {
            "truth": changes_t / hours,
            "state": changes_s / hours,
            "argmax": changes_a / hours,
        },
        "change_ratio": changes_s / changes_t if changes_t else None,
        "accuracy": {"state": hits_s / total, "argmax": hits_a / total},
        "transition_delay_s": {
            "median": float(np.median(delay_s)) if len(delays) else None,
            "p90": float(np.quantile(delay_s, 0.9)) if len(delays) else None,
            "changes": len(delays),
            "missed": missed,
            "bound": lag_s + window_s / 2,
        },
    }

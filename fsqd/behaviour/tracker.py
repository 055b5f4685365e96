"""From per-window probabilities to behaviour segments and the state worth publishing.

The tracker feeds each window's calibrated probabilities to the state estimator (the
explicit-duration HMM when the card has a semi-Markov model, the argmax with a minimum
dwell otherwise), dates each decision back to its window, and keeps the open segment:
its behaviour, since when, and its mean confidence. What comes out per window:

- a ``BehaviourState`` when it is worth publishing: the behaviour changed, a new segment
  started, or the confidence moved by ``confidence_step`` or more since the last one;
- a ``FinishedSegment`` for every segment that ended: at a behaviour change, at a stream
  gap (windows further apart than one step), or when the caller ends it (IMU lost, stop).

A window stands for the time from half a step before its centre to half a step after, so
the segments of a gap-free stretch tile it. Settings changed on a reload apply without
losing the open segment; a different model starts over (``retarget``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.hsmm import Decision, Hsmm, HsmmModel
from fsqd.behaviour.hysteresis import Hysteresis
from fsqd.errors import ConfigError
from fsqd.model.calibration import SemiMarkovSpec

__all__ = [
    "BehaviourState",
    "BehaviourTracker",
    "FinishedSegment",
    "StateEstimator",
    "TrackerOutput",
    "TrackerSettings",
    "window_states",
]

GAP_STEPS = 1.5  # windows further apart than this many steps are on two sides of a gap


class StateEstimator(Protocol):
    lag: int

    def push(self, posterior: npt.NDArray[np.float64]) -> list[Decision]: ...
    def flush(self) -> list[Decision]: ...


@dataclass(frozen=True)
class TrackerSettings:
    """``[behaviour]``: smoothing lag, the fall-back's minimum dwell, when to republish."""

    lag_s: float = 1.0
    min_dwell_s: float = 1.5
    confidence_step: float = 0.1


@dataclass(frozen=True, slots=True)
class BehaviourState:
    seq: int  # the newest window when this was decided
    behaviour: str
    since: float  # start of the current segment
    confidence: float
    set: tuple[str, ...] | None  # the conformal set of the window decided


@dataclass(frozen=True, slots=True)
class FinishedSegment:
    behaviour: str
    start: float
    end: float
    confidence: float  # mean over its windows
    windows: int

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass
class TrackerOutput:
    states: list[BehaviourState] = field(default_factory=list)
    segments: list[FinishedSegment] = field(default_factory=list)

    def extend(self, other: TrackerOutput) -> None:
        self.states += other.states
        self.segments += other.segments


@dataclass
class _Open:
    label: int
    start: float
    last_centre: float
    conf_sum: float = 0.0
    windows: int = 0


class BehaviourTracker:
    """Behaviour segments, one window at a time (see the module's docstring)."""

    def __init__(
        self,
        labels: tuple[str, ...],
        semi_markov: SemiMarkovSpec | None,
        step_s: float,
        settings: TrackerSettings = TrackerSettings(),
    ) -> None:
        if not step_s > 0:
            raise ConfigError(f"the window step must be > 0 s, got {step_s}")
        if semi_markov is not None and len(semi_markov.prior) != len(labels):
            raise ConfigError(
                f"the semi-Markov model has {len(semi_markov.prior)} behaviours, "
                f"the head {len(labels)} labels"
            )
        self.labels = labels
        self.step_s = step_s
        self.semi_markov = semi_markov
        self._hsmm = None if semi_markov is None else HsmmModel.from_spec(semi_markov, step_s)
        self.settings = settings
        self.estimator = self._estimator(settings)
        self._pending: deque[tuple[float, tuple[str, ...] | None]] = deque()  # centre, set
        self._open: _Open | None = None
        self._published: tuple[int, float, float] | None = None  # label, since, confidence
        self._last_t: float | None = None
        self._seq = -1

    @property
    def kind(self) -> str:
        return "hsmm" if self._hsmm is not None else "hysteresis"

    @property
    def lag(self) -> int:
        return self.estimator.lag

    def _estimator(self, s: TrackerSettings) -> StateEstimator:
        if not (s.lag_s >= 0 and s.min_dwell_s >= 0 and 0 < s.confidence_step <= 1):
            raise ConfigError(f"bad behaviour settings {s}")
        if self._hsmm is not None:
            return Hsmm(self._hsmm, round(s.lag_s / self.step_s))
        return Hysteresis(max(1, round(s.min_dwell_s / self.step_s)))

    # -- the calls the daemon and replay make --

    def push(
        self,
        seq: int,
        t_start: float,
        t_end: float,
        probs: npt.NDArray[np.float64],
        conformal_set: tuple[str, ...] | None = None,
    ) -> TrackerOutput:
        """One window: its first and last sample's times and its calibrated probabilities."""
        out = TrackerOutput()
        last = self._last_t
        if last is not None and not 0 < t_start - last <= GAP_STEPS * self.step_s:
            out.extend(self.end())  # a gap (or time going back): a new segment
        self._last_t = t_start
        self._seq = seq
        self._pending.append(((t_start + t_end) / 2, conformal_set))
        for d in self.estimator.push(probs):
            self._decided(d, out)
        return out

    def end(self) -> TrackerOutput:
        """The stream stops here (a gap, the IMU lost, shutdown): the open segment ends."""
        out = TrackerOutput()
        for d in self.estimator.flush():
            self._decided(d, out)
        self._pending.clear()
        self._close(out)
        self._published = None
        self._last_t = None
        return out

    def configure(self, settings: TrackerSettings) -> TrackerOutput:
        """New settings (a reload): the open segment carries on; a new lag or dwell takes
        effect from the next window (the windows waiting for the old lag are decided)."""
        out = TrackerOutput()
        if (settings.lag_s, settings.min_dwell_s) != (
            self.settings.lag_s,
            self.settings.min_dwell_s,
        ):
            estimator = self._estimator(settings)
            for d in self.estimator.flush():
                self._decided(d, out)
            self._pending.clear()
            self.estimator = estimator
        else:
            self._estimator(settings)  # checks them
        self.settings = settings
        return out

    def retarget(
        self, labels: tuple[str, ...], semi_markov: SemiMarkovSpec | None
    ) -> TrackerOutput:
        """Another model: if its behaviours or semi-Markov model differ, start over."""
        if labels == self.labels and semi_markov == self.semi_markov:
            return TrackerOutput()
        out = self.end()
        self.labels, self.semi_markov = labels, semi_markov
        self._hsmm = None if semi_markov is None else HsmmModel.from_spec(semi_markov, self.step_s)
        self.estimator = self._estimator(self.settings)
        return out

    # -- decisions -> segments --

    def _decided(self, d: Decision, out: TrackerOutput) -> None:
        centre, conformal_set = self._pending.popleft()
        cur = self._open
        if cur is not None and cur.label != d.label:
            self._close(out)
            cur = None
        if cur is None:
            cur = self._open = _Open(d.label, centre - self.step_s / 2, centre)
        cur.last_centre = centre
        cur.conf_sum += d.confidence
        cur.windows += 1
        pub = self._published
        if (
            pub is None
            or pub[0] != d.label
            or pub[1] != cur.start
            or abs(d.confidence - pub[2]) >= self.settings.confidence_step
        ):
            self._published = (d.label, cur.start, d.confidence)
            out.states.append(
                BehaviourState(
                    self._seq, self.labels[d.label], cur.start, d.confidence, conformal_set
                )
            )

    def _close(self, out: TrackerOutput) -> None:
        cur, self._open = self._open, None
        if cur is None or not cur.windows:
            return
        out.segments.append(
            FinishedSegment(
                self.labels[cur.label],
                cur.start,
                cur.last_centre + self.step_s / 2,
                cur.conf_sum / cur.windows,
                cur.windows,
            )
        )


def window_states(
    probs: npt.NDArray[np.float64],
    semi_markov: SemiMarkovSpec | None,
    step_s: float,
    settings: TrackerSettings = TrackerSettings(),
) -> npt.NDArray[np.int64]:
    """The state the daemon would decide for each window of one gap-free stretch (N, K)."""
    labels = tuple(str(i) for i in range(probs.shape[1]))
    estimator = BehaviourTracker(labels, semi_markov, step_s, settings).estimator
    out = [d.label for p in probs for d in estimator.push(p)]
    out += [d.label for d in estimator.flush()]
    return np.asarray(out, np.int64)

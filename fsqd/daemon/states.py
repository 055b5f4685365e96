"""The daemon's behaviour states: windows' probabilities -> the ``state`` and ``events`` topics.

One ``BehaviourTracker`` (``fsqd.behaviour.tracker``) per run, fed in window order on the
event loop. It works on stream times (so a wall-clock step never looks like a gap); the
payloads carry UNIX times under the mapping current when they are built. A stream gap ends
the segment inside the tracker; a sensor reported ``lost`` ends it here, without waiting
for the stream to come back; so does stopping. Each new segment is one ``behaviour`` log
line (not each confidence move). A SIGHUP's new ``[behaviour]`` settings
apply to the same tracker (the open segment carries on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.behaviour.tracker import BehaviourTracker, TrackerOutput, TrackerSettings
from fsqd.config.behaviour import BehaviourConfig
from fsqd.model.card import ModelCard
from fsqd.sinks.base import Sink
from fsqd.sinks.payload import event_payload, state_payload
from fsqd.types import CodeBatch

__all__ = ["BehaviourStates", "settings_of"]

# The daemon's one logger (``fsqd.daemon.telemetry.log``; named here, as telemetry imports us).
log = structlog.get_logger("fsqd.daemon")


def settings_of(cfg: BehaviourConfig) -> TrackerSettings:
    return TrackerSettings(cfg.lag_s, cfg.min_dwell_s, cfg.confidence_step)


class BehaviourStates:
    """The tracker and what it publishes, for one run of the daemon."""

    def __init__(
        self,
        card: ModelCard,
        step_s: float,
        cfg: BehaviourConfig,
        *,
        run: str,
        sinks: Sequence[Sink],
        correction: Callable[[], float],
    ) -> None:
        assert card.head is not None
        self.labels = card.head.labels
        sm = card.calibration.semi_markov if card.calibration is not None else None
        self.tracker = BehaviourTracker(self.labels, sm, step_s, settings_of(cfg))
        self.run = run
        self.sinks = sinks
        self._correction = correction  # stream time -> UNIX time, as of now
        self._logged: tuple[str, float] | None = None  # behaviour, since: the last logged
        self.states_published = 0
        self.events_published = 0

    def windows(
        self,
        seq0: int,
        codes: CodeBatch,
        t_start: npt.NDArray[np.float64],
        t_end: npt.NDArray[np.float64],
    ) -> None:
        """A batch of coded windows, in order (stream times)."""
        probs, sets = codes.probs, codes.sets
        if probs is None:
            return
        out = TrackerOutput()
        names = self.labels
        starts, ends = t_start.tolist(), t_end.tolist()
        for i in range(len(probs)):
            member = None if sets is None else tuple(names[j] for j in np.flatnonzero(sets[i]))
            out.extend(self.tracker.push(seq0 + i, starts[i], ends[i], probs[i], member))
        self._publish(out)

    def check_sensors(self, statuses: Sequence[Any]) -> None:
        """End the open segment when a sensor is lost (the daemon asks every few tenths of
        a second)."""
        if any(str(getattr(s, "state", "")) == "lost" for s in statuses):
            self.end()

    def end(self) -> None:
        self._publish(self.tracker.end())

    def configure(self, cfg: BehaviourConfig) -> None:
        self._publish(self.tracker.configure(settings_of(cfg)))

    def _publish(self, out: TrackerOutput) -> None:
        if not (out.states or out.segments):
            return
        c = self._correction()
        for seg in out.segments:
            payload = event_payload(
                run=self.run,
                behaviour=seg.behaviour,
                start=seg.start + c,
                end=seg.end + c,
                confidence=seg.confidence,
            )
            for sink in self.sinks:
                sink.publish_event(payload)
            self.events_published += 1
        for s in out.states:
            if (s.behaviour, s.since) != self._logged:  # a new segment, not a confidence move
                self._logged = (s.behaviour, s.since)
                log.info(
                    "behaviour",
                    behaviour=s.behaviour,
                    confidence=round(s.confidence, 3),
                    since=round(s.since + c, 3),
                    seq=s.seq,
                )
        if out.states:
            s = out.states[-1]  # retained: only the newest matters
            payload = state_payload(
                run=self.run,
                seq=s.seq,
                behaviour=s.behaviour,
                since=s.since + c,
                confidence=s.confidence,
                conformal_set=s.set,
            )
            for sink in self.sinks:
                sink.publish_state(payload)
            self.states_published += 1

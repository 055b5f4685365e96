"""``[behaviour]``: the behaviour states (``fsqd.behaviour.tracker``): lag, dwell, republishing.

``lag_s``: how long the explicit-duration HMM waits for later windows before it decides on
one (fixed-lag smoothing; rounded to whole windows); ``min_dwell_s``: without a duration
model in the card, how long another behaviour must lead before the state follows it;
``confidence_step``: the state is published again when its confidence has moved this much.
All three apply on SIGHUP without ending the current segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsqd.tomlcheck import Table

__all__ = ["BehaviourConfig", "parse_behaviour"]


@dataclass(frozen=True)
class BehaviourConfig:
    lag_s: float = 1.0
    min_dwell_s: float = 1.5
    confidence_step: float = 0.1


def parse_behaviour(t: Table) -> BehaviourConfig:
    cfg = BehaviourConfig(
        lag_s=t.number("lag_s", 1.0, low=0.0, high=60.0),
        min_dwell_s=t.number("min_dwell_s", 1.5, low=0.0, high=600.0),
        confidence_step=t.number("confidence_step", 0.1, low=0.0, high=1.0, low_open=True),
    )
    t.done()
    return cfg

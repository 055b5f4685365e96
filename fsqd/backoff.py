"""Capped, jittered exponential back-off: how long to wait before the next attempt.

One rule for every reconnect (the MQTT broker, the Hailo device): ``first_s`` after the
first failure, doubling, at most ``max_s``, times a random share in ``[1 - jitter, 1]`` so
that a fleet of devices that lost the same broker does not come back in step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    first_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.0  # 0: the exact delays; 0.5: each one 50-100 % of its step
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.max_s < 0 or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(
                f"back-off needs first_s, max_s >= 0, factor >= 1 and jitter in [0, 1], got "
                f"{self.first_s}, {self.max_s}, {self.factor}, {self.jitter}"
            )

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (0 and 1 both give ``first_s``)."""
        base = min(self.max_s, self.first_s * self.factor ** self._exponent(failures))
        if not self.jitter:
            return base
        return base * self.rng.uniform(1.0 - self.jitter, 1.0)

    def _exponent(self, failures: int) -> int:
        # Past the cap the exponent no longer matters, and 2.0 ** 1024 overflows: a broker
        # that stays away for a day of 60 s retries must not crash the reconnect loop.
        n = max(0, failures - 1)
        if self.factor == 1 or self.first_s <= 0:
            return 0
        cap = max(0, math.ceil(math.log(max(self.max_s, self.first_s) / self.first_s, self.factor)))
        return min(n, cap)

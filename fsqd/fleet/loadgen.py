"""A node as the collector sees it, without the sensors: the messages a day of fsqd sends.

Behaviour follows a semi-Markov chain (a behaviour, a dwell time drawn for it, the next
behaviour); each window's code is drawn from the few codes its behaviour uses, as a
trained encoder's are. Payloads have the fields and types of ``fsqd.sinks.schemas``
(codes, state, events, stats with real HdrHistogram blobs). Seeded: the same node
sends the same day every time. Used by the benchmark's load generator and the tests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from fsqd.hdrhistogram import HdrHistogram

__all__ = ["BEHAVIOURS", "Message", "NodeSim"]

BEHAVIOURS = ("rest", "walk", "trot", "eat", "groom", "shake")
# Mean dwell (s) of each behaviour, and the chance of moving to each next one.
_DWELL = {"rest": 1800.0, "walk": 300.0, "trot": 60.0, "eat": 600.0, "groom": 120.0, "shake": 4.0}
_CODES = 240  # 8 * 6 * 5 (levels of a small FSQ codebook)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    t: float  # the node's time of the message (window end, segment end, period end)
    seq: int | None = None  # codes only


@dataclass
class NodeSim:
    node: str
    seed: int
    step_s: float = 0.5  # window step: 100 samples at 100 Hz, half overlapped
    prefix: str = "fsqd"
    run: str = ""
    rng: random.Random = field(init=False)
    _seq: int = 0
    _behaviour: str = "rest"
    _until: float = 0.0
    _since: float = 0.0
    _latency: HdrHistogram = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._latency = HdrHistogram(1, 60_000_000, 3)
        if not self.run:
            self.new_run()

    def new_run(self) -> None:
        """The daemon restarted: a new run id, seq from 0 again."""
        self.run = f"{self.rng.getrandbits(64):016x}"
        self._seq = 0

    def _topic(self, kind: str) -> str:
        return f"{self.prefix}/{self.node}/{kind}"

    def _next_behaviour(self, t: float) -> Message | None:
        ended = None
        if self._until:
            duration = t - self._since
            ended = Message(
                self._topic("events"),
                json.dumps(
                    {"v": 1, "run": self.run, "type": "segment", "behaviour": self._behaviour,
                     "start": self._since, "end": t, "duration_s": duration,
                     "confidence": round(self.rng.uniform(0.6, 0.99), 3)}
                ).encode(),
                t,
            )  # fmt: skip
        others = [b for b in BEHAVIOURS if b != self._behaviour]
        self._behaviour = self.rng.choice(others)
        self._since = t
        self._until = t + self.rng.expovariate(1.0 / _DWELL[self._behaviour])
        return ended

    def windows(self, t0: float, n: int) -> Iterator[Message]:
        """``n`` windows from ``t0``: codes, and an events message when a segment ends."""
        if not self._until:
            self._since, self._until = t0, t0 + self.rng.expovariate(1.0 / _DWELL["rest"])
        base = BEHAVIOURS.index(self._behaviour)
        for i in range(n):
            t_end = t0 + i * self.step_s
            if t_end >= self._until:
                ended = self._next_behaviour(t_end)
                if ended is not None:
                    yield ended
                base = BEHAVIOURS.index(self._behaviour)
            code = (base * 40 + int(self.rng.expovariate(0.3))) % _CODES
            latency_ms = 8.0 + self.rng.expovariate(1 / 4.0)
            self._latency.record_value(int(latency_ms * 1000))
            payload = {
                "v": 1, "run": self.run, "seq": self._seq, "t_start": round(t_end - 0.99, 3),
                "t_end": round(t_end, 3), "code": code,
                "digits": [code % 8, (code // 8) % 6, (code // 48) % 5],
                "label": self._behaviour, "p": round(self.rng.uniform(0.5, 0.99), 3),
                "model": "fsqd-default@1", "clock_synced": True, "latency_ms": round(latency_ms, 3),
            }  # fmt: skip
            yield Message(self._topic("codes"), json.dumps(payload).encode(), t_end, self._seq)
            self._seq += 1

    def stats(self, t: float, interval_s: float = 60.0) -> Message:
        """The period's stats: counters and the end-to-end histogram blob, then reset."""
        blob = self._latency.encode().decode()
        self._latency.reset()
        payload = {
            "v": 1, "run": self.run, "node": self.node, "t": t, "interval_s": interval_s,
            "uptime_s": 3600.0, "backend": "onnx", "clock_synced": True,
            "latency_us": {}, "latency_us_total": {},
            "counters": {"published": self._seq, "spooled": 0, "spool_depth": 0,
                         "spool_dropped": 0, "oldest_unsent_age_s": 0.0, "reconnects": 0,
                         "connected": 1},
            "sensors": [], "hdr": {"unit": "us", "e2e": blob, "e2e_total": None},
            "plausibility": {"checks": 0, "warnings": 0, "groups": {}},
            "encoder": {"backend": "onnx"},
        }  # fmt: skip
        return Message(self._topic("stats"), json.dumps(payload).encode(), t)

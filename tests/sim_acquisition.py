"""A test sensor source with the Acquisition interface: the simulator in real time.

A thread produces samples at ``rate_hz`` stamped on the stream timeline
(``fsqd.daemon.clock.sample_time``) in chunks of ``chunk`` samples, like FIFO
burst reads, and wakes the daemon.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fsqd.chunk import SampleChunk
from fsqd.daemon.clock import sample_time
from fsqd.sim import SimConfig, Simulator


@dataclass(frozen=True)
class Status:
    name: str
    driver: str
    state: str
    rate_hz: float
    samples: int


class SimAcquisition:
    def __init__(self, rate_hz: float = 100.0, devices: int = 1, chunk: int = 2) -> None:
        self.nominal_rate_hz = rate_hz
        self.channels = 9 * devices
        self.chunk = chunk
        self.sim = Simulator(SimConfig(rate_hz=rate_hz, devices=devices, seed=1))
        self._lock = threading.Lock()
        self._out: list[SampleChunk] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.first = True
        self._block = np.zeros((0, self.channels), np.float32)

    def start(self, wake: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=self._run, args=(wake,), daemon=True)
        self._thread.start()

    def _run(self, wake: Callable[[], None]) -> None:
        t0 = time.monotonic()
        k = 0
        period = 1.0 / self.nominal_rate_hz
        while not self._stop.is_set():
            due = t0 + (k + self.chunk - 1) * period
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            x = self._next(self.chunk)
            t = np.array([sample_time(t0 + (k + i) * period) for i in range(self.chunk)])
            with self._lock:
                self._out.append(SampleChunk(t, x, new_segment=self.first))
                self.first = False
                self.samples += self.chunk
            k += self.chunk
            wake()

    def _next(self, n: int) -> np.ndarray:
        # The simulator makes samples in blocks (its noise is drawn per 4096 samples):
        # a sensor thread that costs little, like a FIFO read.
        while len(self._block) < n:
            self._block = np.concatenate([self._block, self.sim.read(1000).x])
        x, self._block = self._block[:n], self._block[n:]
        return x

    def read(self) -> list[SampleChunk]:
        with self._lock:
            out, self._out = self._out, []
        return out

    def status(self) -> list[Status]:
        return [Status("sim", "simulator", "ok", self.nominal_rate_hz, self.samples)]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

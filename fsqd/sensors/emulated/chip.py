"""The base of every emulated chip: a register file and a sample clock with its own error.

A chip samples the simulator (``fsqd.sensors.sim.Simulator``) in real time, as read from
its clock: once sampling starts at ``t_on``, sample k is taken at
``t_on + (k + 1) / true_rate`` where ``true_rate = odr * (1 + oscillator_error)``, and its
value is the simulator's at exactly that time (the simulator runs at the true rate).
Samples are produced lazily whenever the bus touches the chip, so a chip costs nothing
between reads and a ``ManualClock`` drives it as well as the real clock.

Subclasses map registers: ``on_read(reg)`` supplies a byte that is computed on read
(FIFO output, status), ``on_write(reg, value)`` reacts to configuration, and
``accept(samples)`` takes newly produced samples (push them into a FIFO, latch the
newest into output registers). Every byte written is recorded in ``writes`` so tests
can assert the configuration a driver chose.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.sensors.clock import Clock, SystemClock
from fsqd.sensors.sim import BEHAVIOURS, SimConfig, Simulator

F64 = npt.NDArray[np.float64]
# Samples simulated ahead per simulator call. Small enough that numpy keeps the GIL for
# each operation (it lets go above ~500 elements, and getting it back behind a busy
# thread costs up to the 5 ms switch interval per operation).
AHEAD = 128
FEED_AHEAD_S = 1.0  # on a real clock, a feeder thread keeps 1-2 s simulated ahead


@dataclass(frozen=True)
class Signal:
    """Which simulated animal a chip is strapped to (chips with equal seeds see one motion)."""

    seed: int = 0
    devices: int = 1  # devices the simulated animal carries
    device: int = 0  # which of them this chip is (its mounting, biases, noise)
    behaviours: tuple[str, ...] = BEHAVIOURS


class EmulatedChip:
    """A register file plus a lazily advanced sample clock."""

    who_am_i_register = 0x0F
    who_am_i_value = 0x00

    def __init__(
        self,
        address: int,
        *,
        clock: Clock | None = None,
        signal: Signal = Signal(),
        oscillator_error: float = 0.0,
        who_am_i: int | None = None,
        keep_truth: bool = False,
    ) -> None:
        self.address = address
        self.clock: Clock = clock or SystemClock()
        self.signal = signal
        self.oscillator_error = oscillator_error
        self.who_am_i = self.who_am_i_value if who_am_i is None else who_am_i
        self.keep_truth = keep_truth
        self.registers = bytearray(256)
        self.writes: list[tuple[int, int]] = []
        self.truth_t: list[F64] = []  # UNIX times of produced samples (keep_truth only)
        self.truth_x: list[F64] = []  # their (n, 9) values in SI units
        self.produced = 0  # samples taken since sampling (re)started
        self.power_cycles = 0
        self._rate = 0.0  # true sampling rate, 0 when not sampling
        self._t_on = 0.0
        self._sim: Simulator | None = None
        self._sim_lock = threading.RLock()  # the ahead buffer and the sample clock
        self._read_lock = threading.Lock()  # the simulator itself
        self._feeder: threading.Thread | None = None
        self._ahead_t = np.zeros(0)
        self._ahead_x = np.zeros((0, 9))
        self.reset()

    # -- subclass interface --

    def reset(self) -> None:
        """Registers to their power-on values; sampling stops."""
        self.registers[:] = bytes(256)
        self.registers[self.who_am_i_register] = self.who_am_i
        self.stop_sampling()

    def on_read(self, reg: int) -> int:
        return self.registers[reg]

    def on_write(self, reg: int, value: int) -> None:
        self.registers[reg] = value

    def accept(self, x: F64) -> None:
        """Take newly produced samples (n, 9), oldest first."""

    def next_register(self, reg: int) -> int:
        """Where a multi-byte access goes after ``reg`` (auto-increment)."""
        return (reg + 1) & 0xFF

    # -- sampling --

    @property
    def sampling_rate_hz(self) -> float:
        return self._rate

    def start_sampling(self, odr_hz: float) -> None:
        """(Re)start the sample clock at ``odr_hz`` nominal; sample 0 comes one period later."""
        self.advance()
        rate = odr_hz * (1.0 + self.oscillator_error)
        # The simulator runs in time relative to sample 0; advance() adds the start.
        sim = Simulator(
            SimConfig(
                rate_hz=rate,
                devices=self.signal.devices,
                behaviours=self.signal.behaviours,
                seed=self.signal.seed,
            )
        )
        with self._sim_lock:
            self._sim = sim
            self._rate = rate
            self._ahead_t = np.zeros(0)
            self._ahead_x = np.zeros((0, 9))
        realtime = isinstance(self.clock, SystemClock)
        if realtime:  # a second simulated before the clock starts: no backlog, no stall
            self._simulate(sim, max(AHEAD, int(rate * FEED_AHEAD_S)))
        with self._sim_lock:
            self._t_on = self.clock.now()
            self.produced = 0
            if realtime and self._feeder is None:
                self._feeder = threading.Thread(
                    target=self._feed, name=f"emulated-0x{self.address:02x}", daemon=True
                )
                self._feeder.start()

    def stop_sampling(self) -> None:
        with self._sim_lock:
            self._rate = 0.0
            self._sim = None

    def sample_time(self, k: int) -> float:
        """UNIX time at which sample k of the current run is (was) taken."""
        return self.clock.epoch_offset + self._t_on + (k + 1) / self._rate

    def _simulate(self, sim: Simulator, n: int) -> None:
        """Simulate ``n`` more samples and append them, unless the clock was restarted.

        Reads and appends happen together under ``_read_lock`` (taken before
        ``_sim_lock``, never the other way round), so blocks are appended in order."""
        with self._read_lock:
            if sim is not self._sim:
                return
            rec = sim.read(n)
            with self._sim_lock:
                if sim is self._sim:
                    d = self.signal.device
                    self._ahead_t = np.concatenate([self._ahead_t, rec.t])
                    self._ahead_x = np.concatenate(
                        [self._ahead_x, rec.x[:, 9 * d : 9 * d + 9].astype(np.float64)]
                    )

    def _feed(self) -> None:
        """On a real clock, simulate ahead in this thread, in big blocks and outside the
        chip's lock: numpy lets go of the GIL in each operation and, behind a busy
        thread, waits up to 5 ms to win it back, so the reading thread must not wait
        for a simulation."""
        while True:
            with self._sim_lock:
                sim = self._sim
                if sim is None:  # stopped (powered down, reset, closed): so is the feeder
                    self._feeder = None
                    return
                short = len(self._ahead_t) < 2 * self._rate * FEED_AHEAD_S
                block = max(AHEAD, int(self._rate * FEED_AHEAD_S))
            if not short:
                time.sleep(0.05)
                continue
            self._simulate(sim, block)

    def advance(self) -> None:
        """Produce every sample due by now."""
        while True:
            with self._sim_lock:
                sim = self._sim
                if sim is None:
                    return
                due = math.floor((self.clock.now() - self._t_on) * self._rate + 1e-9)
                n = due - self.produced
                if n <= 0:
                    return
                missing = n - len(self._ahead_t)
                if missing <= 0:
                    t = self._ahead_t[:n] + self.sample_time(0)  # relative -> UNIX time
                    x = self._ahead_x[:n]
                    self._ahead_t, self._ahead_x = self._ahead_t[n:], self._ahead_x[n:]
                    self.produced = due
                    break
            # Simulate ahead in blocks: a register read then costs the same whether or
            # not a sample falls due during it, as on a real chip.
            self._simulate(sim, max(missing, AHEAD))
        if self.keep_truth:
            self.truth_t.append(t)
            self.truth_x.append(x)
        self.accept(x)

    def truth(self) -> tuple[F64, F64]:
        """All kept (t, x) so far, concatenated."""
        if not self.truth_t:
            return np.zeros(0), np.zeros((0, 9))
        return np.concatenate(self.truth_t), np.concatenate(self.truth_x)

    def power_cycle(self) -> None:
        """The chip lost power and came back: every register at its reset value."""
        self.power_cycles += 1
        self.reset()

    # -- bus side --

    def read(self, reg: int, n: int) -> bytes:
        self.advance()
        out = bytearray()
        for _ in range(n):
            out.append(self.on_read(reg) & 0xFF)
            reg = self.next_register(reg)
        return bytes(out)

    def write(self, reg: int, data: bytes) -> None:
        self.advance()
        for value in data:
            self.writes.append((reg, value))
            self.on_write(reg, value)
            reg = self.next_register(reg)

    def written(self, reg: int) -> list[int]:
        """Every value written to ``reg``, in order."""
        return [v for r, v in self.writes if r == reg]


def to_codes(values: F64, lsb: float) -> npt.NDArray[np.int16]:
    """SI values -> signed 16-bit output codes at ``lsb`` units per code, saturating."""
    return np.clip(np.round(values / lsb), -32768, 32767).astype(np.int16)


__all__ = ["EmulatedChip", "Signal", "to_codes"]

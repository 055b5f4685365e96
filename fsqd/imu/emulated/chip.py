"""The base of every emulated chip: a register file and a sample clock with its own error.

A chip samples the simulator (``fsqd.sim.Simulator``) in real time, as read from
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

Two helpers for what every chip has besides its signal: ``die_temperature_c(t)`` (a
plausible die temperature, per chip, drifting slowly) and ``SelfTestStimulus`` (the
output change a chip's self-test adds, settling exponentially when switched, with the
``self_test_fault=`` of ``SELF_TEST_FAULTS`` a test can build a failing chip with).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.clock import Clock, SystemClock
from fsqd.osthread import name_os_thread
from fsqd.sim.simulator import SimConfig, Simulator
from fsqd.units import BEHAVIOURS

F64 = npt.NDArray[np.float64]
# Samples simulated ahead per simulator call. Small enough that numpy keeps the GIL for
# each operation (it lets go above ~500 elements, and getting it back behind a busy
# thread costs up to the 5 ms switch interval per operation).
AHEAD = 128
FEED_AHEAD_S = 1.0  # on a real clock, a feeder thread keeps 1-2 s simulated ahead
DRIFT_PERIOD_S = 1800.0  # the die temperature's slow cycle (room, sun, the animal)
# A failing self-test: one axis gives no response, or every axis far too little / much.
SELF_TEST_FAULTS = ("dead-x", "dead-y", "dead-z", "weak", "strong")
SELF_TEST_GAINS = {"weak": 0.05, "strong": 4.0}
SELF_TEST_AXES = tuple(f"{s}_{a}" for s in ("accel", "gyro", "mag") for a in "xyz")


def self_test_gains(fault: str | Mapping[str, float] | None) -> dict[str, float]:
    """Per-axis gains ("accel_x" .. "mag_z") on a self-test response: from one of
    ``SELF_TEST_FAULTS`` (what ``fsqd probe --emulated-fault`` names), or given axis by axis."""
    if fault is None:
        return {}
    if isinstance(fault, str):
        if fault not in SELF_TEST_FAULTS:
            raise ValueError(f"self_test_fault {fault!r}: one of {', '.join(SELF_TEST_FAULTS)}")
        if fault.startswith("dead-"):
            return {f"{s}_{fault[-1]}": 0.0 for s in ("accel", "gyro", "mag")}
        return dict.fromkeys(SELF_TEST_AXES, SELF_TEST_GAINS[fault])
    unknown = set(fault) - set(SELF_TEST_AXES)
    if unknown:
        raise ValueError(f"self_test_fault: unknown axes {sorted(unknown)}")
    return dict(fault)


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
        self_test_fault: str | None = None,
    ) -> None:
        if self_test_fault is not None and self_test_fault not in SELF_TEST_FAULTS:
            raise ValueError(
                f"self_test_fault {self_test_fault!r}: one of {', '.join(SELF_TEST_FAULTS)}"
            )
        self.self_test_fault = self_test_fault
        # Per chip and seed: the die's offset from ambient and where in its drift it is.
        rng = np.random.default_rng([signal.seed, signal.device, address, 23])
        self._ambient_c = float(rng.uniform(20.0, 30.0))
        self._drift_phase = float(rng.uniform(0.0, 2 * math.pi))
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
        name_os_thread("fsqd-emulator")  # its CPU is the emulator's, not the daemon's
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

    def die_temperature_c(self, t: float | None = None) -> float:
        """The die temperature at clock time ``t`` (now by default): an ambient of 20-30
        C per chip and seed, drifting +-1.5 C over half an hour."""
        t = self.clock.now() if t is None else t
        return self._ambient_c + 1.5 * math.sin(
            2 * math.pi * t / DRIFT_PERIOD_S + self._drift_phase
        )

    def self_test_response(self, typical: F64, low: F64, high: F64) -> F64:
        """This chip's deterministic self-test response per axis: drawn in [low, high]
        (a healthy part's spread around ``typical``), then ``self_test_fault`` applied."""
        rng = np.random.default_rng([self.signal.seed, self.signal.device, self.address, 29])
        response = np.clip(typical * rng.uniform(0.8, 1.2, 3), low, high)
        fault = self.self_test_fault
        if fault is not None and fault.startswith("dead-"):
            response["xyz".index(fault[-1])] = 0.0
        elif fault in SELF_TEST_GAINS:
            response = response * SELF_TEST_GAINS[fault]
        return response

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


class SelfTestStimulus:
    """A self-test actuation (electrostatic force, coil current) per axis, in output
    units: when switched, the output moves to the new value with time constant ``tau_s``
    (which is why the datasheets wait before averaging)."""

    def __init__(self, tau_s: float) -> None:
        self.tau_s = tau_s
        self._from = np.zeros(3)
        self._to = np.zeros(3)
        self._at = -math.inf

    def switch(self, target: F64, at: float) -> None:
        self._from = self.at(np.array([at]))[0]
        self._to = np.asarray(target, np.float64)
        self._at = at

    def off(self) -> None:
        self._from = self._to = np.zeros(3)

    def at(self, t: F64) -> F64:
        """(n, 3) stimulus at times ``t`` (the same clock as ``switch``)."""
        k = np.exp(-np.maximum(np.asarray(t, np.float64) - self._at, 0.0) / self.tau_s)
        return self._to + np.outer(k, self._from - self._to)


def to_codes(values: F64, lsb: float) -> npt.NDArray[np.int16]:
    """SI values -> signed 16-bit output codes at ``lsb`` units per code, saturating."""
    return np.clip(np.round(values / lsb), -32768, 32767).astype(np.int16)


__all__ = [
    "SELF_TEST_FAULTS",
    "EmulatedChip",
    "SelfTestStimulus",
    "Signal",
    "self_test_gains",
    "to_codes",
]

"""The daemon's live path: which resampling kernel a source gets, how it reads, what the
event loop is spared."""

from __future__ import annotations

import asyncio
import gc
import io
from pathlib import Path

from test_daemon import codes, make_config

from fsqd.daemon import Daemon
from fsqd.sinks.jsonl import JsonLinesSink
from fsqd.testing import SimulatedAcquisition


class Filtered(SimulatedAcquisition):
    """A source that says what its chip's own low-pass leaves (as ``Acquisition`` does)."""

    def __init__(self, bandwidth_hz: float, **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.bandwidth_hz = bandwidth_hz


class Hinted(SimulatedAcquisition):
    """Keeps the daemon's read hints."""

    def __init__(self) -> None:
        super().__init__(rate_hz=104.0, chunk=2)
        self.hints: list[tuple[float, float, int]] = []

    def want(self, t_end: float, every_s: float, after: int) -> None:
        self.hints.append((t_end, every_s, after))


def daemon(tmp_path: Path, acq: SimulatedAcquisition, out: io.StringIO, seconds: float) -> Daemon:
    return Daemon(
        make_config(tmp_path, "[window]\nhop = 10\n"),
        acquisition=acq,
        sinks=[JsonLinesSink(out)],
        duration_s=seconds,
        handle_signals=False,
    )


def test_a_filtered_104_hz_chip_is_interpolated_linearly_an_unfiltered_one_is_not(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    linear = daemon(tmp_path, Filtered(33.0, rate_hz=104.0, chunk=2), out, 2.0)
    assert linear.stream.resampler is not None and linear.stream.resampler.kernel == "linear"
    assert asyncio.run(linear.run()) == 0
    assert len(codes(out)) >= 5
    open_band = daemon(tmp_path, Filtered(51.2, rate_hz=104.0), io.StringIO(), 1.0)
    assert open_band.stream.resampler is not None
    assert open_band.stream.resampler.kernel == "sinc"


def test_each_window_tells_the_source_how_far_past_its_end_to_read(tmp_path: Path) -> None:
    acq = Hinted()
    d = daemon(tmp_path, acq, io.StringIO(), 2.0)
    assert asyncio.run(d.run()) == 0
    assert len(acq.hints) >= 5
    # The 4-tap kernel (no bandwidth known): two samples past the end; hop 10 at 100 Hz.
    assert {(every, after) for _, every, after in acq.hints} == {(0.1, 2)}


def test_start_up_objects_are_frozen_out_of_the_collectors_walks(tmp_path: Path) -> None:
    """A full collection walks every tracked object: tens of ms of the event loop with the
    model and the libraries loaded. The daemon freezes what start-up built."""
    gc.unfreeze()
    seen: list[int] = []

    class Probe(SimulatedAcquisition):
        def start(self, wake: object) -> None:
            seen.append(gc.get_freeze_count())
            super().start(wake)  # type: ignore[arg-type]

    try:
        assert asyncio.run(daemon(tmp_path, Probe(), io.StringIO(), 0.5).run()) == 0
        assert seen and seen[0] > 10_000, seen
    finally:
        gc.unfreeze()


def test_the_acquisition_and_emulator_threads_carry_their_names_for_the_kernel() -> None:
    """/proc/PID/task/*/comm tells their CPU apart from the event loop's (bench_live)."""
    from waiting import wait_until

    from fsqd.clock import SystemClock
    from fsqd.imu.acquire.acquisition import open_acquisition
    from fsqd.testing import one_sensor, sensors_from

    def names() -> set[str]:
        tasks = Path("/proc/self/task")
        return {(t / "comm").read_text().strip() for t in tasks.iterdir()}

    acq = open_acquisition(sensors_from(one_sensor(104)), 1, clock=SystemClock())
    acq.start(lambda: None)
    try:
        wait_until(lambda: {"fsqd-acquire", "fsqd-emulator"} <= names(), what="thread names")
    finally:
        acq.stop()


def test_the_imu_acquisition_gives_the_daemon_read_hints_and_its_band_limit() -> None:
    """fsqd.imu's acquisition is what the daemon's optional contracts describe (a simulated
    source is neither: it is read when it wakes the daemon, through the long kernel)."""
    from fsqd.daemon.contracts import BandLimited, ReadHints
    from fsqd.imu.acquire.acquisition import open_acquisition
    from fsqd.testing import ManualClock, one_sensor, sensors_from

    acq = open_acquisition(sensors_from(one_sensor(104)), 1, clock=ManualClock())
    assert isinstance(acq, ReadHints) and isinstance(acq, BandLimited)
    assert 0 < acq.bandwidth_hz < 50  # the LSM6DSOX's LPF2 at 104 Hz
    sim = SimulatedAcquisition()
    assert not isinstance(sim, ReadHints) and not isinstance(sim, BandLimited)


def test_worker_pools_name_their_threads_for_the_kernel() -> None:
    """The inference, spool and onnxruntime session workers show by name in top -H."""
    import threading

    from fsqd.osthread import named_executor

    def comm() -> str:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    with named_executor("fsqd-spool") as pool:
        assert pool.submit(comm).result(timeout=10) == "fsqd-spool"

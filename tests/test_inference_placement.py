"""The encoder runs on the event loop's thread only while single-window calls are fast."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from test_daemon import make_config

from fsqd.backends.onnx import OnnxEncoder
from fsqd.daemon import Daemon
from fsqd.daemon.placement import InferencePlacement, placement_for
from fsqd.sinks.jsonl import JsonLinesSink
from fsqd.testing import SimulatedAcquisition


def test_a_run_of_fast_single_calls_qualifies_and_one_slow_call_disqualifies() -> None:
    p = InferencePlacement(fast_s=0.002, qualifying_calls=3)
    assert not p.inline(1)
    for _ in range(3):
        p.observe(1, 0.0005)
    assert p.inline(1)
    p.observe(1, 0.0021)  # one slow call: back to the worker, qualify again
    assert not p.inline(1)
    for _ in range(2):
        p.observe(1, 0.0005)
    assert not p.inline(1)
    p.observe(1, 0.0005)
    assert p.inline(1)


def test_batches_of_several_windows_always_go_to_the_worker() -> None:
    p = InferencePlacement(fast_s=0.002, qualifying_calls=1)
    p.observe(1, 0.0001)
    assert p.inline(1)
    assert not p.inline(2) and not p.inline(64)
    # Their time (however short or long) neither qualifies nor disqualifies.
    p.observe(8, 0.5)
    assert p.inline(1)
    q = InferencePlacement(fast_s=0.002, qualifying_calls=1)
    q.observe(8, 0.0001)
    assert not q.inline(1)


class ThreadNoting:
    """The real encoder, noting the thread and batch size of each call."""

    name = "noting-onnx"
    host_only = True

    def __init__(self, inner: OnnxEncoder, delay_s: float = 0.0) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.calls: list[tuple[int, int]] = []  # (thread id, windows)

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls.append((threading.get_ident(), len(x)))
        if self.delay_s:
            time.sleep(self.delay_s)  # the encoder under test is slow; nothing waits on it
        return self.inner(x)

    def close(self) -> None:
        self.inner.close()


def run_daemon(tmp_path: Path, encoder: ThreadNoting, placement: InferencePlacement) -> int:
    config = make_config(tmp_path, "[window]\nhop = 5\n")
    out = io.StringIO()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(out)],
        encoder=encoder,
        duration_s=2.5,
        handle_signals=False,
    )
    daemon.placement = placement
    assert asyncio.run(daemon.run()) == 0
    coded = len(out.getvalue().splitlines())
    assert coded == sum(n for _, n in encoder.calls) == daemon.counters.windows
    return threading.get_ident()  # asyncio.run's loop runs on this thread


def test_fast_single_window_calls_move_onto_the_event_loop_thread(tmp_path: Path) -> None:
    enc = ThreadNoting(OnnxEncoder(make_config(tmp_path).model.package))
    loop_thread = run_daemon(tmp_path, enc, InferencePlacement(fast_s=5.0, qualifying_calls=4))
    threads = [t for t, _ in enc.calls]
    assert len(threads) > 10
    # The first four calls qualify on the worker; single-window calls after them are inline.
    assert loop_thread not in threads[:4]
    inline = [n for t, n in enc.calls if t == loop_thread]
    assert len(inline) >= len(threads) - 4 - sum(1 for _, n in enc.calls if n > 1)
    assert inline and set(inline) == {1}


def test_slow_calls_stay_on_the_worker(tmp_path: Path) -> None:
    enc = ThreadNoting(OnnxEncoder(make_config(tmp_path).model.package), delay_s=0.004)
    loop_thread = run_daemon(tmp_path, enc, InferencePlacement(fast_s=0.002, qualifying_calls=1))
    assert len(enc.calls) > 10
    assert all(t != loop_thread for t, _ in enc.calls)


class DeviceLike:
    """A fast encoder that is not host-only (as the NPU's: a call may block for a rebuild)."""

    name = "device"

    def __init__(self, inner: OnnxEncoder) -> None:
        self.inner = inner

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self.inner(x)

    def close(self) -> None:
        self.inner.close()


def test_a_disabled_placement_never_runs_inline() -> None:
    p = InferencePlacement(fast_s=1.0, qualifying_calls=1, enabled=False)
    for _ in range(5):
        p.observe(1, 0.0001)
    assert not p.inline(1)


def test_only_an_encoder_that_computes_on_the_host_alone_may_run_inline(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    onnx = OnnxEncoder(config.model.package)
    assert placement_for(onnx).enabled
    assert not placement_for(DeviceLike(onnx)).enabled
    # The daemon decides from the encoder it runs.
    for encoder, inline in ((onnx, True), (DeviceLike(onnx), False)):
        daemon = Daemon(
            config,
            acquisition=SimulatedAcquisition(chunk=2),
            sinks=[JsonLinesSink(io.StringIO())],
            encoder=encoder,
            handle_signals=False,
        )
        assert daemon.placement.enabled is inline

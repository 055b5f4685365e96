"""Batches encoded ahead of the reader: order kept, both sessions busy, early exit waits."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest

from fsqd.backends.inflight import encode_ahead
from fsqd.backends.onnx import OnnxEncoder
from fsqd.model.card import expected_input_shape
from fsqd.model.package import ModelPackage


def batches(pkg: ModelPackage, sizes: list[int]) -> list[np.ndarray]:
    shape = expected_input_shape(pkg.card)
    rng = np.random.default_rng(len(sizes))
    return [rng.normal(size=(n, *shape)).astype(np.float32) for n in sizes]


class Recorded:
    """A real encoder whose submissions are remembered (to see what is in flight)."""

    def __init__(self, encoder: OnnxEncoder) -> None:
        self.encoder = encoder
        self.futures: list[Future[np.ndarray]] = []
        self.name = encoder.name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.encoder(x)

    @property
    def lanes(self) -> int:
        return self.encoder.lanes

    def submit(self, x: np.ndarray) -> Future[np.ndarray]:
        f = self.encoder.submit(x)
        self.futures.append(f)
        return f

    def close(self) -> None:
        self.encoder.close()


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("sizes", [[256, 256, 256], [256, 3, 256, 3, 256, 100], [5]])
def test_results_come_back_in_order_with_their_own_items(
    pkg_d2: ModelPackage, depth: int, sizes: list[int]
) -> None:
    xs = batches(pkg_d2, sizes)
    single = OnnxEncoder(pkg_d2, threads=2, sessions=1)
    want = [single(x) for x in xs]
    enc = Recorded(OnnxEncoder(pkg_d2, threads=2))
    # Big and small batches alternate: a small one finishes before the big one before it.
    got = list(encode_ahead(enc, enumerate(xs), lambda item: item[1], depth))
    assert [item[0] for _, item, _ in got] == list(range(len(xs)))
    for (y, _, ns), w in zip(got, want, strict=True):
        assert y.tobytes() == w.tobytes() and ns > 0
    # depth 1 runs each batch in turn; deeper keeps that many started.
    assert len(enc.futures) == (0 if depth < 2 else len(xs))
    enc.close()
    single.close()


def test_the_next_batch_is_started_before_the_last_is_read(pkg_d2: ModelPackage) -> None:
    xs = batches(pkg_d2, [256] * 4)
    enc = Recorded(OnnxEncoder(pkg_d2, threads=2))
    it = encode_ahead(enc, iter(xs), lambda x: x, 2)
    next(it)
    assert len(enc.futures) == 2  # batch 0 is read while batch 1 is being encoded
    rest = list(it)
    assert len(rest) == 3
    enc.close()


def test_leaving_early_waits_for_the_batches_in_flight(pkg_d2: ModelPackage) -> None:
    xs = batches(pkg_d2, [256] * 6)
    enc = Recorded(OnnxEncoder(pkg_d2, threads=2))
    it = encode_ahead(enc, iter(xs), lambda x: x, 3)
    next(it)
    it.close()  # the caller stops (an output error, say) and will reuse the buffers
    assert enc.futures and all(f.done() for f in enc.futures)
    enc.close()


def test_an_encoder_error_reaches_the_reader(pkg_d2: ModelPackage) -> None:
    good = batches(pkg_d2, [8])[0]
    bad = np.zeros((8, 3), np.float32)  # the wrong input shape: onnxruntime refuses it
    enc = OnnxEncoder(pkg_d2, threads=2)
    it = encode_ahead(enc, iter([good, bad, good]), lambda x: x, 2)
    assert next(it)[0].shape == (8, 5)
    with pytest.raises(Exception, match=r"(?i)invalid|rank|dimension"):
        next(it)
    enc.close()


class _Clock:
    """A nanosecond clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class _Job(Future[np.ndarray]):
    """A batch on a simulated worker, done at ``due`` on the clock."""

    def __init__(self, encoder: _LaneEncoder, due: int, y: np.ndarray) -> None:
        super().__init__()
        self.encoder, self.due, self.y = encoder, due, y

    def result(self, timeout: float | None = None) -> np.ndarray:
        self.encoder.run_until(self.due)
        return super().result(timeout)


class _LaneEncoder:
    """Lanes taking batches in turn, each in order, batch k costing ``costs[k]`` ns; time
    moves (and batches finish, in time order) only when a result is awaited."""

    name = "lanes"

    def __init__(self, clock: _Clock, lanes: int, costs: list[int]) -> None:
        self.clock, self.lanes, self.costs = clock, lanes, costs
        self.free = [0] * lanes  # when each lane is done with what it has
        self.turn = 0
        self.pending: list[_Job] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x

    def submit(self, x: np.ndarray) -> Future[np.ndarray]:
        lane = self.turn % len(self.free)
        self.free[lane] = max(self.free[lane], self.clock.now) + self.costs[self.turn]
        self.turn += 1
        job = _Job(self, self.free[lane], x)
        self.pending.append(job)
        return job

    def run_until(self, due: int) -> None:
        for job in sorted(self.pending, key=lambda j: j.due):
            if job.due > due:
                break
            self.pending.remove(job)
            self.clock.now = max(self.clock.now, job.due)
            job.set_result(job.y)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("lanes", "depth"), [(1, 1), (1, 3), (2, 2), (2, 4), (2, 5)])
def test_a_batch_queued_behind_another_is_timed_from_its_start(
    monkeypatch: pytest.MonkeyPatch, lanes: int, depth: int
) -> None:
    """More batches in flight than lanes: each one's time is its own run, not its wait
    behind the batch before it on the same lane (the replay's 'infer' stage)."""
    clock = _Clock()
    monkeypatch.setattr("fsqd.backends.inflight.time.perf_counter_ns", clock)
    cost = 1_000_000
    enc = _LaneEncoder(clock, lanes, [cost] * 9)
    xs = [np.full((2, 1), i, np.float32) for i in range(9)]
    got = list(encode_ahead(enc, iter(xs), lambda x: x, depth))
    assert [y.tobytes() for y, _, _ in got] == [x.tobytes() for x in xs]
    if depth >= 2:
        assert [ns for _, _, ns in got] == [cost] * len(xs)


def test_an_encoder_that_hides_a_lane_never_gets_a_negative_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two real lanes, one declared: a short batch finishes before the long one taken as
    its lane's last; it is then timed from its hand-over, never below zero."""
    clock = _Clock()
    monkeypatch.setattr("fsqd.backends.inflight.time.perf_counter_ns", clock)
    ms = 1_000_000
    enc = _LaneEncoder(clock, 2, [5 * ms, ms, ms, ms])
    enc.lanes = 1
    got = list(encode_ahead(enc, iter([np.zeros((1, 1), np.float32)] * 4), lambda x: x, 4))
    # Batch 1 (lane 1) is done at 1 ms, before batch 0 (5 ms): from its hand-over, 1 ms.
    # Batch 3 (lane 1, 2 ms) likewise; batch 2 (lane 0, 6 ms) from batch 1's finish.
    assert [ns for _, _, ns in got] == [5 * ms, ms, 5 * ms, 2 * ms]


def test_the_onnx_encoder_has_a_lane_per_session(pkg_d2: ModelPackage) -> None:
    two, one = OnnxEncoder(pkg_d2, threads=2), OnnxEncoder(pkg_d2, threads=2, sessions=1)
    assert (two.lanes, one.lanes) == (2, 1)
    two.close()
    one.close()

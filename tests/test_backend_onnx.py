"""The onnxruntime encoder backend: encoders exported or compiled with a fixed batch size."""

from __future__ import annotations

import gc
import itertools
import shutil
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import parity

from fsqd.backends.onnx import OnnxEncoder, session_threads
from fsqd.errors import UsageError
from fsqd.model.card import expected_input_shape
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline


def fixed_batch_package(pkg: ModelPackage, tmp_path: Path, batch: int) -> ModelPackage:
    """A copy of ``pkg`` whose encoder input and output have batch size ``batch`` baked in,
    the way NPU compilers and `torch.onnx.export` without dynamic_axes leave them."""
    dst = tmp_path / f"fixed{batch}"
    shutil.copytree(pkg.path, dst)
    model = onnx.load(str(dst / "encoder.onnx"))
    for value in [*model.graph.input, *model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    onnx.checker.check_model(model)
    onnx.save(model, str(dst / "encoder.onnx"))
    return load_package(dst)


@pytest.mark.parametrize("batch", [4, 1])
@pytest.mark.parametrize("n", [0, 1, 3, 4, 10, 256])
def test_fixed_batch_encoder_gives_the_dynamic_encoders_answers(
    pkg_d2: ModelPackage, tmp_path: Path, batch: int, n: int
) -> None:
    x = np.tile(parity("m13_d2")["x"], (4, 1, 1, 1))[:n]
    want = OnnxEncoder(pkg_d2)(x)
    enc = OnnxEncoder(fixed_batch_package(pkg_d2, tmp_path, batch))
    assert enc.fixed_batch == batch
    got = enc(x)
    assert got.shape == (n, 5)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_fixed_batch_pipeline_matches_torch(pkg_d2: ModelPackage, tmp_path: Path) -> None:
    want = parity("m13_d2")
    pipe = CodePipeline(fixed_batch_package(pkg_d2, tmp_path, 8))
    got = pipe.encode(want["x"][:61])  # 7 full batches and 5 padded rows
    np.testing.assert_array_equal(got.index, want["indices"][:61])


def test_dynamic_batch_is_not_sliced(pkg_d2: ModelPackage) -> None:
    enc = OnnxEncoder(pkg_d2)
    assert enc.fixed_batch is None
    assert enc(np.tile(parity("m13_d2")["x"], (5, 1, 1, 1))).shape == (320, 5)


# Two sessions on alternate batches ------------------------------------------------------


class CountingSession:
    """A real onnxruntime session that records which batches it ran."""

    def __init__(self, session: Any, log: list[tuple[int, int]], which: int) -> None:
        self._session, self._log, self._which = session, log, which
        self.inputs: list[bytes] = []

    def run(self, output: list[str], feeds: dict[str, np.ndarray]) -> Any:
        (x,) = feeds.values()
        self._log.append((self._which, len(x)))
        self.inputs.append(x.tobytes())
        return self._session.run(output, feeds)


def windows(pkg: ModelPackage, n: int, seed: int = 0) -> np.ndarray:
    """Distinct, realistically scaled (normalised) windows: every row differs."""
    shape = expected_input_shape(pkg.card)
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("threads", "sessions", "want"),
    [(1, None, [1]), (2, None, [1, 1]), (3, None, [2, 1]), (4, None, [2, 2]), (2, 1, [2])],
)
def test_threads_are_the_total_over_at_most_two_sessions(
    threads: int, sessions: int | None, want: list[int]
) -> None:
    assert session_threads(threads, sessions) == want


def test_default_threads_are_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0})
    assert session_threads(None) == [1]
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1, 2, 3})
    assert session_threads(None) == [2, 2]


@pytest.mark.parametrize(
    ("threads", "sessions", "match"),
    [(0, None, "at least 1, got 0"), (2, 3, "3 onnxruntime sessions"), (2, 0, "0 onnxruntime")],
)
def test_impossible_thread_plans_are_usage_errors(
    threads: int, sessions: int | None, match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        session_threads(threads, sessions)


@pytest.fixture(scope="module")
def pair_and_single(pkg_d2: ModelPackage) -> Iterator[tuple[OnnxEncoder, OnnxEncoder]]:
    """Two 1-thread sessions, and one 2-thread session (the encoder before there were two)."""
    pair = OnnxEncoder(pkg_d2, threads=2)
    single = OnnxEncoder(pkg_d2, threads=2, sessions=1)
    assert len(pair.sessions) == 2 and pair.threads == [1, 1]
    assert len(single.sessions) == 1 and single.threads == [2]
    yield pair, single
    pair.close()
    single.close()


@pytest.mark.parametrize("n", [0, 1, 63, 64, 255, 256, 257, 700])
def test_two_sessions_give_the_single_sessions_bytes(
    pair_and_single: tuple[OnnxEncoder, OnnxEncoder], pkg_d2: ModelPackage, n: int
) -> None:
    pair, single = pair_and_single
    x = windows(pkg_d2, n)
    want = single(x)
    got = pair(x)  # a call of 64 or more is shared between the sessions
    assert got.shape == want.shape and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("sizes", [[256] * 4, [256, 256, 256, 37], [256] * 5 + [1], [3, 256, 7]])
def test_submitted_batches_alternate_and_come_back_to_their_own_inputs(
    pkg_d2: ModelPackage, sizes: list[int]
) -> None:
    x = windows(pkg_d2, sum(sizes), seed=len(sizes))
    single = OnnxEncoder(pkg_d2, threads=2, sessions=1)
    want = single(x)
    pair = OnnxEncoder(pkg_d2, threads=2)
    log: list[tuple[int, int]] = []
    pair.sessions = [CountingSession(s, log, i) for i, s in enumerate(pair.sessions)]
    cuts = np.cumsum([0, *sizes])
    futures = [pair.submit(x[a:b]) for a, b in itertools.pairwise(cuts)]
    got = [f.result() for f in futures]
    for (a, b), y in zip(itertools.pairwise(cuts), got, strict=True):
        assert y.tobytes() == want[a:b].tobytes()
    # Batch k ran on session k % 2, each session in submission order.
    assert sorted(log) == sorted((k % 2, size) for k, size in enumerate(sizes))
    for which in (0, 1):
        assert [s for w, s in log if w == which] == sizes[which::2]
    pair.close()
    single.close()


@pytest.mark.parametrize("batch", [4, 8])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 61, 256])
def test_fixed_batch_encoder_with_two_sessions_pads_the_same(
    pkg_d2: ModelPackage, tmp_path: Path, batch: int, n: int
) -> None:
    pkg = fixed_batch_package(pkg_d2, tmp_path, batch)
    x = windows(pkg_d2, n, seed=n)
    single = OnnxEncoder(pkg, threads=2, sessions=1)
    pair = OnnxEncoder(pkg, threads=2)
    log: list[tuple[int, int]] = []
    one = CountingSession(single.sessions[0], [], 0)
    single.sessions = [one]
    pair.sessions = [CountingSession(s, log, i) for i, s in enumerate(pair.sessions)]
    want = single(x)
    assert pair(x).tobytes() == want.tobytes()
    # Every run had exactly the fixed batch size, padded where the rows ran out, and the
    # same rows together as with one session.
    assert {size for _, size in log} == {batch}
    assert sorted(s for c in pair.sessions for s in c.inputs) == sorted(one.inputs)
    if n > batch:
        assert {which for which, _ in log} == {0, 1}  # a long call used both sessions
    assert pair.submit(x).result().tobytes() == want.tobytes()
    pair.close()
    single.close()


def test_close_finishes_submitted_batches_and_releases_the_sessions(pkg_d2: ModelPackage) -> None:
    before = set(threading.enumerate())
    enc = OnnxEncoder(pkg_d2, threads=2)
    refs = [weakref.ref(s) for s in enc.sessions]
    x = windows(pkg_d2, 256)
    futures = [enc.submit(x), enc.submit(x)]
    enc.close()
    assert all(f.done() and f.result().shape == (256, 5) for f in futures)
    gc.collect()
    assert all(r() is None for r in refs), "an onnxruntime session outlived close()"
    assert set(threading.enumerate()) <= before, "a session's worker thread outlived close()"
    enc.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        enc.submit(x)
    with pytest.raises(RuntimeError, match="closed"):
        enc(x)


def test_sessions_plan_no_memory_pattern(pkg_d2: ModelPackage) -> None:
    """A memory pattern costs 20-50 MB of peak RSS per session at batch 256 (measured with
    tools/bench_replay.py --day); every session fsqd opens goes without."""
    enc = OnnxEncoder(pkg_d2, threads=2)
    for session in enc.sessions:
        opts = session.get_session_options()
        assert not opts.enable_mem_pattern and opts.intra_op_num_threads == 1
    enc.close()

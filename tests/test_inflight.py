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

    def submit(self, x: np.ndarray) -> Future[np.ndarray]:
        f = self.encoder.submit(x)
        self.futures.append(f)
        return f

    def close(self) -> None:
        self.encoder.close()


@pytest.mark.parametrize("depth", [1, 2, 3])
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

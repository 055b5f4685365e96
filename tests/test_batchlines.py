"""Batch-formatted JSON lines are byte for byte the per-window formatter's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fsqd.model.card import expected_input_shape
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodeBatch, CodePipeline
from fsqd.sinks.batchlines import BatchLineFormatter
from fsqd.sinks.payload import LineFormatter


def codes(pkg: ModelPackage, n: int, seed: int) -> CodeBatch:
    shape = expected_input_shape(pkg.card)
    x = np.random.default_rng(seed).normal(size=(max(n, 1), *shape)).astype(np.float32)
    b = CodePipeline(pkg).encode(x)
    if n:
        return b
    return CodeBatch(  # an empty batch (the head cannot run on none)
        b.index[:0],
        b.digits[:0],
        b.codes[:0],
        None if b.label_id is None else b.label_id[:0],
        None if b.p is None else b.p[:0],
    )


@pytest.mark.parametrize("model", ["bundled", "no head"])
@pytest.mark.parametrize("timed", [True, False])
@pytest.mark.parametrize("tag", ["fsqd-sim-behaviour@1.0.0", 'odd "100%" tag\\ü'])
def test_batch_lines_are_the_window_lines(
    pkg_nohead: ModelPackage, model: str, timed: bool, tag: str
) -> None:
    pkg = load_package(None) if model == "bundled" else pkg_nohead
    labels = pkg.card.head.labels if pkg.card.head is not None else None
    want, got = LineFormatter(tag, labels), BatchLineFormatter(tag, labels)
    seq = 0
    t0 = 1_795_334_400.0
    for n, seed in [(256, 1), (256, 2), (0, 3), (1, 4), (37, 5), (256, 1)]:
        batch = codes(pkg, n, seed)
        t_start = t0 + np.arange(seq, seq + n) * 0.1 if timed else None
        t_end = t_start + 0.99 if t_start is not None else None
        text = got(seq, batch, t_start, t_end)
        assert text == want(seq, batch, t_start, t_end)
        assert len(text.splitlines()) == n
        for line in text.splitlines():
            assert json.loads(line)["model"] == tag
        seq += n
    assert 1 < len(got._codes) <= pkg.card.codebook_size  # one cached piece per code seen

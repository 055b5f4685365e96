"""Batch-formatted JSON lines are byte for byte a plain per-window f-string formatter's."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest

from fsqd.model.card import expected_input_shape
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline
from fsqd.sinks.batchlines import BatchLineFormatter
from fsqd.types import CodeBatch


class LineFormatter:
    """The per-window f-string formatter fsqd used before batching: an independent reference."""

    def __init__(self, model_tag: str, labels: tuple[str, ...] | None) -> None:
        self._model = json.dumps(model_tag)
        self._labels = [json.dumps(s) for s in labels] if labels is not None else None

    def __call__(
        self,
        seq0: int,
        batch: CodeBatch,
        t_start: npt.NDArray[np.float64] | None = None,
        t_end: npt.NDArray[np.float64] | None = None,
    ) -> str:
        lines = self.lines(seq0, batch, t_start, t_end)
        return "\n".join(lines) + "\n" if lines else ""

    def lines(
        self,
        seq0: int,
        batch: CodeBatch,
        t_start: npt.NDArray[np.float64] | None = None,
        t_end: npt.NDArray[np.float64] | None = None,
    ) -> list[str]:
        """One JSON object per window, without line ends."""
        n = len(batch)
        if n == 0:
            return []
        seqs = range(seq0, seq0 + n)
        codes = batch.index.tolist()
        digits = ["[" + ",".join(map(str, d)) + "]" for d in batch.digits.tolist()]
        heads = [""] * n
        if self._labels is not None and batch.label_id is not None and batch.p is not None:
            labels = self._labels
            heads = [
                f',"label":{labels[i]},"p":{p:.4f}'
                for i, p in zip(batch.label_id.tolist(), batch.p.tolist(), strict=True)
            ]
            if batch.sets is not None:  # the conformal set's labels, in the head's order
                heads = [
                    h + ',"set":[' + ",".join(labels[j] for j in np.flatnonzero(row)) + "]"
                    for h, row in zip(heads, batch.sets, strict=True)
                ]
        tail = f',"model":{self._model}}}'
        if t_start is None or t_end is None:
            lines = [
                f'{{"seq":{s},"code":{c},"digits":{d}{h}{tail}'
                for s, c, d, h in zip(seqs, codes, digits, heads, strict=True)
            ]
        else:
            lines = [
                f'{{"seq":{s},"t_start":{a:.6f},"t_end":{b:.6f},"code":{c},"digits":{d}{h}{tail}'
                for s, a, b, c, d, h in zip(
                    seqs, t_start.tolist(), t_end.tolist(), codes, digits, heads, strict=True
                )
            ]
        return lines


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
        None if b.probs is None else b.probs[:0],
        None if b.sets is None else b.sets[:0],
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

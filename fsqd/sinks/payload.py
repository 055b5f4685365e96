"""One JSON object per window, formatted for speed.

Keys, in order: ``seq``, ``t_start``/``t_end`` (when windows have times), ``code``,
``digits``, ``label``/``p`` (when the model has a head), ``model``. Lines are built
with f-strings from pre-escaped pieces: json.dumps per window costs more than the
encoder's own inference on small models.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from fsqd.pipeline import CodeBatch


class LineFormatter:
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
        n = len(batch)
        if n == 0:
            return ""
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
        return "\n".join(lines) + "\n"

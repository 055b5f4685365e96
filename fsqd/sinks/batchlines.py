"""JSON lines (replay, encode, and the daemon's code messages), a batch in one ``%`` call.

Keys, in order: ``seq``, ``t_start``/``t_end`` (when windows have times), ``code``,
``digits``, ``label``/``p`` (when the model has a head; ``p`` calibrated by the card's
temperature), ``set`` (the conformal set's labels, when the card has conformal sets),
``model``. A day of data is
millions of lines, and json.dumps per window costs more than a small encoder's inference:
a code's ``"code":..,"digits":[..]`` is formatted once and reused (a model has at most a
few thousand codes), and each batch is one format call instead of one per window.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from fsqd.types import CodeBatch


class BatchLineFormatter:
    def __init__(self, model_tag: str, labels: tuple[str, ...] | None) -> None:
        tail = ',"model":' + json.dumps(model_tag).replace("%", "%%") + "}\n"
        self._labels = [json.dumps(s) for s in labels] if labels is not None else None
        self._codes: dict[int, str] = {}
        self._rows = {
            (timed, head, sets): '{"seq":%d'
            + (',"t_start":%.6f,"t_end":%.6f' if timed else "")
            + ",%s"
            + (',"label":%s,"p":%.4f' if head else "")
            + (',"set":%s' if sets else "")
            + tail
            for timed in (False, True)
            for head in (False, True)
            for sets in (False, True)
        }
        self._templates: dict[tuple[bool, bool, bool, int], str] = {}
        self._sets: dict[int, str] = {}  # a set's bit mask -> its JSON list of labels

    def _code(self, code: int, digits: npt.NDArray[np.int64]) -> str:
        piece = self._codes.get(code)
        if piece is None:
            piece = f'"code":{code},"digits":[' + ",".join(map(str, digits.tolist())) + "]"
            self._codes[code] = piece
        return piece

    def _set_lists(self, sets: npt.NDArray[np.bool_]) -> list[object]:
        assert self._labels is not None
        masks = (sets.astype(np.int64) << np.arange(sets.shape[1])).sum(axis=1).tolist()
        out: list[object] = []
        for m in masks:
            text = self._sets.get(m)
            if text is None:
                names = [lab for j, lab in enumerate(self._labels) if m >> j & 1]
                text = self._sets[m] = "[" + ",".join(names) + "]"
            out.append(text)
        return out

    def __call__(
        self,
        seq0: int,
        batch: CodeBatch,
        t_start: npt.NDArray[np.float64] | None = None,
        t_end: npt.NDArray[np.float64] | None = None,
    ) -> str:
        n = len(batch)
        timed = t_start is not None and t_end is not None
        head = self._labels is not None and batch.label_id is not None and batch.p is not None
        sets = head and batch.sets is not None
        key = (timed, head, sets, n)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = self._rows[timed, head, sets] * n
        columns: list[list[object]] = [list(range(seq0, seq0 + n))]
        if t_start is not None and t_end is not None:
            columns += [t_start.tolist(), t_end.tolist()]
        cached = self._codes
        columns.append(
            [
                cached.get(c) or self._code(c, batch.digits[i])
                for i, c in enumerate(batch.index.tolist())
            ]
        )
        if head and self._labels is not None and batch.label_id is not None and batch.p is not None:
            labels = self._labels
            columns += [[labels[i] for i in batch.label_id.tolist()], batch.p.tolist()]
            if batch.sets is not None:
                columns.append(self._set_lists(batch.sets))
        values: list[object] = [None] * (n * len(columns))
        for j, column in enumerate(columns):
            values[j :: len(columns)] = column
        return template % tuple(values)

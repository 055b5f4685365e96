"""The optional classifier head: FSQ codes (zhat) -> logits -> label and probability.

It always runs on the CPU with onnxruntime: it is tiny, and it sits after Round,
which the Hailo-8 cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.backends.onnx import open_session
from fsqd.errors import ModelError
from fsqd.model.package import ModelPackage


@dataclass(frozen=True, slots=True)
class HeadResult:
    logits: npt.NDArray[np.float32]  # (N, classes)
    label_id: npt.NDArray[np.int64]  # (N,)
    p: npt.NDArray[np.float32]  # (N,) top softmax probability


class Head:
    def __init__(self, package: ModelPackage, threads: int | None = 1) -> None:
        spec = package.card.head
        path = package.head_onnx
        if spec is None or path is None:
            raise ModelError(f"{package.path}: the model has no head")
        self.labels = spec.labels
        self.session = open_session(path, threads)
        names = [i.name for i in self.session.get_inputs()]
        outs = [o.name for o in self.session.get_outputs()]
        if names != [spec.input] or spec.output not in outs:
            raise ModelError(
                f"{path}: the head's ONNX has inputs {names} and outputs {outs}, the card says "
                f"{spec.input!r} -> {spec.output!r}"
            )
        self._input, self._output = spec.input, [spec.output]
        dim = len(package.card.levels)
        classes = self.logits(np.zeros((1, dim), np.float32)).shape[-1]
        if classes != len(self.labels):
            raise ModelError(
                f"{path}: the head gives {classes} logits but the card lists "
                f"{len(self.labels)} labels"
            )

    def logits(self, codes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        (out,) = self.session.run(self._output, {self._input: codes})
        y: npt.NDArray[np.float32] = np.asarray(out, dtype=np.float32).reshape(len(codes), -1)
        return y

    def __call__(self, codes: npt.NDArray[np.float32]) -> HeadResult:
        logits = self.logits(codes)
        top = np.argmax(logits, axis=1)
        # Top softmax probability without forming the whole softmax twice.
        shifted = logits - logits.max(axis=1, keepdims=True)
        p = 1.0 / np.exp(shifted).sum(axis=1)
        return HeadResult(logits, top.astype(np.int64), p.astype(np.float32))

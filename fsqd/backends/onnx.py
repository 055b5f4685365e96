"""The CPU encoder backend: onnxruntime on the package's ``encoder.onnx``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.errors import ModelError, NoInputError
from fsqd.model.card import expected_input_shape
from fsqd.model.graphcheck import check_package
from fsqd.model.package import ModelPackage


def open_session(model: Path | bytes, threads: int | None = None) -> Any:
    """An onnxruntime session on a file or serialized model; failure is a one-line ModelError.

    Worker threads do not spin between runs: on a 2-4 core board spinning pool threads
    steal the cores the reader, the FSQ and the other session need.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # keep onnxruntime's own warnings out of journald
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        what = "the model" if isinstance(model, bytes) else str(model)
        raise ModelError(f"{what}: onnxruntime cannot load it: {first}") from None


def load_onnx(path: Path) -> Any:
    """The ONNX graph of a file; missing is NoInputError, unreadable a one-line ModelError."""
    import onnx

    if not path.is_file():
        raise NoInputError(f"{path}: no such ONNX file")
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None


def _dims(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


class OnnxEncoder:
    """Callable: model-layout windows (N, ...) -> FSQ-stage values (N, dim) float32.

    Opening it checks the card against the graph (input, output, FSQ stage and levels).
    An encoder exported or compiled with a fixed batch size B > 1 gets its input in
    slices of B, the last one zero-padded, and only the real rows come back.
    """

    name = "onnx"

    def __init__(self, package: ModelPackage, threads: int | None = None) -> None:
        card = package.card
        path = package.encoder_onnx
        check_package(package)
        self.session = open_session(path, threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if card.input.name not in inputs:
            raise ModelError(
                f"{path}: the card's input {card.input.name!r} is not among the ONNX inputs "
                f"{sorted(inputs)}"
            )
        if len(inputs) != 1:
            raise ModelError(f"{path}: the encoder must have one input, it has {sorted(inputs)}")
        onnx_shape = _dims(inputs[card.input.name].shape)
        want = expected_input_shape(card)
        if len(onnx_shape) != len(want) + 1 or any(
            o is not None and o != w for o, w in zip(onnx_shape[1:], want, strict=False)
        ):
            raise ModelError(
                f"{path}: ONNX input shape {onnx_shape} does not match the card's "
                f"[N, {', '.join(map(str, want))}] (layout {card.input.layout})"
            )
        fixed = onnx_shape[0]
        if fixed is not None and fixed < 1:
            raise ModelError(f"{path}: the ONNX input has a batch size of {fixed}")
        if card.input.shape[0] is not None and card.input.shape[0] != fixed:
            raise ModelError(
                f"{path}: the card's input batch size is {card.input.shape[0]} but the ONNX "
                f"input's is {'dynamic' if fixed is None else fixed}"
            )
        self.fixed_batch: int | None = fixed
        outputs = [o.name for o in self.session.get_outputs()]
        if card.output.name not in outputs:
            raise ModelError(
                f"{path}: the card's output {card.output.name!r} is not among the ONNX outputs "
                f"{outputs}"
            )
        self._input = card.input.name
        self._output = [card.output.name]
        # FSQ reshapes with a runtime shape, so shape inference cannot tell the width: run
        # once, with the batch size the model really takes.
        probe = np.zeros((fixed or 1, *want), np.float32)
        width = self._run(probe).shape[-1]
        if width != card.output.width:
            raise ModelError(
                f"{path}: the encoder output is {width} wide but the card declares "
                f"{card.output.width} FSQ levels {list(card.levels)}"
            )
        self.width = width

    def _run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        (out,) = self.session.run(self._output, {self._input: x})
        y: npt.NDArray[np.float32] = np.asarray(out, dtype=np.float32)
        return y.reshape(x.shape[0], -1)

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        b = self.fixed_batch
        if not len(x):
            # Some exports cannot reshape an empty batch; nothing to run anyway.
            return np.zeros((0, self.width), np.float32)
        if b is None or len(x) == b:
            return self._run(x)
        out = np.empty((len(x), self.width), np.float32)
        for i in range(0, len(x), b):
            part = x[i : i + b]
            if len(part) < b:
                # The model takes exactly b windows: pad with zeros, keep the real rows.
                padded = np.zeros((b, *x.shape[1:]), np.float32)
                padded[: len(part)] = part
                out[i:] = self._run(padded)[: len(part)]
            else:
                out[i : i + b] = self._run(part)
        return out

    def close(self) -> None:
        """Nothing to release early: the session goes with the object."""

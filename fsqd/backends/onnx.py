"""The CPU encoder backend: onnxruntime on the package's ``encoder.onnx``."""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.errors import ModelError, UsageError
from fsqd.model.card import expected_input_shape
from fsqd.model.graphcheck import check_package
from fsqd.model.package import ModelPackage
from fsqd.osthread import named_executor
from fsqd.safefile import MODEL_MAX, regular_file


def open_session(model: Path | bytes, threads: int | None = None) -> Any:
    """An onnxruntime session on a file or serialized model; failure is a one-line ModelError.

    Worker threads do not spin between runs: on a 2-4 core board spinning pool threads
    steal the cores the reader, the FSQ and the other session need.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # keep onnxruntime's own warnings out of journald
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # A memory pattern reserves one block for all of a run's intermediate tensors: at batch
    # 256 that is 20-50 MB per session more peak RSS, for no measurable speed.
    opts.enable_mem_pattern = False
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not isinstance(model, bytes):
        regular_file(model, what="an ONNX model", limit=MODEL_MAX)
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        what = "the model" if isinstance(model, bytes) else str(model)
        raise ModelError(f"{what}: onnxruntime cannot load it: {first}") from None


def _dims(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


MAX_SESSIONS = 2  # replay keeps two batches in flight; more sessions only cost memory
SPLIT_MIN = 64  # a dynamic-batch call this long or longer is shared among the sessions


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_threads(threads: int | None, sessions: int | None = None) -> list[int]:
    """Intra-op threads of each session: ``threads`` in total (default: the usable cores).

    Two 1-thread sessions on alternate batches beat one 2-thread session beside a parser:
    a thread of a multi-threaded step that loses its core stalls the whole step, while a
    1-thread session that loses its core stalls only its own batch.
    """
    total = usable_cores() if threads is None else threads
    if total < 1:
        raise UsageError(f"onnxruntime threads must be at least 1, got {total}")
    n = min(MAX_SESSIONS, total) if sessions is None else sessions
    if not 1 <= n <= total:
        raise UsageError(f"{n} onnxruntime sessions cannot share {total} thread(s)")
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


class OnnxEncoder:
    """Callable: model-layout windows (N, ...) -> FSQ-stage values (N, dim) float32.

    Opening it checks the card against the graph (input, output, FSQ stage and levels).
    An encoder exported or compiled with a fixed batch size B > 1 gets its input in
    slices of B, the last one zero-padded, and only the real rows come back.

    ``threads`` is the total of onnxruntime threads (default: the usable cores), shared by up
    to two sessions of the same graph (``session_threads``). ``submit`` hands batches to the
    sessions in turn; a long call is split among them; rows never change their batch-mates
    within a fixed batch, and results come back in order.
    """

    name = "onnx"
    host_only = True  # onnxruntime on the CPU: nothing to wait for but the computation

    def __init__(
        self, package: ModelPackage, threads: int | None = None, *, sessions: int | None = None
    ) -> None:
        card = package.card
        path = package.encoder_onnx
        check_package(package)
        plan = session_threads(threads, sessions)
        self.session = open_session(path, plan[0])
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
        width = self._run(self.session, probe).shape[-1]
        if width != card.output.width:
            raise ModelError(
                f"{path}: the encoder output is {width} wide but the card declares "
                f"{card.output.width} FSQ levels {list(card.levels)}"
            )
        self.width = width
        # The same graph again: the checks above hold for every session.
        self.sessions: list[Any] = [self.session, *(open_session(path, t) for t in plan[1:])]
        self.threads = plan
        # One worker per session, so each session runs its batches in submission order.
        self._workers = [named_executor(f"fsqd-onnx{i}") for i in range(len(plan))]
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def _run(self, session: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        (out,) = session.run(self._output, {self._input: x})
        y: npt.NDArray[np.float32] = np.asarray(out, dtype=np.float32)
        return y.reshape(x.shape[0], -1)

    def _encode(self, session: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``x`` through one session, in slices of the fixed batch size when there is one."""
        b = self.fixed_batch
        if not len(x):
            # Some exports cannot reshape an empty batch; nothing to run anyway.
            return np.zeros((0, self.width), np.float32)
        if b is None or len(x) == b:
            return self._run(session, x)
        out = np.empty((len(x), self.width), np.float32)
        for i in range(0, len(x), b):
            part = x[i : i + b]
            if len(part) < b:
                # The model takes exactly b windows: pad with zeros, keep the real rows.
                padded = np.zeros((b, *x.shape[1:]), np.float32)
                padded[: len(part)] = part
                out[i:] = self._run(session, padded)[: len(part)]
            else:
                out[i : i + b] = self._run(session, part)
        return out

    def _turns(self, count: int) -> list[tuple[Any, ThreadPoolExecutor]]:
        """The next ``count`` sessions in turn, each with the worker that runs it."""
        with self._lock:
            if not self.sessions:
                raise RuntimeError("the onnxruntime encoder is closed")
            k = len(self.sessions)
            first = next(self._turn)
            return [
                (self.sessions[(first + j) % k], self._workers[(first + j) % k])
                for j in range(count)
            ]

    @property
    def lanes(self) -> int:
        """Sessions taking ``submit``'s batches in turn, each in submission order."""
        return len(self.sessions)

    def submit(self, x: npt.NDArray[np.float32]) -> Future[npt.NDArray[np.float32]]:
        """Start encoding ``x`` on the next session in turn; the future completes from that
        session's worker thread. Successive batches alternate between the sessions, so a
        caller that keeps two in flight keeps both busy; it must read them in order."""
        ((session, worker),) = self._turns(1)
        return worker.submit(self._encode, session, x)

    def _pieces(self, n: int) -> list[tuple[int, int]]:
        """Row ranges of one call that may run at once on different sessions."""
        b, k = self.fixed_batch, len(self.sessions)
        if k < 2 or n < 2:
            return [(0, n)]
        if b is not None:
            # Whole fixed batches, shared out evenly: every row keeps the batch-mates it
            # has with one session.
            step = b * -(-n // (b * k))
        elif n >= SPLIT_MIN:
            step = -(-n // k)
        else:
            return [(0, n)]
        return [(i, min(n, i + step)) for i in range(0, n, step)]

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        pieces = self._pieces(len(x))
        turns = self._turns(len(pieces))
        if len(pieces) == 1:
            # onnxruntime sessions may run from several threads at once: no hand-off needed.
            return self._encode(turns[0][0], x)
        futures = [
            worker.submit(self._encode, session, x[a:z])
            for (session, worker), (a, z) in zip(turns, pieces, strict=True)
        ]
        return np.concatenate([f.result() for f in futures])

    def close(self) -> None:
        """Finish the batches already submitted, stop the workers and drop the sessions."""
        with self._lock:
            workers, self._workers = self._workers, []
            self.sessions = []
        for w in workers:
            w.shutdown(wait=True)
        self.session = None

"""Choose the encoder backend, and fall back to the CPU while the NPU is away.

``open_encoder(package, "auto")`` uses the package's HEF (``encoder.hef`` beside the card)
when it is there and a Hailo device answers, otherwise onnxruntime, and logs which one it
chose and why. With a HEF, auto returns a ``FallbackEncoder``: it runs on the NPU, switches
to the CPU when the NPU fails at run time (after the Hailo backend's own VDevice rebuild did
not help), and tries the NPU again every ``retry_s`` seconds until it answers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.backends.base import Encoder
from fsqd.backends.onnx import OnnxEncoder
from fsqd.errors import NoInputError, UsageError
from fsqd.model.graphcheck import check_package
from fsqd.model.package import ModelPackage
from fsqd.osthread import named_executor

if TYPE_CHECKING:
    # The Hailo backend is imported where a HEF is in play: a package without one (every
    # CPU replay, encode and daemon) does not pay for its modules at start-up.
    from fsqd.backends.hailo.encoder import HailoEncoder
    from fsqd.config.hailo import HailoSettings

log = structlog.get_logger(__name__)

BACKENDS = ("auto", "hailo", "onnx")
HEF_FILE = "encoder.hef"
Array = npt.NDArray[np.float32]


def hef_path(package: ModelPackage) -> Path | None:
    """The package's HEF if present: the card's ``encoder_hef`` or ``encoder.hef`` beside it."""
    path = package.encoder_hef or package.path / HEF_FILE
    return path if path.is_file() else None


def open_encoder(
    package: ModelPackage,
    backend: str = "auto",
    *,
    threads: int | None = None,
    hailo: HailoSettings | None = None,
    retry_s: float = 60.0,
) -> Encoder:
    """The encoder for ``package``: "auto" (NPU when possible, else CPU), "hailo" or "onnx".

    "hailo" insists on the NPU: no HEF, no device or a failure is an error, never the CPU.
    """
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx":
        log.info("encoder_backend", backend="onnx", reason="asked for onnx", model=package.label)
        return OnnxEncoder(package, threads)
    hef = hef_path(package)
    if backend == "hailo":
        # The NPU never sees encoder.onnx, but the card must still agree with the graph
        # the HEF was compiled from (the CPU paths check it when their session opens).
        check_package(package)
    if hef is None:
        if backend == "hailo":
            raise NoInputError(
                f"{package.path}: no {HEF_FILE} beside the card; compile one with the script "
                "`fsqd model compile-script` writes, or use --backend onnx"
            )
        log.info("encoder_backend", backend="onnx", reason=f"no {HEF_FILE} in the package")
        return OnnxEncoder(package, threads)
    from fsqd.backends.hailo.encoder import HailoEncoder
    from fsqd.backends.hailo.status import HailoUnavailableError
    from fsqd.config.hailo import HailoSettings

    settings = hailo or HailoSettings()
    if backend == "hailo":
        only = HailoEncoder(package, hef, settings)
        log.info("encoder_backend", backend="hailo", reason="asked for hailo", hef=str(hef))
        return only
    # Open the CPU side first: it must work, and falling back later must not wait for it.
    cpu = OnnxEncoder(package, threads)
    retry_settings = HailoSettings(**{**settings.__dict__, "open_attempts": 1})

    def open_npu() -> HailoEncoder:
        return HailoEncoder(package, hef, retry_settings)

    try:
        npu: HailoEncoder | None = HailoEncoder(package, hef, settings)
        why = None
    except HailoUnavailableError as e:
        npu, why = None, str(e)
        log.warning("encoder_backend", backend="onnx", reason=why, hef=str(hef))
    if npu is not None:
        log.info("encoder_backend", backend="hailo", reason="HEF present, device answers")
    return FallbackEncoder(npu, cpu, open_npu, retry_s=retry_s, why=why)


class FallbackEncoder:
    """The NPU while it works, the CPU while it does not, and back when it returns."""

    def __init__(
        self,
        npu: HailoEncoder | None,
        cpu: Encoder,
        open_npu: Callable[[], HailoEncoder],
        *,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        why: str | None = None,
    ) -> None:
        self._npu = npu
        self.cpu = cpu
        self._open_npu = open_npu
        self.retry_s = retry_s
        self._clock = clock
        self.fallbacks = 0  # switches NPU -> CPU at run time
        self.recoveries = 0  # switches CPU -> NPU
        self.last_error = why
        self._npu_stats: dict[str, Any] = npu.stats() if npu is not None else {}
        self._next_try = math.inf if npu is not None else clock() + retry_s
        self._lock = threading.Lock()
        self._worker = named_executor("fsqd-fallback")
        from fsqd.backends.hailo import status

        # The NPU's errors: a closed device, the failures that the CPU covers for, and
        # those that keep it away.
        self._npu_closed = status.HailoRuntimeError
        self._npu_failed = (status.HailoRuntimeError, status.HailoUnavailableError)
        self._npu_away = (status.HailoUnavailableError, status.HailoVersionError)

    @property
    def name(self) -> str:
        return "hailo" if self._npu is not None else "onnx"

    def __call__(self, x: Array) -> Array:
        return self.submit(x).result()

    def submit(self, x: Array) -> Future[Array]:
        self._maybe_return()
        npu = self._npu
        if npu is None:
            return self._worker.submit(self.cpu, x)
        out: Future[Array] = Future()

        def done(f: Future[Array]) -> None:
            exc = f.exception()
            if exc is None:
                out.set_result(f.result())
            elif isinstance(exc, self._npu_failed):
                # Not on the NPU's own thread: closing the NPU joins that thread.
                self._worker.submit(self._cover, npu, exc, x, out)
            else:
                out.set_exception(exc)

        try:
            started = npu.submit(x)
        except (self._npu_closed, RuntimeError):  # closed by a fall-back meanwhile
            return self._worker.submit(self.cpu, x)
        started.add_done_callback(done)
        return out

    def _cover(self, npu: HailoEncoder, exc: BaseException, x: Array, out: Future[Array]) -> None:
        self._fall_back(npu, exc)
        try:
            out.set_result(self.cpu(x))
        except BaseException as e:
            out.set_exception(e)

    def _fall_back(self, npu: HailoEncoder, exc: BaseException) -> None:
        with self._lock:
            if self._npu is not npu:
                return  # another batch already switched
            self._npu_stats = npu.stats()
            self._npu = None
            self.fallbacks += 1
            self.last_error = str(exc)
            self._next_try = self._clock() + self.retry_s
        log.warning("encoder_fallback", backend="onnx", was="hailo", error=str(exc))
        npu.close()

    def _maybe_return(self) -> None:
        if self._npu is not None or self._clock() < self._next_try:
            return
        with self._lock:
            if self._npu is not None or self._clock() < self._next_try:
                return
            self._next_try = self._clock() + self.retry_s
            try:
                npu = self._open_npu()
            except self._npu_away as e:
                self.last_error = str(e)
                log.info("encoder_npu_still_away", error=str(e), retry_in_s=self.retry_s)
                return
            self._npu = npu
            self._next_try = math.inf
            self.recoveries += 1
        log.info("encoder_backend", backend="hailo", reason="the NPU answers again")

    def stats(self) -> dict[str, Any]:
        npu = self._npu
        if npu is not None:
            self._npu_stats = npu.stats()
        return {
            "backend": self.name,
            "preferred": "hailo",
            "fallbacks": self.fallbacks,
            "recoveries": self.recoveries,
            "last_error": self.last_error,
            **self._npu_stats,
        }

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        with self._lock:
            npu, self._npu = self._npu, None
            self._next_try = math.inf
        if npu is not None:
            npu.close()
        self.cpu.close()


def encoder_stats(encoder: Encoder) -> dict[str, Any]:
    """What ``info`` and ``stats`` report about the encoder: its backend and counters."""
    stats = getattr(encoder, "stats", None)
    if callable(stats):
        d: dict[str, Any] = {"backend": encoder.name, **stats()}
        return d
    return {"backend": encoder.name}

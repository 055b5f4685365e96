"""The Hailo-8 encoder on HailoRT's Python bindings (``hailo_platform``, imported lazily).

Written against the hailo8 branch of hailo-ai/hailort (HailoRT 4.23, see docs/hailo.md):

- InferModel API (4.18+): one ``VDevice`` with the ROUND_ROBIN scheduler, FLOAT32 formats on
  both sides (HailoRT quantises the input and dequantises the output with the HEF's
  ``quant_info``), ``wait_for_async_ready`` + ``run_async(bindings, callback)`` + ``job.wait``.
- Older HailoRT without ``VDevice.create_infer_model``: ``HEF`` + ``ConfigureParams`` +
  ``InferVStreams``.
- The host side is NHWC without the batch axis: an ONNX input (N, C, H, W) = the card's
  (N, C, D, T) becomes frames (D, T, C). HailoRT checks byte counts only, so the shapes the
  HEF reports are compared with the card here, before any window is fed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.backends.hailo.device import import_hailo_platform, library_version, open_vdevice
from fsqd.backends.hailo.network import (
    InferModelRun,
    NetworkRun,
    RangeMonitor,
    VStreamsRun,
    check_shapes,
    to_frames,
)
from fsqd.backends.hailo.status import (
    RUNTIME_FAILURES,
    HailoRuntimeError,
    HailoUnavailableError,
    describe_status,
    status_of,
)
from fsqd.config.hailo import HailoSettings
from fsqd.errors import FsqdError, ModelError
from fsqd.model.package import ModelPackage
from fsqd.osthread import named_executor
from fsqd.safefile import MODEL_MAX, regular_file

log = structlog.get_logger(__name__)

# One VDevice per process: HailoRT ties it to the creating process and the device allows one
# owner (without hailort.service); a second encoder in the same process would fight the first.
# A weak reference: an encoder dropped without close() frees the slot with its VDevice.
_owner_lock = threading.Lock()
_owner: weakref.ref[HailoEncoder] | None = None


class HailoEncoder:
    """Callable like every encoder, plus ``submit`` so the NPU runs while the host does FSQ."""

    name = "hailo"

    def __init__(
        self,
        package: ModelPackage,
        hef: Path,
        settings: HailoSettings | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        global _owner
        regular_file(hef, what="a HEF", limit=MODEL_MAX)  # HailoRT reads it whole
        self.package = package
        self.hef = hef
        self.settings = settings or HailoSettings()
        self._sleep = sleep
        self.hp = import_hailo_platform()
        self.rebuilds = 0
        self._closed = False
        self.range: RangeMonitor
        self._worker: ThreadPoolExecutor | None = None
        self._vdevice: Any = None
        self._run: NetworkRun | None = None
        with _owner_lock:
            other = _owner() if _owner is not None else None
            if other is not None and not other._closed:
                raise HailoUnavailableError(
                    "a Hailo encoder is already open in this process (one VDevice per process): "
                    "close it first"
                )
            _owner = weakref.ref(self)
        try:
            self._open(self.settings.open_attempts)
            assert self._run is not None
            self.range = RangeMonitor.from_quant(
                self._run.in_quant, self.settings.range_warn_share, hef
            )
        except BaseException:
            self.close()
            raise
        self._worker = named_executor("fsqd-hailo")
        log.info(
            "hailo_encoder_open",
            hef=str(hef),
            api=self.api,
            hailort=library_version(self.hp),
            input=list(self._run.in_shape),
            output=list(self._run.out_shape),
            input_range=[self.range.lo, self.range.hi],
            multi_process_service=self.settings.multi_process_service,
        )

    @property
    def api(self) -> str:
        return self._run.api if self._run is not None else "closed"

    def _open(self, attempts: int) -> None:
        settings = self.settings
        if attempts != settings.open_attempts:
            settings = HailoSettings(**{**settings.__dict__, "open_attempts": attempts})
        self._vdevice = open_vdevice(self.hp, settings, sleep=self._sleep)
        try:
            run_cls = (
                InferModelRun if hasattr(self.hp.VDevice, "create_infer_model") else VStreamsRun
            )
            self._run = run_cls(self.hp, self._vdevice, self.hef, settings.timeout_ms)
            check_shapes(self.package, self.hef, self._run.in_shape, self._run.out_shape)
        except self.hp.HailoRTException as e:
            self._release()
            code = status_of(e)
            if code in (26, 93):
                raise ModelError(
                    f"{self.hef}: HailoRT refuses the HEF ({describe_status(code)})"
                ) from None
            raise HailoUnavailableError(
                f"{self.hef}: cannot load the HEF on the device ({describe_status(code)}): {e}"
            ) from None

    def _release(self) -> None:
        run, vdevice = self._run, self._vdevice
        self._run = self._vdevice = None
        if run is not None:
            try:
                run.close()
            except Exception as e:  # a dead device may fail to shut down: release anyway
                log.debug("hailo_close_failed", error=str(e))
        if vdevice is not None:
            try:
                vdevice.release()
            except Exception as e:
                log.debug("hailo_release_failed", error=str(e))

    def _infer(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run a batch; on a device or driver failure rebuild the VDevice once and retry."""
        if self._closed:
            raise HailoRuntimeError("the Hailo encoder is closed")
        frames = to_frames(x)
        self.range.update(frames)
        try:
            if self._run is None:
                raise HailoRuntimeError("no VDevice (an earlier rebuild failed)")
            return self._run.run(frames)
        except (self.hp.HailoRTException, HailoRuntimeError) as e:
            code = status_of(e) if isinstance(e, self.hp.HailoRTException) else None
            if isinstance(e, self.hp.HailoRTException) and code not in RUNTIME_FAILURES:
                raise HailoRuntimeError(
                    f"Hailo inference failed ({describe_status(code)}): {e}"
                ) from None
            log.warning("hailo_rebuild", why=describe_status(code), error=str(e))
        self._release()
        self.rebuilds += 1
        try:
            self._open(attempts=1)
        except FsqdError as e:
            raise HailoRuntimeError(f"the Hailo device failed and did not come back: {e}") from None
        assert self._run is not None
        try:
            return self._run.run(frames)
        except self.hp.HailoRTException as e:
            raise HailoRuntimeError(
                f"Hailo inference failed again after a rebuild ({describe_status(status_of(e))})"
            ) from None

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self.submit(x).result()

    def submit(self, x: npt.NDArray[np.float32]) -> Future[npt.NDArray[np.float32]]:
        """Start a batch on the device's worker thread; the future carries codes or the error."""
        if self._worker is None:
            raise HailoRuntimeError("the Hailo encoder is closed")
        return self._worker.submit(self._infer, np.asarray(x, np.float32))

    def stats(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "rebuilds": self.rebuilds,
            "input_out_of_range_share": round(self.range.share, 6),
            "input_range": [self.range.lo, self.range.hi],
        }

    def close(self) -> None:
        global _owner
        if self._closed:
            return
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)
        self._release()
        with _owner_lock:
            if _owner is not None and _owner() is self:
                _owner = None

"""The Hailo-8 encoder backend on HailoRT's Python bindings (``hailo_platform``, imported lazily).

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

import functools
import importlib
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.config.hailo import HailoSettings as HailoSettings
from fsqd.errors import ConfigError, FsqdError, ModelError
from fsqd.model.package import ModelPackage
from fsqd.safefile import MODEL_MAX, regular_file

log = structlog.get_logger(__name__)

EX_UNAVAILABLE = 69  # sysexits: a service (here the NPU) is unavailable

# HailoRT status codes (hailort/libhailort/include/hailo/hailort.h, HAILO_STATUS__X).
STATUS_NAMES: dict[int, str] = {
    2: "HAILO_INVALID_ARGUMENT",
    4: "HAILO_TIMEOUT",
    6: "HAILO_INVALID_OPERATION",
    8: "HAILO_INTERNAL_FAILURE",
    26: "HAILO_INVALID_HEF",
    36: "HAILO_DRIVER_OPERATION_FAILED",
    61: "HAILO_NOT_FOUND",
    62: "HAILO_COMMUNICATION_CLOSED",
    63: "HAILO_STREAM_ABORT",
    64: "HAILO_DRIVER_NOT_INSTALLED",
    73: "HAILO_DEVICE_IN_USE",
    74: "HAILO_OUT_OF_PHYSICAL_DEVICES",
    76: "HAILO_INVALID_DRIVER_VERSION",
    77: "HAILO_RPC_FAILED",
    78: "HAILO_INVALID_SERVICE_VERSION",
    85: "HAILO_DRIVER_INVALID_RESPONSE",
    86: "HAILO_DRIVER_INVALID_IOCTL",
    87: "HAILO_DRIVER_TIMEOUT",
    88: "HAILO_DRIVER_INTERRUPTED",
    93: "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE",
}
_NAME_TO_STATUS = {v: k for k, v in STATUS_NAMES.items()}
# pyhailort's ExceptionWrapper turns these statuses into their own classes, losing the code
# from the message (the code stays on __cause__.args[0], except in run_async callbacks).
_CLASS_STATUS = {
    "HailoRTTimeout": 4,
    "HailoRTInvalidOperationException": 6,
    "HailoRTInvalidArgumentException": 2,
    "HailoRTNotFoundException": 61,
    "HailoRTInvalidHEFException": 26,
    "HailoRTHEFNotCompatibleWithDevice": 93,
    "HailoRTDriverOperationFailedException": 36,
    "HailoCommunicationClosedException": 62,
    "HailoRTStreamAborted": 63,
}
BUSY = frozenset({73, 74})  # no free device: another process holds it, or none is there
RPC = frozenset({77, 78})  # hailort.service (multi_process_service) unreachable or mismatched
DRIVER_MISMATCH = 76
# At run time these mean the device or its driver went away: rebuild the VDevice.
RUNTIME_FAILURES = frozenset({4, 8, 36, 62, 63, 77, 85, 86, 87, 88})


def status_of(e: BaseException) -> int | None:
    """The HailoRT status code behind an exception from ``hailo_platform``, if it tells."""
    cause = e.__cause__
    if cause is not None and cause.args:
        try:
            return int(str(cause.args[0]).strip())
        except ValueError:
            pass
    text = str(e)
    m = re.search(r"error:?\s*(\d+)", text) or re.search(r"\bstatus\s*[=:]?\s*(\d+)", text)
    if m:
        return int(m.group(1))
    for name in re.findall(r"\bHAILO_[A-Z0-9_]+\b", text):
        if name in _NAME_TO_STATUS:
            return _NAME_TO_STATUS[name]
    for cls in type(e).__mro__:
        if cls.__name__ in _CLASS_STATUS:
            return _CLASS_STATUS[cls.__name__]
    return None


def describe_status(code: int | None) -> str:
    if code is None:
        return "no status code"
    return f"status {code} {STATUS_NAMES.get(code, 'HAILO_?')}"


class HailoUnavailableError(FsqdError, OSError):
    """No usable Hailo device (none, busy, no bindings, service down): try again or use the CPU."""

    exit_code = EX_UNAVAILABLE


class HailoVersionError(ConfigError):
    """HailoRT library and driver differ (status 76): fatal until the install is fixed."""


class HailoRuntimeError(FsqdError, RuntimeError):
    """Inference failed and rebuilding the VDevice did not help."""

    exit_code = EX_UNAVAILABLE


# -- the host side of the device --


def import_hailo_platform() -> ModuleType:
    """``hailo_platform`` or HailoUnavailableError saying how to install it."""
    try:
        return importlib.import_module("hailo_platform")
    except ImportError as e:
        raise HailoUnavailableError(
            f"HailoRT's Python bindings are not importable ({e}): on the Pi run "
            "`sudo apt install hailo-all` and make the venv with --system-site-packages"
        ) from None


def library_version(hp: ModuleType) -> str:
    return str(getattr(hp, "__version__", "unknown"))


def driver_version(path: str | Path = HailoSettings.driver_version_file) -> str | None:
    """The hailo_pci kernel module's version (MODULE_VERSION -> /sys/module/.../version)."""
    try:
        return Path(path).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def device_holders(device: str = "/dev/hailo0", proc: Path = Path("/proc")) -> list[str]:
    """``"name (pid N)"`` for every process with ``device`` open, as far as /proc lets us see."""
    try:
        target = os.path.realpath(device)
        pids = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    found = []
    for p in pids:
        try:
            fds = list((p / "fd").iterdir())
        except OSError:  # another user's process, or it exited meanwhile
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    comm = (p / "comm").read_text(encoding="utf-8", errors="replace").strip()
                    found.append(f"{comm} (pid {p.name})")
                    break
            except OSError:
                continue
    return found


def _holders_text(device: str) -> str:
    holders = device_holders(device)
    if holders:
        return f"{device} is held by {', '.join(holders)}"
    return f"no process visible here holds {device}"


def version_mismatch_message(hp: ModuleType, settings: HailoSettings) -> str:
    drv = driver_version(settings.driver_version_file) or "unknown (see `dmesg | grep hailo`)"
    return (
        f"HailoRT library {library_version(hp)} and hailo_pci driver {drv} differ "
        f"({describe_status(DRIVER_MISMATCH)}): install matching versions of the driver, "
        "firmware, libhailort and python3-hailort (`sudo apt install hailo-all`), then reboot"
    )


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def open_vdevice(
    hp: ModuleType, settings: HailoSettings, *, sleep: Callable[[float], None] | None = None
) -> Any:
    """One VDevice with the ROUND_ROBIN scheduler, retrying while no device is free."""
    sleep = sleep or _sleep
    params = hp.VDevice.create_params()
    params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
    if settings.multi_process_service:
        params.multi_process_service = True
        params.group_id = "SHARED"  # as HailoRT's multi-model tutorials do
    delay = settings.backoff_s
    last = ""
    for attempt in range(1, settings.open_attempts + 1):
        try:
            return hp.VDevice(params)
        except hp.HailoRTException as e:
            code = status_of(e)
            if code == DRIVER_MISMATCH:
                raise HailoVersionError(version_mismatch_message(hp, settings)) from None
            if code in BUSY:
                last = f"{describe_status(code)}: {_holders_text(settings.device_path)}"
            elif code in RPC:
                last = (
                    f"{describe_status(code)}: hailort.service is not answering "
                    "(`sudo systemctl start hailort.service`, or multi_process_service = false)"
                )
            else:
                raise HailoUnavailableError(
                    f"cannot open the Hailo device ({describe_status(code)}): {e}"
                ) from None
            if attempt < settings.open_attempts:
                log.warning("hailo_device_unavailable", attempt=attempt, retry_in_s=delay, why=last)
                sleep(delay)
                delay = min(delay * 2, settings.backoff_max_s)
    raise HailoUnavailableError(
        f"no free Hailo device after {settings.open_attempts} attempts ({last})"
    )


# -- the model contract on the device --


def hef_frame_shape(package: ModelPackage) -> tuple[int, int, int]:
    """The NHWC frame the HEF must take: the card's (C, D, T) read as NCHW -> (D, T, C)."""
    card = package.card
    s = card.input.shape[1:]
    if len(s) != 3 or any(v is None for v in s):
        raise ModelError(
            f"{package.path}: the Hailo backend needs a 4-D encoder input (N, C, H, W); the card "
            f"declares {list(card.input.shape)} ({card.input.layout})"
        )
    c, h, w = (int(v) for v in s if v is not None)
    return (h, w, c)


def to_frames(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Card-layout windows (N, C, H, W) -> C-contiguous NHWC frames (N, H, W, C)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=np.float32)


def check_shapes(
    package: ModelPackage,
    hef: Path,
    in_shape: Sequence[int],
    out_shape: Sequence[int],
) -> None:
    """Refuse a HEF whose own frame shapes do not fit the card (HailoRT would not notice)."""
    card = package.card
    want = hef_frame_shape(package)
    got = tuple(int(v) for v in in_shape)
    if got != want:
        raise ModelError(
            f"{hef}: HEF input is {list(got)} (NHWC) but the card's {card.input.layout} "
            f"{list(card.input.shape)} needs {list(want)}: recompile the HEF from this "
            "package's encoder.onnx"
        )
    out = tuple(int(v) for v in out_shape)
    width = card.output.width
    if int(np.prod(out)) != width or max(out, default=0) != width:
        raise ModelError(
            f"{hef}: HEF output is {list(out)} but the card's FSQ stage is {width} wide "
            f"(levels {list(card.levels)}): was the HEF parsed up to the node that feeds Round?"
        )


class RangeMonitor:
    """Share of normalised inputs outside the HEF's calibrated input range (clipped on the NPU)."""

    def __init__(self, lo: float, hi: float, warn_share: float, hef: Path) -> None:
        self.lo, self.hi, self.warn_share, self.hef = lo, hi, warn_share, hef
        self.seen = 0
        self.outside = 0
        self.warned = False

    @classmethod
    def from_quant(cls, quant: Sequence[Any], warn_share: float, hef: Path) -> RangeMonitor:
        lo, hi = np.inf, -np.inf
        for q in quant:
            qlo, qhi = float(q.limvals_min), float(q.limvals_max)
            if not qlo < qhi:  # no limvals recorded: the uint8 range the scale covers
                qlo = (0.0 - float(q.qp_zp)) * float(q.qp_scale)
                qhi = (255.0 - float(q.qp_zp)) * float(q.qp_scale)
            lo, hi = min(lo, qlo), max(hi, qhi)
        return cls(float(lo), float(hi), warn_share, hef)

    @property
    def share(self) -> float:
        return self.outside / self.seen if self.seen else 0.0

    def update(self, frames: npt.NDArray[np.float32]) -> None:
        self.seen += frames.size
        self.outside += int(np.count_nonzero((frames < self.lo) | (frames > self.hi)))
        if not self.warned and self.share > self.warn_share:
            self.warned = True
            log.warning(
                "hailo_input_out_of_range",
                share=round(self.share, 4),
                hef_range=[round(self.lo, 4), round(self.hi, 4)],
                hef=str(self.hef),
                fix="recompile the HEF with a calibration set of real windows: "
                "`fsqd model calib PKG --from RECORDINGS --out calib.npy`, then "
                "`fsqd model compile-script PKG`",
            )
            # A plain line too, for whoever reads stderr rather than the log.
            log.warning(
                f"{self.share:.1%} of normalised inputs fall outside the HEF's input range "
                f"[{self.lo:.4g}, {self.hi:.4g}] and are clipped on the NPU; recompile the HEF "
                "with `fsqd model calib` windows"
            )


# -- the two HailoRT APIs --


class _InferModelRun:
    """HailoRT 4.18+: InferModel, FLOAT32 on both edges, async jobs in queue-sized chunks."""

    api = "infer_model"

    def __init__(self, hp: ModuleType, vdevice: Any, hef: Path, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        im = vdevice.create_infer_model(str(hef))
        if len(im.input_names) != 1 or len(im.output_names) != 1:
            raise ModelError(
                f"{hef}: expected one input and one output, the HEF has inputs "
                f"{list(im.input_names)} and outputs {list(im.output_names)}"
            )
        self.in_name, self.out_name = im.input_names[0], im.output_names[0]
        im.input(self.in_name).set_format_type(hp.FormatType.FLOAT32)
        im.output(self.out_name).set_format_type(hp.FormatType.FLOAT32)
        self.in_shape = tuple(im.input(self.in_name).shape)
        self.out_shape = tuple(im.output(self.out_name).shape)
        self.in_quant = list(im.input(self.in_name).quant_infos)
        self._infer_model = im  # keeps the VDevice's model alive as long as we run it
        self._cim_cm = im.configure()
        self.cim = self._cim_cm.__enter__()
        # Frames one run_async may carry (4.23 has get_async_queue_size; be safe before it).
        queue_size = getattr(self.cim, "get_async_queue_size", None)
        self.queue = max(1, int(queue_size())) if callable(queue_size) else 1

    def run(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        n = len(frames)
        out = np.empty((n, *self.out_shape), np.float32)
        errors: list[BaseException] = []
        jobs = []
        for start in range(0, n, self.queue):
            stop = min(n, start + self.queue)
            self.cim.wait_for_async_ready(self.timeout_ms, frames_count=stop - start)
            bindings = []
            for i in range(start, stop):
                b = self.cim.create_bindings(output_buffers={self.out_name: out[i]})
                b.input(self.in_name).set_buffer(frames[i])
                bindings.append(b)
            jobs.append(self.cim.run_async(bindings, functools.partial(_completed, errors)))
        for job in jobs:
            job.wait(self.timeout_ms)  # returns once the job and its callback are done
        if errors:
            raise errors[0]
        return out.reshape(n, -1)

    def close(self) -> None:
        try:
            self.cim.shutdown()
        finally:
            self._cim_cm.__exit__(None, None, None)


def _completed(errors: list[BaseException], completion_info: Any) -> None:
    """run_async's callback (HailoRT's callback thread): keep it short, record failures."""
    if completion_info.exception is not None:
        errors.append(completion_info.exception)


class _VStreamsRun:
    """Older HailoRT: HEF + ConfigureParams + InferVStreams (blocking, whole batches)."""

    api = "vstreams"

    def __init__(self, hp: ModuleType, vdevice: Any, hef: Path, timeout_ms: int) -> None:
        h = hp.HEF(str(hef))
        params = hp.ConfigureParams.create_from_hef(hef=h, interface=hp.HailoStreamInterface.PCIe)
        self.ng = vdevice.configure(h, params)[0]
        ins, outs = h.get_input_vstream_infos(), h.get_output_vstream_infos()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(
                f"{hef}: expected one input and one output, the HEF has inputs "
                f"{[i.name for i in ins]} and outputs {[o.name for o in outs]}"
            )
        self.in_name, self.out_name = ins[0].name, outs[0].name
        self.in_shape, self.out_shape = tuple(ins[0].shape), tuple(outs[0].shape)
        self.in_quant = [ins[0].quant_info]
        in_params = hp.InputVStreamParams.make(
            self.ng, format_type=hp.FormatType.FLOAT32, timeout_ms=timeout_ms
        )
        out_params = hp.OutputVStreamParams.make(
            self.ng, format_type=hp.FormatType.FLOAT32, timeout_ms=timeout_ms
        )
        # The scheduler (ROUND_ROBIN) activates the network group itself: no activate().
        self._pipe_cm = hp.InferVStreams(self.ng, in_params, out_params)
        self.pipe = self._pipe_cm.__enter__()

    def run(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        result = self.pipe.infer({self.in_name: frames})
        return np.asarray(result[self.out_name], np.float32).reshape(len(frames), -1)

    def close(self) -> None:
        self._pipe_cm.__exit__(None, None, None)


_Run = _InferModelRun | _VStreamsRun

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
        self._run: _Run | None = None
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
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsqd-hailo")
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
                _InferModelRun if hasattr(self.hp.VDevice, "create_infer_model") else _VStreamsRun
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


def describe_device(settings: HailoSettings | None = None) -> dict[str, Any] | None:
    """For ``fsqd probe``: HailoRT and driver versions and each device's identity.

    None when HailoRT's Python bindings are not installed.
    """
    settings = settings or HailoSettings()
    try:
        hp = importlib.import_module("hailo_platform")
    except ImportError:
        return None
    info: dict[str, Any] = {
        "hailort_version": library_version(hp),
        "driver_version": driver_version(settings.driver_version_file),
        "devices": [],
    }
    try:
        ids = list(hp.Device.scan())
    except hp.HailoRTException as e:
        info["error"] = f"scan failed ({describe_status(status_of(e))})"
        return info
    for dev_id in ids:
        entry: dict[str, Any] = {"id": str(dev_id)}
        try:
            with hp.Device(dev_id) as dev:
                board = dev.control.identify()
                entry["architecture"] = str(board.device_architecture)
                entry["firmware"] = str(board.firmware_version)
                entry["board"] = str(board.board_name).rstrip("\x00")
        except hp.HailoRTException as e:
            code = status_of(e)
            entry["error"] = describe_status(code)
            if code in BUSY:
                entry["error"] += f"; {_holders_text(settings.device_path)}"
        info["devices"].append(entry)
    return info

"""The network configured on the device: the frame contract between the card and the HEF,
the input-range monitor, and one run of batches on either HailoRT API."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from fsqd.errors import ModelError
from fsqd.model.package import ModelPackage

log = structlog.get_logger(__name__)


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


class InferModelRun:
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


class VStreamsRun:
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


NetworkRun = InferModelRun | VStreamsRun

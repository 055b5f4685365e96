"""A fake of ``hailo_platform.pyhailort.pyhailort`` (HailoRT 4.23, hailo8 branch), for tests.

It keeps the real module's public names, signatures and error path: C++-level failures are
``_pyhailort.HailoRTStatusException(str(status))`` turned by ``ExceptionWrapper`` into the
same exception classes and messages as the real one (the status stays on ``__cause__``), and
run_async callbacks get ``completion_info`` with an exception made from the status.

The "device" is emulated: a fake HEF is a JSON file naming an ONNX encoder and the HEF's
NHWC shapes and quantisation; frames are quantised to uint8 (limvals clip first), run through
onnxruntime as (N, C, H, W), and the outputs quantised to uint8 and dequantised for FLOAT32.
Like HailoRT, buffers are checked by byte count only: data in the wrong layout runs.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy
import onnxruntime

import hailo_platform._fake as _fake
from hailo_platform.pyhailort import _pyhailort
from hailo_platform.pyhailort._pyhailort import (
    Format,
    FormatOrder,
    FormatType,
    QuantInfo,
    StreamDirection,
    VStreamInfo,
)

DEFAULT_VSTREAM_TIMEOUT_MS = 10000
DEFAULT_VSTREAM_QUEUE_SIZE = 2

HailoSchedulingAlgorithm = _pyhailort.SchedulingAlgorithm
HailoStreamInterface = _pyhailort.StreamInterface


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTStreamAborted(HailoRTException):
    pass


class HailoRTStreamAbortedByUser(HailoRTException):
    pass


class HailoRTInvalidOperationException(HailoRTException):
    pass


class HailoRTInvalidArgumentException(HailoRTException):
    pass


class HailoRTNotFoundException(HailoRTException):
    pass


class HailoRTInvalidHEFException(HailoRTException):
    pass


class HailoRTHEFNotCompatibleWithDevice(HailoRTException):
    pass


class HailoRTDriverOperationFailedException(HailoRTException):
    pass


HailoRTPCIeDriverException = HailoRTDriverOperationFailedException


class HailoCommunicationClosedException(HailoRTException):
    pass


class HailoRTNetworkGroupNotActivatedException(HailoRTException):
    pass


class HailoStatusInvalidValueException(Exception):
    pass


class ExceptionWrapper:
    def __enter__(self) -> None:
        pass

    def __exit__(self, exception_type: Any, value: Any, traceback: Any) -> None:
        if value is not None and exception_type is _pyhailort.HailoRTStatusException:
            self._raise_indicative_status_exception(value)

    @staticmethod
    def create_exception_from_status(error_code: int) -> HailoRTException:
        name = get_status_message(error_code)
        if name == "HAILO_TIMEOUT":
            return HailoRTTimeout(
                "Received a timeout - hailort has failed because a timeout had occurred"
            )
        if name == "HAILO_STREAM_ABORT":
            return HailoRTStreamAborted("Stream was aborted")
        if name == "HAILO_INVALID_OPERATION":
            return HailoRTInvalidOperationException(
                "Invalid operation. See hailort.log for more information"
            )
        if name == "HAILO_INVALID_ARGUMENT":
            return HailoRTInvalidArgumentException(
                "Invalid argument. See hailort.log for more information"
            )
        if name == "HAILO_NOT_FOUND":
            return HailoRTNotFoundException("Item not found. See hailort.log for more information")
        if name == "HAILO_INVALID_HEF":
            return HailoRTInvalidHEFException("Invalid HEF. See hailort.log for more information")
        if name == "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE":
            return HailoRTHEFNotCompatibleWithDevice(
                "HEF file is not compatible with device. See hailort.log for more information"
            )
        if name == "HAILO_DRIVER_OPERATION_FAILED":
            return HailoRTDriverOperationFailedException(
                "Failure in hailort driver ioctl. run 'dmesg | grep hailo' for more information"
            )
        if name == "HAILO_NETWORK_GROUP_NOT_ACTIVATED":
            return HailoRTNetworkGroupNotActivatedException("Network group is not activated")
        if name == "HAILO_COMMUNICATION_CLOSED":
            return HailoCommunicationClosedException(
                "Communication closed failure. Check server-client connection"
            )
        return HailoRTException(f"libhailort failed with error: {error_code} ({name})")

    def _raise_indicative_status_exception(self, libhailort_exception: Exception) -> None:
        error_code = int(libhailort_exception.args[0])
        raise self.create_exception_from_status(error_code) from libhailort_exception


def get_status_message(status_code: int) -> str:
    status_str = _pyhailort.get_status_message(status_code)
    if status_str == "":
        raise HailoStatusInvalidValueException(f"Value {status_code} is not a valid status")
    return status_str


def _fail(status: int) -> None:
    """What VALIDATE_STATUS does in the C++ bindings."""
    raise _pyhailort.HailoRTStatusException(str(status))


# -- the fake HEF and the emulated device --


@dataclass
class _Edge:
    name: str
    shape: tuple[int, ...]
    order: FormatOrder
    quant: QuantInfo


class _FakeHef:
    """A JSON "HEF": the ONNX encoder it stands for, its NHWC edges and their quantisation."""

    def __init__(self, path: str) -> None:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            self.network_group = str(d.get("network_group", "net"))
            self.arch = str(d.get("arch", "hailo8"))
            self.onnx = Path(path).parent / d["onnx"]
            self.input = self._edge(d["input"])
            self.output = self._edge(d["output"])
        except FileNotFoundError:
            _fail(13)  # HAILO_OPEN_FILE_FAILURE
        except (ValueError, KeyError, TypeError):
            _fail(26)  # HAILO_INVALID_HEF
        self._session: Any = None

    @staticmethod
    def _edge(e: dict[str, Any]) -> _Edge:
        shape = tuple(int(v) for v in e["shape"])
        order = FormatOrder.NC if len(shape) == 1 else FormatOrder.NHWC
        q = e["quant"]
        return _Edge(
            str(e["name"]),
            shape,
            order,
            QuantInfo(
                float(q["qp_zp"]),
                float(q["qp_scale"]),
                float(q.get("limvals_min", 0.0)),
                float(q.get("limvals_max", 0.0)),
            ),
        )

    def session(self) -> Any:
        if self._session is None:
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(self.onnx), opts, providers=["CPUExecutionProvider"]
            )
        return self._session

    def vstream_infos(self, direction: StreamDirection) -> list[VStreamInfo]:
        e = self.input if direction == StreamDirection.H2D else self.output
        return [
            VStreamInfo(
                e.name,
                f"{self.network_group}/{self.network_group}",
                direction,
                Format(FormatType.UINT8, e.order),
                e.quant,
                e.shape,
            )
        ]

    def compute(self, frames_q: numpy.ndarray) -> numpy.ndarray:
        """uint8 NHWC frames (N, H, W, C) -> uint8 outputs (N, *output shape)."""
        _check_alive()
        q = self.input.quant
        x = (frames_q.astype(numpy.float32) - q.qp_zp) * q.qp_scale
        # The compiled graph reads NHWC where the ONNX graph reads NCHW.
        nchw = numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))
        sess = self.session()
        (y,) = sess.run(None, {sess.get_inputs()[0].name: nchw})
        y = numpy.asarray(y, numpy.float32).reshape(len(frames_q), *self.output.shape)
        with _fake.STATE.lock:
            _fake.STATE.frames_run += len(frames_q)
        return quantize(y, self.output.quant)


def quantize(x: numpy.ndarray, q: QuantInfo) -> numpy.ndarray:
    """FLOAT32 -> uint8 as HailoRT does for a FLOAT32 user buffer: clip to limvals, round."""
    lo, hi = q.limvals_min, q.limvals_max
    if lo < hi:
        x = numpy.clip(x, lo, hi)
    return numpy.clip(numpy.rint(x / q.qp_scale + q.qp_zp), 0, 255).astype(numpy.uint8)


def dequantize(q_arr: numpy.ndarray, q: QuantInfo) -> numpy.ndarray:
    return ((q_arr.astype(numpy.float32) - q.qp_zp) * q.qp_scale).astype(numpy.float32)


def _check_load() -> None:
    with _fake.STATE.lock:
        if _fake.STATE.fail_loads > 0:
            _fake.STATE.fail_loads -= 1
            _fail(36)


def _check_alive() -> None:
    if _fake.STATE.dead:
        _fail(36)  # HAILO_DRIVER_OPERATION_FAILED


def _host_to_device(buf: numpy.ndarray, fmt: FormatType, edge: _Edge) -> numpy.ndarray:
    """A host buffer of one or more frames, reinterpreted by bytes as the edge's frames."""
    if fmt == FormatType.FLOAT32:
        flat = numpy.frombuffer(numpy.ascontiguousarray(buf).tobytes(), numpy.float32)
        return quantize(flat.reshape(-1, *edge.shape), edge.quant)
    flat8 = numpy.frombuffer(numpy.ascontiguousarray(buf).tobytes(), numpy.uint8)
    return flat8.reshape(-1, *edge.shape)


def _device_to_host(q_arr: numpy.ndarray, fmt: FormatType, edge: _Edge) -> numpy.ndarray:
    return dequantize(q_arr, edge.quant) if fmt == FormatType.FLOAT32 else q_arr


def _frame_bytes(edge: _Edge, fmt: FormatType) -> int:
    return int(numpy.prod(edge.shape)) * (4 if fmt == FormatType.FLOAT32 else 1)


# -- HEF and configure params (the vstreams API) --


class HEF:
    def __init__(self, hef_source: str | bytes) -> None:
        with ExceptionWrapper():
            if isinstance(hef_source, str):
                self._hef = _FakeHef(hef_source)
                self._path: str | None = hef_source
            else:
                raise ValueError("the fake HEF loads from a file path only")

    @property
    def path(self) -> str | None:
        return self._path

    def get_network_group_names(self) -> list[str]:
        return [self._hef.network_group]

    def get_input_vstream_infos(self, name: str | None = None) -> list[VStreamInfo]:
        return self._hef.vstream_infos(StreamDirection.H2D)

    def get_output_vstream_infos(self, name: str | None = None) -> list[VStreamInfo]:
        return self._hef.vstream_infos(StreamDirection.D2H)


class ConfigureParams:
    @staticmethod
    def create_from_hef(hef: HEF, interface: Any) -> dict[str, Any]:
        return {hef._hef.network_group: {"stream_interface": interface}}


class EmptyContextManager:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *args: Any) -> None:
        pass


class _Activation:
    def __init__(self, network: ConfiguredNetwork) -> None:
        self._network = network

    def __enter__(self) -> None:
        self._network._activated = True

    def __exit__(self, *args: Any) -> None:
        self._network._activated = False


class ConfiguredNetwork:
    def __init__(self, hef: _FakeHef, vdevice: VDevice) -> None:
        self._hef = hef
        self._vdevice = vdevice
        self._activated = False

    @property
    def name(self) -> str:
        return self._hef.network_group

    def get_networks_names(self) -> list[str]:
        return [f"{self.name}/{self.name}"]

    def get_input_vstream_infos(self, network_name: str | None = None) -> list[VStreamInfo]:
        return self._hef.vstream_infos(StreamDirection.H2D)

    def get_output_vstream_infos(self, network_name: str | None = None) -> list[VStreamInfo]:
        return self._hef.vstream_infos(StreamDirection.D2H)

    @staticmethod
    def create_params() -> dict[str, Any]:
        return {}

    def activate(self, network_group_params: Any = None) -> EmptyContextManager | _Activation:
        if self._vdevice._scheduled:
            return EmptyContextManager()  # the real one warns that this is deprecated
        return _Activation(self)


@dataclass
class _VStreamParams:
    user_buffer_format: Format
    timeout_ms: int
    queue_size: int


class InputVStreamParams:
    @staticmethod
    def make(
        configured_network: ConfiguredNetwork,
        quantized: Any = None,
        format_type: FormatType | None = None,
        timeout_ms: int | None = None,
        queue_size: int | None = None,
        network_name: str | None = None,
    ) -> dict[str, _VStreamParams]:
        return {
            i.name: _VStreamParams(
                Format(format_type or FormatType.AUTO, i.format.order),
                timeout_ms or DEFAULT_VSTREAM_TIMEOUT_MS,
                queue_size or DEFAULT_VSTREAM_QUEUE_SIZE,
            )
            for i in configured_network.get_input_vstream_infos()
        }


class OutputVStreamParams:
    @staticmethod
    def make(
        configured_network: ConfiguredNetwork,
        quantized: Any = None,
        format_type: FormatType | None = None,
        timeout_ms: int | None = None,
        queue_size: int | None = None,
        network_name: str | None = None,
    ) -> dict[str, _VStreamParams]:
        return {
            o.name: _VStreamParams(
                Format(format_type or FormatType.AUTO, o.format.order),
                timeout_ms or DEFAULT_VSTREAM_TIMEOUT_MS,
                queue_size or DEFAULT_VSTREAM_QUEUE_SIZE,
            )
            for o in configured_network.get_output_vstream_infos()
        }


class InferVStreams:
    def __init__(
        self,
        configured_net_group: ConfiguredNetwork,
        input_vstreams_params: dict[str, _VStreamParams],
        output_vstreams_params: dict[str, _VStreamParams],
        tf_nms_format: bool = False,
    ) -> None:
        self._ng = configured_net_group
        self._in = input_vstreams_params
        self._out = output_vstreams_params

    def __enter__(self) -> InferVStreams:
        return self

    def __exit__(self, *args: Any) -> bool:
        return False

    def infer(self, input_data: dict[str, numpy.ndarray] | numpy.ndarray) -> dict[str, Any]:
        hef = self._ng._hef
        if not isinstance(input_data, dict):
            input_data = {hef.input.name: input_data}
        (name, data), *_ = input_data.items()
        fmt = self._in[name].user_buffer_format
        if data.dtype.itemsize != _pyhailort.get_format_data_bytes(fmt):
            raise HailoRTException(
                f"{name} numpy array item size is {data.dtype.itemsize}, not "
                f"{_pyhailort.get_format_data_bytes(fmt)}"
            )
        n = data.shape[0]
        with ExceptionWrapper():
            if data.nbytes != n * _frame_bytes(hef.input, fmt.type):
                _fail(2)
            if not (self._ng._vdevice._scheduled or self._ng._activated):
                _fail(69)  # HAILO_NETWORK_GROUP_NOT_ACTIVATED: no scheduler, no activate()
            if _fake.STATE.hang:
                _fail(4)
            _check_alive()
            out_q = hef.compute(_host_to_device(data, fmt.type, hef.input))
        out_fmt = self._out[hef.output.name].user_buffer_format.type
        return {hef.output.name: _device_to_host(out_q, out_fmt, hef.output)}


# -- InferModel API --


class AsyncInferCompletionInfo:
    def __init__(self, exception: HailoRTException | None) -> None:
        self._exception = exception

    @property
    def exception(self) -> HailoRTException | None:
        return self._exception


class InferModel:
    class InferStream:
        def __init__(self, edge: _Edge, formats: dict[str, FormatType]) -> None:
            self._edge = edge
            self._formats = formats

        @property
        def name(self) -> str:
            return self._edge.name

        @property
        def shape(self) -> tuple[int, ...]:
            return self._edge.shape

        @property
        def format(self) -> Format:
            return Format(self._formats[self._edge.name], self._edge.order)

        def set_format_type(self, type: FormatType) -> None:
            self._formats[self._edge.name] = type

        @property
        def quant_infos(self) -> list[QuantInfo]:
            return [self._edge.quant]

        @property
        def is_nms(self) -> bool:
            return False

    def __init__(self, hef: _FakeHef, hef_path: str, vdevice: VDevice) -> None:
        self._fhef = hef
        self._hef_path = hef_path
        self._vdevice = vdevice
        # Default format type is the device's: UINT8 (AUTO) until the user sets FLOAT32.
        self._formats = {hef.input.name: FormatType.UINT8, hef.output.name: FormatType.UINT8}

    @property
    def hef(self) -> HEF:
        return HEF(self._hef_path)

    def set_batch_size(self, batch_size: int) -> None:
        pass

    def configure(self) -> ConfiguredInferModel:
        with ExceptionWrapper():
            if self._vdevice._vdevice is None:
                _fail(6)
            return ConfiguredInferModel(self)

    @property
    def input_names(self) -> list[str]:
        return [self._fhef.input.name]

    @property
    def output_names(self) -> list[str]:
        return [self._fhef.output.name]

    @property
    def inputs(self) -> list[InferModel.InferStream]:
        return [self.input()]

    @property
    def outputs(self) -> list[InferModel.InferStream]:
        return [self.output()]

    def input(self, name: str = "") -> InferModel.InferStream:
        with ExceptionWrapper():
            if name not in ("", self._fhef.input.name):
                _fail(61)
            return self.InferStream(self._fhef.input, self._formats)

    def output(self, name: str = "") -> InferModel.InferStream:
        with ExceptionWrapper():
            if name not in ("", self._fhef.output.name):
                _fail(61)
            return self.InferStream(self._fhef.output, self._formats)


class _Job:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.status = 0


class AsyncInferJob:
    MILLISECOND = 1 / 1000

    def __init__(self, job: _Job) -> None:
        self._job = job

    def wait(self, timeout_ms: int) -> None:
        # Like AsyncInferJobImpl::wait: only a timeout is an error here; a failed job reports
        # its status to the callback alone.
        with ExceptionWrapper():
            if not self._job.done.wait(timedelta(milliseconds=timeout_ms).total_seconds()):
                _fail(4)


class ConfiguredInferModel:
    class Bindings:
        class InferStream:
            def __init__(self, edge: _Edge, fmt: FormatType) -> None:
                self._edge = edge
                self._fmt = fmt
                self._buffer: numpy.ndarray | None = None

            @staticmethod
            def _validate_c_contiguous(buffer: numpy.ndarray) -> None:
                if not buffer.flags.c_contiguous:
                    raise HailoRTException("Buffer must be C_CONTIGUOUS")

            def set_buffer(self, buffer: numpy.ndarray) -> None:
                with ExceptionWrapper():
                    self._validate_c_contiguous(buffer)
                    # Like libhailort: only the byte count is checked, never the shape.
                    if buffer.nbytes != _frame_bytes(self._edge, self._fmt):
                        _fail(2)
                self._buffer = buffer

            def get_buffer(self, tf_format: bool | None = False) -> numpy.ndarray | None:
                return self._buffer

        def __init__(self, cim: ConfiguredInferModel) -> None:
            im = cim._infer_model
            self._inputs = {
                im._fhef.input.name: self.InferStream(
                    im._fhef.input, im._formats[im._fhef.input.name]
                )
            }
            self._outputs = {
                im._fhef.output.name: self.InferStream(
                    im._fhef.output, im._formats[im._fhef.output.name]
                )
            }

        def input(self, name: str = "") -> ConfiguredInferModel.Bindings.InferStream:
            if name == "" and len(self._inputs) == 1:
                name = next(iter(self._inputs))
            with ExceptionWrapper():
                if name not in self._inputs:
                    _fail(61)
                return self._inputs[name]

        def output(self, name: str = "") -> ConfiguredInferModel.Bindings.InferStream:
            if name == "" and len(self._outputs) == 1:
                name = next(iter(self._outputs))
            with ExceptionWrapper():
                if name not in self._outputs:
                    _fail(61)
                return self._outputs[name]

        def get(self) -> ConfiguredInferModel.Bindings:
            return self

    def __init__(self, infer_model: InferModel) -> None:
        self._infer_model = infer_model
        self._configured_infer_model: InferModel | None = infer_model
        self._input_names = infer_model.input_names
        self._output_names = infer_model.output_names
        self._buffer_guards: deque[list[Any]] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._queue: queue.Queue[Any] = queue.Queue()
        # libhailort runs user callbacks on one worker thread (execute_callbacks).
        self._thread = threading.Thread(target=self._work, daemon=True, name="fake-hailort-cb")
        self._thread.start()

    def __enter__(self) -> ConfiguredInferModel:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self._configured_infer_model = None

    def create_bindings(
        self,
        input_buffers: dict[str, numpy.ndarray] | None = None,
        output_buffers: dict[str, numpy.ndarray] | None = None,
    ) -> ConfiguredInferModel.Bindings:
        bindings = self.Bindings(self)
        for name, buffer in (input_buffers or {}).items():
            bindings.input(name).set_buffer(buffer)
        for name, buffer in (output_buffers or {}).items():
            bindings.output(name).set_buffer(buffer)
        return bindings

    def get_async_queue_size(self) -> int:
        return _fake.STATE.async_queue_size

    def wait_for_async_ready(self, timeout_ms: int = 1000, frames_count: int = 1) -> None:
        with ExceptionWrapper():
            size = _fake.STATE.async_queue_size
            with self._cond:
                ok = frames_count <= size and self._cond.wait_for(
                    lambda: self._pending + frames_count <= size, timeout_ms / 1000
                )
            if not ok:
                _fail(4)

    def run(self, bindings: list[ConfiguredInferModel.Bindings], timeout: int) -> None:
        with ExceptionWrapper():
            job = self.run_async(bindings)
            job.wait(timeout)

    def run_async(self, bindings: list[ConfiguredInferModel.Bindings], callback: Any = None) -> Any:
        buffers = []
        for b in bindings:
            for name in self._input_names:
                buffers.append(b.input(name).get_buffer())
            for name in self._output_names:
                buffers.append(b.output(name).get_buffer(None))
        self._buffer_guards.append(buffers)

        def callback_wrapper(error_code: int) -> None:
            exc = ExceptionWrapper.create_exception_from_status(error_code) if error_code else None
            if callback:
                callback(completion_info=AsyncInferCompletionInfo(exc))
            self._buffer_guards.popleft()

        with ExceptionWrapper():
            if self._configured_infer_model is None:
                _fail(6)
            if any(buf is None for buf in buffers):
                _fail(6)  # a binding without a buffer
            if _fake.STATE.async_queue_size < len(bindings):
                _fail(82)  # HAILO_QUEUE_IS_FULL
            _check_alive()
            job = _Job()
            with self._cond:
                self._pending += len(bindings)
            self._queue.put((bindings, job, callback_wrapper))
        return AsyncInferJob(job)

    def _work(self) -> None:
        while True:
            bindings, job, callback_wrapper = self._queue.get()
            if _fake.STATE.hang:
                continue  # the job never completes; its waits time out
            status = 0
            try:
                with _fake.STATE.lock:
                    if _fake.STATE.fail_runs > 0:
                        _fake.STATE.fail_runs -= 1
                        status = _fake.STATE.fail_status
                if not status:
                    self._compute(bindings)
            except _pyhailort.HailoRTStatusException as e:
                status = int(e.args[0])
            with self._cond:
                self._pending -= len(bindings)
                self._cond.notify_all()
            job.status = status
            callback_wrapper(status)
            job.done.set()

    def _compute(self, bindings: list[ConfiguredInferModel.Bindings]) -> None:
        im = self._infer_model
        hef = im._fhef
        in_fmt, out_fmt = im._formats[hef.input.name], im._formats[hef.output.name]
        frames = numpy.concatenate(
            [_host_to_device(b.input().get_buffer(), in_fmt, hef.input) for b in bindings]
        )
        out_q = hef.compute(frames)
        for b, q in zip(bindings, out_q, strict=True):
            host = _device_to_host(q, out_fmt, hef.output)
            dst = b.output().get_buffer(None)
            # Bytes, like the DMA copy into the user's buffer.
            src = numpy.ascontiguousarray(host).view(numpy.uint8).reshape(-1)
            dst.reshape(-1).view(numpy.uint8)[:] = src

    def shutdown(self) -> None:
        self._configured_infer_model = None


# -- devices --


class VDevice:
    def __init__(self, params: Any = None, *, device_ids: list[str] | None = None) -> None:
        self._vdevice: str | None = None
        self._id = "VDevice"
        self._params = params
        self._loaded_network_groups: list[ConfiguredNetwork] = []
        self._creation_pid = os.getpid()
        self._device_ids = device_ids
        self._open_vdevice()

    def _open_vdevice(self) -> None:
        if self._params is None:
            self._params = VDevice.create_params()
        with ExceptionWrapper():
            st = _fake.STATE
            if st.driver_version != _fake.LIBRARY_VERSION:
                _fail(76)
            if self._params.multi_process_service:
                if not st.service_running:
                    _fail(77)
                taken = None  # hailort.service owns the device and shares it
            else:
                with st.lock:
                    free = [d for d in st.devices if d not in st.in_use]
                    if st.busy_opens > 0:
                        st.busy_opens -= 1
                        free = []
                    if st.dead or st.held_elsewhere or not free:
                        _fail(74)
                    taken = free[0]
                    st.in_use.add(taken)
            with st.lock:
                st.vdevices_created += 1
                st.vdevices_alive += 1
                st.vdevice_params.append(self._params)
            self._vdevice = taken or "service"
        self._scheduled = self._params.scheduling_algorithm != _pyhailort.SchedulingAlgorithm.NONE

    def __enter__(self) -> VDevice:
        return self

    def release(self) -> None:
        if self._vdevice is not None:
            st = _fake.STATE
            with st.lock:
                st.in_use.discard(self._vdevice)
                st.vdevices_alive -= 1
            self._vdevice = None

    def __exit__(self, *args: Any) -> bool:
        self.release()
        return False

    def __del__(self) -> None:
        self.release()

    @staticmethod
    def create_params() -> _pyhailort.VDeviceParams:
        with ExceptionWrapper():
            return _pyhailort.VDeviceParams.default()

    def configure(self, hef: HEF, configure_params_by_name: Any = None) -> list[ConfiguredNetwork]:
        if self._creation_pid != os.getpid():
            raise HailoRTException(
                "VDevice can only be configured from the process it was created in."
            )
        with ExceptionWrapper():
            _check_load()
            self._check_arch(hef._hef)
            networks = [ConfiguredNetwork(hef._hef, self)]
        self._loaded_network_groups.extend(networks)
        return networks

    def get_physical_devices_ids(self) -> list[str]:
        return [self._vdevice] if self._vdevice else []

    def create_infer_model(self, hef_source: str | bytes, name: str = "") -> InferModel:
        if os.getpid() != self._creation_pid:
            raise HailoRTException(
                "InferModel can be created only from the process VDevice was created in."
            )
        with ExceptionWrapper():
            if not isinstance(hef_source, str):
                raise ValueError("the fake creates infer models from HEF paths only")
            _check_load()
            hef = _FakeHef(hef_source)
            self._check_arch(hef)
        return InferModel(hef, hef_source, self)

    @staticmethod
    def _check_arch(hef: _FakeHef) -> None:
        # Conservative: a HEF runs only on the architecture it was compiled for.
        if hef.arch.upper() != _fake.STATE.architecture:
            _fail(93)


class DeviceArchitectureTypes(IntEnum):
    HAILO8_A0 = 0
    HAILO8 = 1
    HAILO8L = 2

    def __str__(self) -> str:
        return self.name


class HailoFirmwareVersion:
    def __init__(self, text: str) -> None:
        self._text = text

    def __str__(self) -> str:
        return f"{self._text} (release,app,extended context switch buffer)"


class BoardInformation:
    def __init__(self) -> None:
        st = _fake.STATE
        self.protocol_version = 2
        self.firmware_version = HailoFirmwareVersion(st.firmware)
        self.board_name = "Hailo-8\x00\x00"
        self.device_architecture = DeviceArchitectureTypes[st.architecture]
        self.serial_number = ""
        self.part_number = ""
        self.product_name = ""


class Control:
    def __init__(self, device_id: str) -> None:
        self._device_id = device_id

    def identify(self) -> BoardInformation:
        with ExceptionWrapper():
            _check_alive()
            if _fake.STATE.identify_status:
                _fail(_fake.STATE.identify_status)
            return BoardInformation()


class Device:
    @classmethod
    def scan(cls) -> list[str]:
        st = _fake.STATE
        return [] if st.dead else list(st.devices)

    def __init__(self, device_id: str | None = None) -> None:
        if device_id is None:
            ids = Device.scan()
            if not ids:
                raise HailoRTException("HailoRT device not found in the system")
            device_id = ids[0]
        self._device_id = device_id
        self._control_object = Control(device_id)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *args: Any) -> bool:
        self.release()
        return False

    def release(self) -> None:
        pass

    @property
    def device_id(self) -> str:
        return self._device_id

    @property
    def control(self) -> Control:
        return self._control_object

"""Stand-in for the compiled ``_pyhailort`` extension: enums, plain structs, the status error.

Names and values follow hailort/libhailort/bindings/python/src/pyhailort.cpp (hailo8 branch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hailo_platform._fake import LIBRARY_VERSION

__version__ = LIBRARY_VERSION

# hailort.h HAILO_STATUS__X (the subset the fake raises or callers look up).
_STATUS = {
    0: "HAILO_SUCCESS",
    2: "HAILO_INVALID_ARGUMENT",
    4: "HAILO_TIMEOUT",
    6: "HAILO_INVALID_OPERATION",
    8: "HAILO_INTERNAL_FAILURE",
    13: "HAILO_OPEN_FILE_FAILURE",
    26: "HAILO_INVALID_HEF",
    36: "HAILO_DRIVER_OPERATION_FAILED",
    61: "HAILO_NOT_FOUND",
    62: "HAILO_COMMUNICATION_CLOSED",
    63: "HAILO_STREAM_ABORT",
    69: "HAILO_NETWORK_GROUP_NOT_ACTIVATED",
    82: "HAILO_QUEUE_IS_FULL",
    64: "HAILO_DRIVER_NOT_INSTALLED",
    73: "HAILO_DEVICE_IN_USE",
    74: "HAILO_OUT_OF_PHYSICAL_DEVICES",
    76: "HAILO_INVALID_DRIVER_VERSION",
    77: "HAILO_RPC_FAILED",
    87: "HAILO_DRIVER_TIMEOUT",
    93: "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE",
}


def get_status_message(status: int) -> str:
    return _STATUS.get(int(status), "")


class HailoRTStatusException(Exception):
    """Raised by the C++ layer with ``str(status)`` as its only argument (VALIDATE_STATUS)."""


class FormatType(Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class FormatOrder(Enum):
    AUTO = 0
    NHWC = 1
    NHCW = 2
    FCR = 3
    F8CR = 4
    NHW = 5
    NC = 6


class SchedulingAlgorithm(Enum):
    NONE = 0
    ROUND_ROBIN = 1


class StreamInterface(Enum):
    PCIe = 0
    INTEGRATED = 1
    ETH = 2
    MIPI = 3


class StreamDirection(Enum):
    H2D = 0
    D2H = 1


def get_format_data_bytes(fmt: Format) -> int:
    return 4 if fmt.type == FormatType.FLOAT32 else 1


@dataclass
class Format:
    type: FormatType
    order: FormatOrder
    flags: int = 0


@dataclass
class QuantInfo:
    qp_zp: float = 0.0
    qp_scale: float = 1.0
    limvals_min: float = 0.0
    limvals_max: float = 0.0


@dataclass
class VStreamInfo:
    name: str
    network_name: str
    direction: StreamDirection
    format: Format
    quant_info: QuantInfo
    shape: tuple[int, ...]  # no batch axis; (H, W, C), or (F,) for NC

    def __repr__(self) -> str:
        return f'VStreamInfo("{self.name}")'


@dataclass
class VDeviceParams:
    device_count: int = 1
    scheduling_algorithm: SchedulingAlgorithm = SchedulingAlgorithm.NONE
    group_id: str = "UNIQUE"
    multi_process_service: bool = False
    device_ids: list[str] = field(default_factory=list)

    @staticmethod
    def default() -> VDeviceParams:
        return VDeviceParams()

"""HailoRT status codes and the errors the Hailo backend raises from them."""

from __future__ import annotations

import re

from fsqd.errors import ConfigError, FsqdError

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

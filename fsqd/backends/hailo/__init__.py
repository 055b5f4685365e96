"""The Hailo-8 encoder backend on HailoRT's Python bindings (``hailo_platform``, imported lazily).

By job: ``status`` (HailoRT status codes and the errors made of them), ``settings`` (the
``[hailo]`` table), ``device`` (bindings, versions, opening the VDevice, ``fsqd probe``),
``network`` (the card-to-HEF frame contract, the range monitor, the two HailoRT APIs) and
``encoder`` (``HailoEncoder``: one VDevice per process, a worker thread, rebuilds).
"""

from fsqd.backends.hailo.device import (
    describe_device,
    device_holders,
    driver_version,
    import_hailo_platform,
    library_version,
    open_vdevice,
    version_mismatch_message,
)
from fsqd.backends.hailo.encoder import HailoEncoder
from fsqd.backends.hailo.network import RangeMonitor, check_shapes, hef_frame_shape, to_frames
from fsqd.backends.hailo.status import (
    EX_UNAVAILABLE,
    STATUS_NAMES,
    HailoRuntimeError,
    HailoUnavailableError,
    HailoVersionError,
    describe_status,
    status_of,
)
from fsqd.config.hailo import HailoSettings, parse_hailo

__all__ = [
    "EX_UNAVAILABLE",
    "STATUS_NAMES",
    "HailoEncoder",
    "HailoRuntimeError",
    "HailoSettings",
    "HailoUnavailableError",
    "HailoVersionError",
    "RangeMonitor",
    "check_shapes",
    "describe_device",
    "describe_status",
    "device_holders",
    "driver_version",
    "hef_frame_shape",
    "import_hailo_platform",
    "library_version",
    "open_vdevice",
    "parse_hailo",
    "status_of",
    "to_frames",
    "version_mismatch_message",
]

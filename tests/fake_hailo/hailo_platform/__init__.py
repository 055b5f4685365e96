"""A test fake of HailoRT's ``hailo_platform`` (4.23, hailo8 branch of hailo-ai/hailort).

Same import paths and exported names as the real package's ``__init__.py`` for everything
fsqd uses; see ``pyhailort/pyhailort.py`` for what is emulated and ``_fake.py`` for faults.
"""

from hailo_platform.pyhailort import _pyhailort
from hailo_platform.pyhailort.pyhailort import (
    HEF,
    AsyncInferJob,
    ConfigureParams,
    Device,
    FormatOrder,
    FormatType,
    HailoCommunicationClosedException,
    HailoRTException,
    HailoRTStreamAbortedByUser,
    HailoSchedulingAlgorithm,
    HailoStreamInterface,
    InferVStreams,
    InputVStreamParams,
    OutputVStreamParams,
    VDevice,
)

__version__ = "4.23.0"
if _pyhailort.__version__ != __version__:
    raise ImportError(
        f"_pyhailort version ({_pyhailort.__version__}) does not match pyhailort version "
        f"({__version__})"
    )

__all__ = [
    "HEF",
    "AsyncInferJob",
    "ConfigureParams",
    "Device",
    "FormatOrder",
    "FormatType",
    "HailoCommunicationClosedException",
    "HailoRTException",
    "HailoRTStreamAbortedByUser",
    "HailoSchedulingAlgorithm",
    "HailoStreamInterface",
    "InferVStreams",
    "InputVStreamParams",
    "OutputVStreamParams",
    "VDevice",
]

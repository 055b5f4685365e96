"""fsqd: IMU windows -> neural encoder -> Finite Scalar Quantization -> behaviour codes."""

import os
from typing import TYPE_CHECKING, Any

# Set before numpy loads: fsqd's own matrix work is small (the head, a few hundred codes
# at a time), where an OpenBLAS thread pool only fights onnxruntime's threads for the
# cores. An explicit setting from the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

if TYPE_CHECKING:
    from fsqd.fsq import FSQ

__all__ = ["FSQ", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # On first use: commands that never quantize (check-config, tail) skip numpy.
    if name == "FSQ":
        from fsqd.fsq import FSQ

        return FSQ
    raise AttributeError(f"module 'fsqd' has no attribute {name!r}")

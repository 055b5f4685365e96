"""fsqd: IMU windows -> neural encoder -> Finite Scalar Quantization -> behaviour codes."""

import os

# Set before numpy loads: fsqd's own matrix work is small (the head, a few hundred codes
# at a time), where an OpenBLAS thread pool only fights onnxruntime's threads for the
# cores. An explicit setting from the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from fsqd.fsq import FSQ

__all__ = ["FSQ", "__version__"]
__version__ = "0.1.0"

"""fsqd: IMU windows -> neural encoder -> Finite Scalar Quantization -> behaviour codes."""

from fsqd.fsq import FSQ

__all__ = ["FSQ", "__version__"]
__version__ = "0.1.0"

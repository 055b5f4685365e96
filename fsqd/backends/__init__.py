"""Encoder backends: everything up to the FSQ stage the card names.

``base`` (the ``Encoder`` interface), ``onnx`` (onnxruntime on the CPU), ``hailo/`` (the
Hailo-8 NPU through HailoRT), ``select`` (which one, and falling back to the CPU while the
NPU is away), ``inflight`` (batches in flight on an encoder). Backends build on
``fsqd.model``; the model package never imports a backend.
"""

from fsqd.backends.base import AsyncEncoder, Encoder

__all__ = ["AsyncEncoder", "Encoder"]

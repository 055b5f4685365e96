"""Reading a package's ``encoder.onnx`` as a graph (the ``onnx`` library, not onnxruntime).

Only the offline commands and the graph check import this; ``onnx`` and protobuf cost
~14 MB and ~0.2 s, which ``fsqd run`` does not pay when the card's graph check still holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fsqd.errors import ModelError, NoInputError
from fsqd.safefile import MODEL_MAX, regular_file

__all__ = ["load_onnx"]


def load_onnx(path: Path) -> Any:
    """The ONNX graph of a file; missing is NoInputError, unreadable a one-line ModelError."""
    import onnx

    if not path.exists():
        raise NoInputError(f"{path}: no such ONNX file")
    regular_file(path, what="an ONNX model", limit=MODEL_MAX)
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None

"""The model package format: ``model.json`` (the card) beside ``encoder.onnx`` [+ head, HEF].

``card`` (the card and its checks), ``package`` (a package on disk), ``layout`` (stream
windows -> the encoder's input layout), ``batching`` (fixed-batch encoders), ``graphcheck``
(the card against the graph, and the record of that check), ``surgery`` (finding and
cutting the FSQ in an ONNX graph), ``onnxio`` (reading a graph). The offline commands that
use them live in ``fsqd.commands.model_*``; nothing here imports a backend or the pipeline.
"""

from fsqd.model.card import ModelCard
from fsqd.model.package import ModelPackage, load_package

__all__ = ["ModelCard", "ModelPackage", "load_package"]

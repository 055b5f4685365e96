"""``[model]``: the model package and the backend that runs its encoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fsqd.errors import FsqdError
from fsqd.model.package import ModelPackage, load_package
from fsqd.tomlcheck import Table

__all__ = ["BACKENDS", "ModelConfig", "parse_model"]

BACKENDS = ("auto", "hailo", "onnx")


@dataclass(frozen=True)
class ModelConfig:
    package: ModelPackage
    backend: str = "auto"
    threads: int | None = None  # onnxruntime threads over up to two sessions (None: usable cores)


def parse_model(t: Table, base: Path) -> ModelConfig:
    """``path`` is relative to ``base`` (the config file's directory); None: the bundled model."""
    text = t.optional("path", str)
    path = None if text is None else base / Path(text).expanduser()
    backend = t.choice("backend", BACKENDS, "auto")
    threads = t.optional_integer("threads", low=1, high=64)
    t.done()
    try:
        package = load_package(path)
    except FsqdError as e:
        raise t.error("path", str(e)) from None
    return ModelConfig(package, backend, threads)

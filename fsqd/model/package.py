"""A model package on disk: ``model.json`` + ``encoder.onnx`` [+ ``head.onnx``, ``encoder.hef``]."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fsqd.errors import ModelError, NoInputError
from fsqd.model.card import ModelCard
from fsqd.safefile import MODEL_MAX, regular_file

CARD_FILE = "model.json"
DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    card: ModelCard

    @property
    def encoder_onnx(self) -> Path:
        return self.path / self.card.encoder_onnx

    @property
    def encoder_hef(self) -> Path | None:
        return None if self.card.encoder_hef is None else self.path / self.card.encoder_hef

    @property
    def head_onnx(self) -> Path | None:
        return None if self.card.head is None else self.path / self.card.head.file

    @property
    def label(self) -> str:
        """``name@version``, the model tag every output line carries."""
        return f"{self.card.name}@{self.card.version}"


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    return Path(str(resources.files("fsqd") / "models" / name))


def load_package(path: str | Path | None = None) -> ModelPackage:
    """Read and check a package directory; ``None`` means the bundled default model.

    This checks the card and that its files exist; the backends check the card
    against the ONNX graphs when they open them.
    """
    root = bundled_model_path() if path is None else Path(path)
    if not root.exists():
        raise NoInputError(f"{root}: no such model package")
    if root.is_file():
        raise ModelError(
            f"{root}: a model package is a directory with {CARD_FILE}; "
            "to use a full exported model run `fsqd model import` first"
        )
    card = ModelCard.load(root / CARD_FILE)
    pkg = ModelPackage(root, card)
    for f in (pkg.encoder_onnx, pkg.head_onnx):
        if f is not None and not f.exists():
            raise NoInputError(f"{f}: the model card names this file but it is missing")
        if f is not None:
            regular_file(f, what="an ONNX model", limit=MODEL_MAX)
    return pkg

"""Fixtures for the Hailo path: the fake ``hailo_platform`` on sys.path and fake HEFs.

Import the fixtures into a test module (``from hailo_support import fake_hailo, ...``).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fsqd.model.package import ModelPackage, load_package

FAKE_ROOT = Path(__file__).parent / "fake_hailo"

# A calibration that covers normalised inputs (z-scores) and the bounded FSQ range.
GOOD_IN = {"qp_scale": 8.0 / 255.0, "qp_zp": 128.0, "limvals_min": -4.0157, "limvals_max": 3.9843}
GOOD_OUT = {"qp_scale": 0.034, "qp_zp": 128.0, "limvals_min": -4.352, "limvals_max": 4.318}
# The user's M1.3 HEF (DFC 3.32, calibrated on random data): inputs [0, 1], outputs ~[-3.03, 3].
RANDOM_CALIB_IN = {"qp_scale": 1.0 / 255.0, "qp_zp": 0.0, "limvals_min": 0.0, "limvals_max": 1.0}
RANDOM_CALIB_OUT = {
    "qp_scale": 0.0236,
    "qp_zp": 128.0,
    "limvals_min": -3.0208,
    "limvals_max": 2.9972,
}


def _drop_fake_modules() -> None:
    for name in list(sys.modules):
        if name == "hailo_platform" or name.startswith("hailo_platform."):
            del sys.modules[name]


@pytest.fixture
def fake_hailo() -> Iterator[ModuleType]:
    """The fake ``hailo_platform`` importable, with a fresh emulated device; its ``_fake``."""
    _drop_fake_modules()
    sys.path.insert(0, str(FAKE_ROOT))
    try:
        import hailo_platform._fake as fake

        fake.reset()
        yield fake
    finally:
        sys.path.remove(str(FAKE_ROOT))
        _drop_fake_modules()


def write_fake_hef(
    pkg: ModelPackage,
    dest: Path,
    *,
    in_quant: dict[str, float] | None = None,
    out_quant: dict[str, float] | None = None,
    in_shape: list[int] | None = None,
    out_shape: list[int] | None = None,
    arch: str = "hailo8",
) -> ModelPackage:
    """Copy ``pkg`` to ``dest`` and add an ``encoder.hef`` the fake runs on its ONNX encoder."""
    shutil.copytree(pkg.path, dest)
    c, d, t = (int(v) for v in pkg.card.input.shape[1:] if v is not None)
    hef: dict[str, Any] = {
        "fake_hef": 1,
        "network_group": "m13",
        "arch": arch,
        "onnx": pkg.card.encoder_onnx,
        "input": {
            "name": "m13/input_layer1",
            "shape": in_shape or [d, t, c],
            "quant": in_quant or GOOD_IN,
        },
        "output": {
            "name": "m13/ew_sub1",
            "shape": out_shape or [1, 1, pkg.card.output.width],
            "quant": out_quant or GOOD_OUT,
        },
    }
    (dest / "encoder.hef").write_text(json.dumps(hef), encoding="utf-8")
    return load_package(dest)


@pytest.fixture
def hef_pkg(pkg_d2: ModelPackage, tmp_path: Path) -> ModelPackage:
    """The user-shaped package (2 devices, 8,6,5,5,4) with a well-calibrated fake HEF."""
    return write_fake_hef(pkg_d2, tmp_path / "with_hef")


def windows(n: int, card_shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Normalised-looking windows (z-scores) in the card's layout (N, C, ...): a level per
    window and channel (posture, gravity) plus movement; values stay mostly within +-4."""
    rng = np.random.default_rng(seed)
    level = rng.standard_normal((n, card_shape[0], *(1,) * (len(card_shape) - 1)))
    x = level + 0.5 * rng.standard_normal((n, *card_shape))
    return (x * scale).astype(np.float32)


@pytest.fixture(autouse=True)
def structlog_defaults() -> Iterator[None]:
    """capture_logs sees every level only under structlog's defaults (the CLI filters)."""
    import structlog

    structlog.reset_defaults()
    yield
    structlog.reset_defaults()

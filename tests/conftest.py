"""Shared fixtures: committed model exports (with torch's answers) and imported packages."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fsqd.cli import main
from fsqd.model.importer import ImportOptions, import_model
from fsqd.model.package import ModelPackage, load_package

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = FIXTURES / "models"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FSQD_HARDWARE") == "1":
        return
    skip = pytest.mark.skip(reason="needs real hardware: set FSQD_HARDWARE=1")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pkg_d2(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    """The user-shaped export (2 devices, levels 8,6,5,5,4, 10-class head) imported."""
    out = tmp_path_factory.mktemp("pkg") / "m13_d2"
    import_model(
        MODELS / "m13_d2" / "full.onnx",
        out,
        ImportOptions(levels=(8, 6, 5, 5, 4), sample_rate_hz=100.0),
    )
    return load_package(out)


@pytest.fixture(scope="session")
def pkg_nohead(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    out = tmp_path_factory.mktemp("pkg") / "m13_d1_nohead"
    import_model(MODELS / "m13_d1_nohead" / "full.onnx", out, ImportOptions(sample_rate_hz=100.0))
    return load_package(out)


def parity(name: str) -> dict[str, np.ndarray]:
    with np.load(MODELS / name / "parity.npz") as z:
        return {k: z[k] for k in z.files}


RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``fsqd ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run

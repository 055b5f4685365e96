"""Shared fixtures: committed model exports (with torch's answers) and imported packages."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog

from fsqd.cli import main
from fsqd.commands.model_import import ImportOptions, import_model
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


@pytest.fixture(autouse=True)
def _structlog_unconfigured() -> Iterator[None]:
    """Each test starts with structlog as a fresh process has it (nothing configured):
    a test that configures it (capture_logs, configure_logging) must not leave stdout
    logging behind for the next test's in-process CLI run."""
    yield
    structlog.reset_defaults()


# -- MQTT: a real Mosquitto broker on a free loopback port (tests/mosquitto.py) --

from mosquitto import Mosquitto, TlsFiles, make_tls, mosquitto_missing  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """An anonymous broker, started; tests may stop() and start() it on the same port."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Build brokers with options (users=, tls=, require_client_cert=); all stopped at the end."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    made: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        b = Mosquitto(tmp_path / f"mosquitto{len(made)}", **options)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.stop()


# -- a small filesystem: the state directory of a node whose disk is nearly full --


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (root only; skipped elsewhere)."""
    from smallfs import tmpfs

    with tmpfs(tmp_path / "small", "size=1m,mode=0755") as where:
        yield where

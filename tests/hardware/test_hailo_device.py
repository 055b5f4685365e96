"""On a Raspberry Pi 5 with a Hailo-8 and HailoRT (`sudo apt install hailo-all`), run with

    FSQD_HARDWARE=1 FSQD_HEF_PACKAGE=/path/to/pkg python -m pytest tests/hardware -q

from a venv made with --system-site-packages (so ``hailo_platform`` is importable). The
package must hold ``encoder.hef`` compiled from its own ``encoder.onnx`` (see docs/hailo.md).
Nothing else may hold /dev/hailo0 unless multi_process_service is used.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from fsqd.backends.hailo import HailoEncoder, HailoSettings, describe_device
from fsqd.backends.onnx import OnnxEncoder
from fsqd.backends.select import FallbackEncoder, hef_path, open_encoder
from fsqd.commands.model_calib import build_calibration
from fsqd.commands.model_parity import run_parity
from fsqd.model.package import ModelPackage, load_package

pytestmark = pytest.mark.hardware


@pytest.fixture(scope="module")
def pkg() -> ModelPackage:
    where = os.environ.get("FSQD_HEF_PACKAGE")
    if not where:
        pytest.skip("set FSQD_HEF_PACKAGE to a model package with encoder.hef")
    p = load_package(Path(where))
    if hef_path(p) is None:
        pytest.skip(f"{where} has no encoder.hef")
    return p


def _windows(p: ModelPackage, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = tuple(int(v) for v in p.card.input.shape[1:] if v)
    level = rng.standard_normal((n, shape[0], *(1,) * (len(shape) - 1)))
    return (level + 0.5 * rng.standard_normal((n, *shape))).astype(np.float32)


def test_the_device_identifies_itself() -> None:
    info = describe_device()
    assert info is not None, "hailo_platform is not importable"
    assert info["devices"], info
    dev = info["devices"][0]
    assert "error" not in dev, dev
    assert dev["architecture"] in ("HAILO8", "HAILO8L")
    # Driver, firmware and library must be the same x.y.z.
    assert info["driver_version"] == info["hailort_version"], info


def test_the_hef_matches_the_card_and_the_cpu(pkg: ModelPackage) -> None:
    x = _windows(pkg, 256)
    enc = HailoEncoder(pkg, hef_path(pkg))  # type: ignore[arg-type]
    try:
        assert enc.api == "infer_model"
        y = enc(x)
        stats = enc.stats()
    finally:
        enc.close()
    cpu = OnnxEncoder(pkg)(x)
    cos = (y * cpu).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(cpu, axis=1)
    assert cos.mean() >= 0.95, f"cosine {cos.mean():.4f}; range share {stats}"


def test_async_submissions_equal_sync_results(pkg: ModelPackage) -> None:
    xs = [_windows(pkg, 32) + i for i in range(4)]
    enc = HailoEncoder(pkg, hef_path(pkg))  # type: ignore[arg-type]
    try:
        want = [enc(x) for x in xs]

        async def main() -> list[np.ndarray]:
            return list(await asyncio.gather(*(asyncio.wrap_future(enc.submit(x)) for x in xs)))

        for got, w in zip(asyncio.run(main()), want, strict=True):
            np.testing.assert_array_equal(got, w)
    finally:
        enc.close()


def test_auto_chooses_the_npu(pkg: ModelPackage) -> None:
    enc = open_encoder(pkg, "auto", hailo=HailoSettings())
    try:
        assert isinstance(enc, FallbackEncoder) and enc.name == "hailo"
    finally:
        enc.close()


def test_parity_report(pkg: ModelPackage, tmp_path: Path) -> None:
    w = tmp_path / "w.npy"
    np.save(w, _windows(pkg, 512))
    report = run_parity(pkg, w)
    print("\n".join(report.lines()))
    assert "hailo" in report.backends
    assert report.passed


def test_calibration_set_has_the_hef_frame_shape(pkg: ModelPackage, tmp_path: Path) -> None:
    from fsqd.units import CHANNELS

    if pkg.card.channel_names != CHANNELS:
        pytest.skip("the simulator writes ax..mz only")
    report = build_calibration(pkg, tmp_path / "c.npy", sim_minutes=1)
    enc = HailoEncoder(pkg, hef_path(pkg))  # type: ignore[arg-type]
    try:
        assert enc._run is not None
        assert report.shape[1:] == tuple(enc._run.in_shape)
    finally:
        enc.close()

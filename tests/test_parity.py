"""`fsqd model parity`: every available backend on the same windows, against the targets."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import RunCli
from hailo_support import (
    RANDOM_CALIB_IN,
    RANDOM_CALIB_OUT,
    fake_hailo,
    hef_pkg,
    structlog_defaults,
    windows,
    write_fake_hef,
)

import fsqd.backends.hailo.device as hailo_device
from fsqd.backends.onnx import OnnxEncoder
from fsqd.commands.model_parity import compare, cosine, run_parity
from fsqd.errors import DataError
from fsqd.model.package import ModelPackage

__all__ = ["fake_hailo", "hef_pkg", "structlog_defaults"]


@pytest.fixture
def w(tmp_path: Path) -> Path:
    path = tmp_path / "w.npy"
    np.save(path, windows(200, (9, 2, 100)))
    return path


def test_cosine() -> None:
    a = np.array([[1, 0], [0, 0], [1, 1], [0, 0]], np.float32)
    b = np.array([[2, 0], [0, 0], [-1, -1], [1, 0]], np.float32)
    np.testing.assert_allclose(cosine(a, b), [1.0, 1.0, -1.0, 0.0])


def test_a_calibrated_hef_meets_the_target(
    fake_hailo: ModuleType, hef_pkg: ModelPackage, w: Path
) -> None:
    r = run_parity(hef_pkg, w)
    assert r.backends == ("hailo", "onnx") and r.skipped == {}
    (c,) = r.comparisons
    assert (c.a, c.b, c.windows, c.target) == ("hailo", "onnx", 200, 0.95)
    assert c.cosine_mean > 0.999 and c.passed and r.passed
    assert 0 < c.max_abs_diff < 0.15 and c.same_codes >= 0.9
    assert r.hailo["input_out_of_range_share"] < 0.01
    assert fake_hailo.STATE.vdevices_alive == 0


def test_the_users_random_calibration_fails_it(
    fake_hailo: ModuleType, pkg_d2: ModelPackage, tmp_path: Path, w: Path
) -> None:
    pkg = write_fake_hef(
        pkg_d2, tmp_path / "m13", in_quant=RANDOM_CALIB_IN, out_quant=RANDOM_CALIB_OUT
    )
    r = run_parity(pkg, w)
    (c,) = r.comparisons
    assert c.cosine_mean < 0.95 and c.passed is False and not r.passed
    assert c.same_codes < 0.5
    assert r.hailo["input_out_of_range_share"] > 0.5
    text = "\n".join(r.lines())
    assert "FAIL" in text and "inputs outside the HEF's range [0, 1]" in text


def test_without_a_hef_only_the_cpu_runs_and_a_reference_is_compared(
    pkg_d2: ModelPackage, tmp_path: Path, w: Path
) -> None:
    y = OnnxEncoder(pkg_d2)(np.load(w))
    close, far = tmp_path / "close.npy", tmp_path / "far.npy"
    np.save(close, y + np.random.default_rng(1).normal(0, 1e-3, y.shape).astype(np.float32))
    np.save(far, y[::-1].copy())
    r = run_parity(pkg_d2, w, reference=close)
    assert r.backends == ("onnx", "reference")
    assert r.skipped == {"hailo": "no encoder.hef in the package"}
    (c,) = r.comparisons
    assert (c.a, c.b, c.target) == ("onnx", "reference", 0.99) and c.passed
    assert not run_parity(pkg_d2, w, reference=far).passed


def test_an_unavailable_device_is_skipped_with_the_reason(
    fake_hailo: ModuleType, hef_pkg: ModelPackage, w: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hailo_device, "_sleep", lambda s: None)
    fake_hailo.STATE.held_elsewhere = True
    r = run_parity(hef_pkg, w)
    assert r.backends == ("onnx",) and r.comparisons == ()
    assert "HAILO_OUT_OF_PHYSICAL_DEVICES" in r.skipped["hailo"]


def test_projection_stage_codes_are_bounded_first(pkg_d2: ModelPackage) -> None:
    import dataclasses

    card = dataclasses.replace(
        pkg_d2.card, output=dataclasses.replace(pkg_d2.card.output, stage="projection")
    )
    pkg = ModelPackage(pkg_d2.path, card)
    za = np.full((1, 5), 0.1, np.float32)
    zb = np.full((1, 5), 0.45, np.float32)
    # Read as bounded values both round to level 0; bounded first (L=8) they give 0 and 1.
    assert compare(pkg, "a", za, "b", zb).same_codes == 0.0
    assert compare(pkg_d2, "a", za, "b", zb).same_codes == 1.0


def test_bad_inputs(pkg_d2: ModelPackage, tmp_path: Path, w: Path) -> None:
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 2, 100, 9), np.float32))
    with pytest.raises(DataError, match=r"expects \[N, 9, 2, 100\]"):
        run_parity(pkg_d2, wrong)
    ref = tmp_path / "ref.npy"
    np.save(ref, np.zeros((200, 4), np.float32))
    with pytest.raises(DataError, match=r"expected \[200, 5\]"):
        run_parity(pkg_d2, w, reference=ref)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 9, 2, 100), np.nan, np.float32))
    with pytest.raises(DataError, match="NaN"):
        run_parity(pkg_d2, nan)


def test_cli(
    run_cli: RunCli,
    fake_hailo: ModuleType,
    pkg_d2: ModelPackage,
    hef_pkg: ModelPackage,
    tmp_path: Path,
    w: Path,
) -> None:
    code, out, err = run_cli("model", "parity", hef_pkg.path, "--windows", w)
    assert code == 0, err
    assert out.splitlines()[0] == "200 windows through hailo, onnx"
    assert ">= 0.95 ok" in out
    code, out, _ = run_cli("model", "parity", hef_pkg.path, "--windows", w, "--json")
    d = json.loads(out)
    assert d["passed"] is True and d["comparisons"][0]["target"] == 0.95
    bad = write_fake_hef(pkg_d2, tmp_path / "bad", in_quant=RANDOM_CALIB_IN)
    code, out, err = run_cli("model", "parity", bad.path, "--windows", w)
    assert code == 1 and "FAIL" in out
    assert "hailo_input_out_of_range" in err  # the CLI shows warnings on stderr
    code, out, err = run_cli("model", "parity", hef_pkg.path, "--windows", tmp_path / "none")
    assert (code, out) == (66, "") and err.count("\n") == 1

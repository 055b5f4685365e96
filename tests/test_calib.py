"""`fsqd model calib`: real windows, normalised like the daemon, laid out NHWC."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import RunCli

from fsqd.commands.model_calib import build_calibration
from fsqd.errors import DataError, UsageError
from fsqd.model.package import ModelPackage, load_package
from fsqd.sim import SimConfig, simulate, write_csv


def _normalised(pkg: ModelPackage, x: np.ndarray) -> np.ndarray:
    mean, std = pkg.card.stream_mean_std()
    return ((x - mean) / std).astype(np.float32)


def test_simulated_windows_are_normalised_nhwc(tmp_path: Path) -> None:
    pkg = load_package(None)  # bundled: N,9,1,100, hop 50
    out = tmp_path / "calib.npy"
    report = build_calibration(pkg, out, sim_minutes=0.5)
    frames = np.load(out)
    assert frames.dtype == np.float32 and frames.shape == report.shape
    n = (3000 - 100) // pkg.card.hop + 1
    assert frames.shape == (n, 1, 100, 9) and report.windows_seen == n
    # Independently: the same simulation, normalised by hand, window k at k * hop.
    rec = simulate(30.0, SimConfig(rate_hz=pkg.card.sample_rate_hz, seed=0))
    z = _normalised(pkg, rec.x)
    for k in (0, 7, n - 1):
        s = k * pkg.card.hop
        np.testing.assert_allclose(frames[k, 0], z[s : s + 100], rtol=1e-6, atol=1e-6)


def test_two_devices_from_a_recording(pkg_d2: ModelPackage, tmp_path: Path) -> None:
    rec = simulate(20.0, SimConfig(devices=2, seed=3))
    csv = tmp_path / "two.csv"
    write_csv(rec, csv)
    out = tmp_path / "c.npy"
    report = build_calibration(pkg_d2, out, recordings=[csv])
    frames = np.load(out)
    assert frames.shape[1:] == (2, 100, 9)
    z = _normalised(pkg_d2, rec.x)
    s = 3 * pkg_d2.card.hop
    for d in range(2):  # frame (D, T, C) <- stream columns device-major
        np.testing.assert_allclose(frames[3, d], z[s : s + 100, d * 9 : d * 9 + 9], atol=1e-4)
    names = [r.name for r in report.channels]
    assert names[:2] == ["ax_0", "ay_0"] and names[9] == "ax_1" and len(names) == 18
    ay1 = report.channels[10]
    assert ay1.min == pytest.approx(float(frames[:, 1, :, 1].min()), abs=1e-6)
    assert ay1.max == pytest.approx(float(frames[:, 1, :, 1].max()), abs=1e-6)
    assert any("ax_1" in line for line in report.lines())


def test_max_windows_spreads_over_the_whole_input(tmp_path: Path) -> None:
    pkg = load_package(None)
    full = build_calibration(pkg, tmp_path / "a.npy", sim_minutes=1)
    few = build_calibration(pkg, tmp_path / "b.npy", sim_minutes=1, max_windows=5)
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert b.shape[0] == 5 and few.windows_seen == full.windows_seen == len(a)
    np.testing.assert_array_equal(b[0], a[0])
    np.testing.assert_array_equal(b[-1], a[-1])


def test_source_must_be_one_of_the_two(tmp_path: Path) -> None:
    pkg = load_package(None)
    with pytest.raises(UsageError, match="not both"):
        build_calibration(pkg, tmp_path / "x.npy")
    with pytest.raises(UsageError, match="not both"):
        build_calibration(pkg, tmp_path / "x.npy", recordings=[tmp_path], sim_minutes=1)
    with pytest.raises(UsageError, match="must be > 0"):
        build_calibration(pkg, tmp_path / "x.npy", sim_minutes=0)


def test_a_recording_shorter_than_a_window(tmp_path: Path) -> None:
    csv = tmp_path / "short.csv"
    write_csv(simulate(0.5), csv)
    with pytest.raises(DataError, match="no complete 100-sample window"):
        build_calibration(load_package(None), tmp_path / "x.npy", recordings=[csv])
    assert not (tmp_path / "x.npy").exists()


def test_the_simulator_only_fits_its_own_channels(tmp_path: Path) -> None:
    pkg = load_package(None)
    chans = tuple(dataclasses.replace(c, name=c.name.upper()) for c in pkg.card.channels)
    other = ModelPackage(pkg.path, dataclasses.replace(pkg.card, channels=chans))
    with pytest.raises(UsageError, match="use --from with real recordings"):
        build_calibration(other, tmp_path / "x.npy", sim_minutes=1)


def test_cli(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "calib.npy"
    code, stdout, err = run_cli("model", "calib", "--out", out, "--sim-minutes", "0.2", "-")
    assert code == 66 and "no such model package" in err
    pkg = Path(__file__).parent.parent / "fsqd" / "models" / "default"
    code, stdout, err = run_cli("model", "calib", pkg, "--out", out, "--sim-minutes", "0.2")
    assert code == 0, err
    assert stdout.startswith(f"wrote {out}: 23 windows NHWC [1, 100, 9] float32")
    assert len(stdout.splitlines()) == 2 + 9
    code, _, err = run_cli("model", "calib", pkg, "--out", out)
    assert code == 64 and err.count("\n") == 1

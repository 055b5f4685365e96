"""`fsqd model calibrate` and `fsqd model evaluate` on simulated labelled recordings."""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RunCli

from fsqd.commands.labelled_windows import load_labelled, split_blocks, strided
from fsqd.commands.model_calibrate import CalibrateOptions, calibrate
from fsqd.commands.model_evaluate import EvaluateOptions, evaluate
from fsqd.commands.simulate import SimulateOptions, simulate
from fsqd.errors import DataError, ModelError, UsageError
from fsqd.model.package import bundled_model_path, load_package
from fsqd.sim.csvout import write_csv
from fsqd.sim.simulator import LabelledSamples, SimConfig, Simulator

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    d = tmp_path_factory.mktemp("labelled")
    out = []
    for seed in (31, 32):
        f = d / f"sim{seed}.csv"
        simulate(SimulateOptions(out=f, duration_s=720.0, seed=seed))
        out.append(f)
    return tuple(out)


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    """A copy of the bundled package without its calibration."""
    dst = tmp_path / "pkg"
    shutil.copytree(bundled_model_path(), dst)
    card = json.loads((dst / "model.json").read_text())
    del card["calibration"]
    (dst / "model.json").write_text(json.dumps(card))
    return dst


def test_calibrate_writes_the_section_with_provenance(pkg: Path, data: tuple[Path, ...]) -> None:
    result = calibrate(CalibrateOptions(pkg, data))
    card = load_package(pkg).card
    cal = card.calibration
    assert cal is not None and cal == result.calibration
    assert 1.1 < cal.temperature < 2.5  # the demo head is overconfident at boundaries
    assert cal.conformal is not None and cal.conformal.method == "lac"
    assert cal.conformal.coverage == 0.9 and cal.conformal.class_thresholds is None
    assert cal.bias is not None and len(cal.bias) == 5 and abs(sum(cal.bias)) < 1e-9
    # The behaviour model: every label's share of the windows, and bouts as long as the
    # labels' own runs (one stretch per file: no bout spans two recordings).
    sm = cal.semi_markov
    assert sm is not None and card.head is not None
    d = load_labelled(load_package(pkg), data)
    share = np.bincount(d.labels, minlength=len(card.head.labels)) / len(d)
    assert np.asarray(sm.prior) == pytest.approx(share, abs=0.01)
    runs = [len(r) for f in range(2) for r in np.split(
        d.labels[d.file == f], np.flatnonzero(np.diff(d.labels[d.file == f])) + 1
    )]  # fmt: skip
    mean_bout_s = float(np.dot(share, [m.mean_s for m in sm.durations]))
    assert 0.5 < mean_bout_s / (np.mean(runs) * d.hop_s) < 2.0
    ref = cal.code_reference
    assert ref is not None and sum(ref.counts) == 2 * ((72000 - 100) // 50 + 1)
    prov = cal.provenance
    import hashlib

    assert [d["sha256"] for d in prov["data"]] == [
        hashlib.sha256(f.read_bytes()).hexdigest() for f in data
    ]
    assert prov["stride"] == 2 and prov["windows"]["cut"] == sum(ref.counts)
    assert prov["windows"]["fit"] + prov["windows"]["held_out"] == 2 * 720
    held = cal.metrics["held_out"]
    assert held["calibrated"]["nll"] < held["raw"]["nll"]
    assert held["calibrated"]["ece"] < held["raw"]["ece"]
    assert 0.85 < held["sets"]["coverage"] < 0.95
    # Everything else on the card is as it was.
    before = load_package(bundled_model_path()).card
    assert dataclasses.replace(card, calibration=None) == dataclasses.replace(
        before, calibration=None
    )
    lines = "\n".join(result.lines())
    assert "ECE (15 equal-width bins)" in lines and "LAC sets at 0.9" in lines


def test_class_conditional_aps_with_temperature_only(pkg: Path, data: tuple[Path, ...]) -> None:
    opts = CalibrateOptions(pkg, data, method="aps", class_conditional=True, bias=False)
    cal = calibrate(opts).calibration
    assert cal.bias is None
    assert cal.conformal is not None and cal.conformal.method == "aps"
    assert cal.conformal.class_thresholds is not None
    assert len(cal.conformal.class_thresholds) == 5


def test_windows_are_cut_and_labelled_as_replay_cuts_them(tmp_path: Path) -> None:
    """Labels change at 10.0 s: a window is 'walk' iff its last sample is at or after it;
    at 50 Hz (resampled to the card's 100 Hz) the label is that of the last input sample
    at or before the window's end."""
    for rate in (100.0, 50.0):
        rec = Simulator(SimConfig(rate_hz=rate, seed=4)).read(int(20 * rate))
        labels = np.where(rec.t >= 10.0, 1, 0).astype(np.int16)
        f = tmp_path / f"two_{rate:g}.csv"
        write_csv(LabelledSamples(rec.t, rec.x, labels), f)
        d = load_labelled(load_package(None), [f])
        expected = np.where(rec.t[np.searchsorted(rec.t, d.t_end + 1e-9) - 1] >= 10.0, 1, 0)
        assert np.array_equal(d.labels, expected)
        assert (d.labels == 0).any() and (d.labels == 1).any()
        if rate == 100.0:
            assert len(d) == (2000 - 100) // 50 + 1
            assert np.allclose(d.t_end, rec.t[99::50])
        assert np.array_equal(strided(d), np.arange(0, len(d), 2))


def test_fit_and_held_out_are_disjoint_time_blocks(data: tuple[Path, ...]) -> None:
    d = load_labelled(load_package(None), list(data))
    fit, held = split_blocks(d)
    assert not set(fit) & set(held)
    assert sorted([*fit, *held]) == list(strided(d))
    for f in range(2):
        t = d.t_end[held[d.file[held] == f]] - d.t_end[d.file == f][0]
        assert set((t // 60).astype(int) % 3) == {2}


def test_evaluate_reports_calibrated_numbers(
    pkg: Path, data: tuple[Path, ...], run_cli: RunCli
) -> None:
    raw = evaluate(EvaluateOptions(pkg, data[:1]))
    assert not raw["has_calibration"] and "sets" not in raw
    assert raw["segments"]["model"] == "hysteresis"  # no behaviour model: the fall-back
    calibrate(CalibrateOptions(pkg, data[:1]))
    code, out, _ = run_cli("model", "evaluate", pkg, "--data", data[1], "--json")
    assert code == 0
    report = json.loads(out)
    assert report["has_calibration"] and report["method"] == "lac"
    assert report["windows"] == 720
    assert np.sum(report["confusion"]) == 720
    assert 0 < report["calibrated"]["ece"] < report["raw"]["ece"]
    assert set(report["sets"]) >= {"coverage", "per_label", "mean_set_size"}
    # The states run on every window, with the semi-Markov model calibrate fitted.
    seg = report["segments"]
    assert seg["model"] == "explicit-duration HMM" and seg["windows"] == (72000 - 100) // 50 + 1
    assert seg["changes_per_hour"]["state"] <= seg["changes_per_hour"]["argmax"]
    assert seg["accuracy"]["state"] > 0.7
    code, out, _ = run_cli("model", "evaluate", pkg, "--data", data[1])
    assert code == 0 and "confusion (rows: true" in out and "LAC sets" in out
    assert "behaviour states (explicit-duration HMM, lag 1.00 s)" in out


def test_plots_are_written(pkg: Path, data: tuple[Path, ...], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    calibrate(CalibrateOptions(pkg, data[:1], plots=tmp_path / "p"))
    evaluate(EvaluateOptions(pkg, data[1:], plots=tmp_path / "e"))
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"reliability.png", "coverage.png"}
    names = {p.name for p in (tmp_path / "e").iterdir()}
    assert names == {"reliability.png", "coverage.png", "confusion.png", "timeline.png"}
    assert (tmp_path / "e" / "timeline.png").read_bytes()[:4] == b"\x89PNG"


def test_plots_without_matplotlib_is_one_line_before_any_work(
    pkg: Path, data: tuple[Path, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    before = (pkg / "model.json").read_text()
    with pytest.raises(UsageError, match=r"--plots needs matplotlib: pip install 'fsqd\[plots\]'"):
        calibrate(CalibrateOptions(pkg, data, plots=pkg / "plots"))
    assert (pkg / "model.json").read_text() == before


def test_a_model_without_a_head_is_refused(pkg: Path, data: tuple[Path, ...]) -> None:
    card = json.loads((pkg / "model.json").read_text())
    card["head"] = None
    (pkg / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="the model has no head"):
        calibrate(CalibrateOptions(pkg, data))


def test_labels_that_are_not_the_heads_are_refused(pkg: Path, tmp_path: Path) -> None:
    rec = Simulator(SimConfig(seed=2)).read(3000)
    f = tmp_path / "gallop.csv"
    write_csv(LabelledSamples(rec.t, rec.x, rec.labels, ("rest", "gallop", *rec.behaviours[2:])), f)
    if "gallop" not in f.read_text():
        pytest.skip("the simulator drew no walk bout to rename")
    with pytest.raises(DataError, match=r"labels \['gallop'\] are not the head's labels"):
        calibrate(CalibrateOptions(pkg, (f,)))


def test_too_few_windows_of_a_label_is_refused(pkg: Path, tmp_path: Path) -> None:
    f = tmp_path / "short.csv"
    simulate(SimulateOptions(out=f, duration_s=240.0, seed=5))
    with pytest.raises(DataError, match=r"too few windows per label to calibrate \(.*needs >= 20"):
        calibrate(CalibrateOptions(pkg, (f,)))


def test_too_little_data_for_a_held_out_part_is_refused(pkg: Path, tmp_path: Path) -> None:
    f = tmp_path / "tiny.csv"
    simulate(SimulateOptions(out=f, duration_s=100.0, seed=5))
    with pytest.raises(DataError, match="no held-out windows: give at least 180 s of data"):
        calibrate(CalibrateOptions(pkg, (f,)))


def test_a_file_without_labels_is_refused(pkg: Path, tmp_path: Path) -> None:
    f = tmp_path / "nolabels.csv"
    simulate(SimulateOptions(out=f, duration_s=30.0, labels=False))
    with pytest.raises(DataError, match=r"nolabels.csv:1: no column 'label'"):
        calibrate(CalibrateOptions(pkg, (f,)))
    g = tmp_path / "rec.fsqr"
    g.write_bytes(b"FSQR\x01\x00")
    with pytest.raises(DataError, match=r"only CSV recordings carry a 'label' column"):
        calibrate(CalibrateOptions(pkg, (g,)))


def test_a_file_shorter_than_a_window_is_refused(
    pkg: Path, data: tuple[Path, ...], tmp_path: Path
) -> None:
    rec = Simulator(SimConfig(seed=2)).read(80)
    f = tmp_path / "short.csv"
    write_csv(rec, f)
    with pytest.raises(DataError, match=r"short\.csv: no stretch without a gap is as long as one"):
        calibrate(CalibrateOptions(pkg, (data[0], f)))


def test_labels_and_samples_must_line_up(
    pkg: Path, data: tuple[Path, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsqd.commands.labelled_windows as lw

    real = lw.read_labels

    def one_short(path: Path) -> tuple[tuple[str, ...], Any]:
        names, ids = real(path)
        return names, ids[:-1]

    monkeypatch.setattr(lw, "read_labels", one_short)
    with pytest.raises(DataError, match="71999 labelled rows but 72000 samples were read"):
        calibrate(CalibrateOptions(pkg, data))


def test_no_data_is_a_usage_error(pkg: Path) -> None:
    with pytest.raises(UsageError, match="give labelled recordings with --data"):
        calibrate(CalibrateOptions(pkg, ()))
    with pytest.raises(UsageError, match="give labelled recordings with --data"):
        evaluate(EvaluateOptions(pkg, ()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--coverage", "1.5"], "--coverage must be between 0 and 1"),
        (["--coverage", "0"], "--coverage must be between 0 and 1"),
    ],
)
def test_bad_options_are_usage_errors(
    pkg: Path, data: tuple[Path, ...], run_cli: RunCli, args: list[str], message: str
) -> None:
    code, _out, err = run_cli("model", "calibrate", pkg, "--data", data[0], *args)
    assert code == 64 and message in err and len(err.strip().splitlines()) == 1


def test_the_program_exits_with_one_line_and_the_sysexits_code(pkg: Path, tmp_path: Path) -> None:
    f = tmp_path / "short.csv"
    simulate(SimulateOptions(out=f, duration_s=240.0, seed=5))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "fsqd", "model", "calibrate", str(pkg), "--data", str(f)],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 65
    assert len(proc.stderr.strip().splitlines()) == 1 and "too few windows" in proc.stderr
    assert "Traceback" not in proc.stderr

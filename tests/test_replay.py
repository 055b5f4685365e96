"""`fsqd replay` end to end: real files through the bundled model and user packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MODELS, RunCli

from fsqd.backends.onnx import OnnxEncoder
from fsqd.commands.model_import import ImportOptions, import_model
from fsqd.model.layout import InputLayout
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline
from fsqd.sim import SimConfig, simulate, write_csv
from fsqd.units import BEHAVIOURS


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "imu.csv"
    write_csv(simulate(120, SimConfig(seed=11, start_time=1_795_334_400.0)), path, iso_time=True)
    return path


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_replay_streams_codes_with_times_and_labels(run_cli: RunCli, recording: Path) -> None:
    code, out, err = run_cli("replay", recording)
    assert code == 0, err
    rows = lines(out)
    assert len(rows) == (12000 - 100) // 50 + 1  # bundled card: window 100, hop 50
    first = rows[0]
    assert list(first) == [
        "seq",
        "t_start",
        "t_end",
        "code",
        "digits",
        "label",
        "p",
        "set",
        "model",
    ]
    assert first["t_start"] == pytest.approx(1_795_334_400.0)
    assert first["t_end"] == pytest.approx(1_795_334_400.99)
    assert rows[1]["t_start"] == pytest.approx(1_795_334_400.5)
    assert {r["label"] for r in rows} <= set(BEHAVIOURS)
    assert all(0 <= r["code"] < 4800 and 0 < r["p"] <= 1 for r in rows)  # type: ignore[operator]
    assert first["model"] == "fsqd-sim-behaviour@1.0.0"
    assert "windows 239, distinct codes" in err and "gaps 0" in err
    for stage in ("read", "normalise", "window", "infer", "fsq", "head", "output"):
        assert f"\n{stage} " in err


def test_replay_equals_encoding_the_same_windows(run_cli: RunCli, recording: Path) -> None:
    """The whole pipeline gives the codes CodePipeline gives on windows cut by hand."""
    code, out, _ = run_cli("replay", recording, "--hop", "10")
    assert code == 0
    data = np.loadtxt(recording, delimiter=",", skiprows=1, usecols=range(1, 10), dtype=np.float32)
    pkg = load_package(None)
    mean, std = pkg.card.stream_mean_std()
    z = (data - mean) / std
    windows = np.lib.stride_tricks.sliding_window_view(z, 100, axis=0)[::10].transpose(0, 2, 1)
    want = CodePipeline(pkg).encode(InputLayout(pkg.card)(np.ascontiguousarray(windows)))
    assert [r["code"] for r in lines(out)] == want.index.tolist()


def test_the_demo_model_recognises_simulated_behaviour(run_cli: RunCli, tmp_path: Path) -> None:
    rec = simulate(600, SimConfig(seed=99))
    path = tmp_path / "x.csv"
    write_csv(rec, path)
    code, out, _ = run_cli("replay", path)
    assert code == 0
    rows = lines(out)
    truth = rec.labels[np.arange(len(rows)) * 50 + 50]  # label at each window's centre
    accuracy = np.mean([BEHAVIOURS[t] == r["label"] for t, r in zip(truth, rows, strict=True)])
    assert accuracy > 0.8


def test_other_rates_are_resampled_or_refused(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "50hz.csv"
    write_csv(simulate(30, SimConfig(seed=1, rate_hz=50)), path)
    code, out, err = run_cli("replay", path)
    assert code == 0 and "resampling 50 Hz -> 100 Hz" in err
    assert len(lines(out)) == (2951 - 100) // 50 + 1  # 1475 samples at 50 Hz -> 2951 at 100 Hz
    code, out, err = run_cli("replay", path, "--no-resample")
    assert (code, out) == (65, "") and "50 Hz is not the model's 100 Hz" in err


def test_a_gap_splits_the_stream(run_cli: RunCli, tmp_path: Path) -> None:
    rec = simulate(20, SimConfig(seed=2))
    keep = (rec.t < 8) | (rec.t >= 12)
    path = tmp_path / "gap.csv"
    write_csv(type(rec)(rec.t[keep], rec.x[keep], rec.labels[keep]), path)
    code, out, err = run_cli("replay", path, "--hop", "10")
    assert code == 0
    rows = lines(out)
    assert not any(r["t_start"] < 8 < r["t_end"] for r in rows)  # type: ignore[operator]
    assert len(rows) == 2 * ((800 - 100) // 10 + 1)
    assert "gaps 1 (4.00 s)" in err


def test_two_device_model_needs_fill(run_cli: RunCli, tmp_path: Path, pkg_d2: ModelPackage) -> None:
    path = tmp_path / "one.csv"
    write_csv(simulate(5, SimConfig(seed=3)), path)
    code, _, err = run_cli("replay", path, "--model", pkg_d2.path)
    assert code == 65 and "--fill duplicate" in err
    code, out, _ = run_cli("replay", path, "--model", pkg_d2.path, "--fill", "duplicate")
    assert code == 0 and len(lines(out)) == (500 - 100) // 50 + 1


def test_npy_with_rate(run_cli: RunCli, tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", simulate(3, SimConfig(seed=4)).x)
    code, out, err = run_cli("replay", tmp_path / "a.npy", "--rate", "100", "--hop", "100")
    assert code == 0, err
    assert [r["t_start"] for r in lines(out)] == [0.0, 1.0, 2.0]


def test_paced_replay_takes_real_time(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    write_csv(simulate(3, SimConfig(seed=5)), path)
    t0 = time.perf_counter()
    code, out, _ = run_cli("replay", path, "--speed", "5", "--hop", "50")
    assert code == 0 and len(lines(out)) == 5
    assert time.perf_counter() - t0 >= 2.99 / 5 - 0.05  # last window ends at 2.99 s


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{tmp}/missing.csv"], 66, "no such file"),
        (["{bad}"], 65, "bad.csv:3: 'oops' in column 'ay' is not a number"),
        (["{rec}", "--model", "{tmp}"], 66, "no model card"),
        (["{rec}", "--speed", "fast"], 64, "--speed must be"),
        (["{rec}", "--scale", "ax"], 64, "NAME=FACTOR"),
        (["{rec}", "--columns", "a,b"], 65, "2 channel columns, the model needs 9"),
    ],
)
def test_errors_are_one_line(
    run_cli: RunCli, tmp_path: Path, recording: Path, args: list[str], code: int, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t,ax,ay,az,gx,gy,gz,mx,my,mz\n0,1,2,3,4,5,6,7,8,9\n0.01,1,oops,3,4,5,6,7,8,9\n")
    fill = {"tmp": str(tmp_path), "bad": str(bad), "rec": str(recording)}
    got, out, err = run_cli("replay", *[a.format(**fill) for a in args])
    assert (got, out) == (code, "")
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_skip_bad_rows_counts_them(run_cli: RunCli, tmp_path: Path) -> None:
    rec = simulate(3, SimConfig(seed=6))
    path = tmp_path / "dirty.csv"
    write_csv(rec, path)
    text = path.read_text().splitlines()
    text[50] = text[50].replace(",", ",x", 1)
    path.write_text("\n".join(text) + "\n")
    code, out, err = run_cli("replay", path, "--skip-bad-rows")
    assert code == 0 and "bad rows skipped 1" in err
    # 299 samples over 2.99 s fit 99.7 Hz: resampled from the timestamps, the hole is filled.
    assert "resampling 99.66" in err and len(lines(out)) == 5


def test_bundled_model_is_the_import_of_its_committed_export(tmp_path: Path) -> None:
    bundled = load_package(None)
    card = bundled.card
    assert card.levels == (8, 6, 5, 5, 4)
    assert card.input.shape == (None, 9, 1, 100)
    assert card.head is not None and card.head.labels == BEHAVIOURS
    assert "simulator" in card.provenance["trained_on"]
    again = tmp_path / "again"
    opts = ImportOptions(
        levels=card.levels,
        mean=card.mean,
        std=card.std,
        labels=card.head.labels,
        sample_rate_hz=card.sample_rate_hz,
    )
    import_model(MODELS / "default_full.onnx", again, opts)
    assert (again / "encoder.onnx").read_bytes() == bundled.encoder_onnx.read_bytes()
    assert bundled.head_onnx is not None
    assert (again / "head.onnx").read_bytes() == bundled.head_onnx.read_bytes()


def test_failure_midway_keeps_partial_output(run_cli: RunCli, tmp_path: Path) -> None:
    rec = simulate(2000, SimConfig(seed=7))
    path = tmp_path / "late.csv"
    write_csv(rec, path, label_column=False)
    text = path.read_text().splitlines()
    fields = text[150_000].split(",")
    text[150_000] = ",".join([fields[0], "nan", *fields[2:]])
    path.write_text("\n".join(text) + "\n")
    out = tmp_path / "codes.jsonl"
    code, _, err = run_cli("replay", path, "--out", out)
    assert code == 65 and err.count("\n") == 1
    assert "late.csv:150001: NaN or inf value (partial output kept in" in err
    partial = tmp_path / ".codes.jsonl.partial"
    assert not out.exists() and len(partial.read_text().splitlines()) > 1000


@pytest.mark.parametrize("batch", [16, 256])
def test_pooled_encoder_batches_give_the_same_codes(
    run_cli: RunCli,
    recording: Path,
    pkg_d2: ModelPackage,
    batch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows copied once into rotating encoder-layout buffers: many batches per chunk, a
    2-device layout, and the paced path (which does not pool) all agree."""
    import fsqd.commands.replay as replay_module

    monkeypatch.setattr(replay_module, "BATCH", batch)
    for model in (None, pkg_d2.path):
        extra = ["--fill", "duplicate", "--model", str(model)] if model else []
        code, out, err = run_cli("replay", recording, "--hop", "10", *extra)
        assert code == 0, err
        rows = lines(out)
        assert len(rows) == (12000 - 100) // 10 + 1
        pkg = load_package(model)
        rec_x = np.loadtxt(recording, delimiter=",", skiprows=1, usecols=range(1, 10))
        x = np.tile(rec_x.astype(np.float32), pkg.card.devices)
        mean, std = pkg.card.stream_mean_std()
        z = (x - mean) / std
        windows = np.lib.stride_tricks.sliding_window_view(z, 100, axis=0)[::10]
        want = CodePipeline(pkg).encode(
            InputLayout(pkg.card)(np.ascontiguousarray(windows.transpose(0, 2, 1)))
        )
        assert [r["code"] for r in rows] == want.index.tolist()


def _one_session_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay as it was before: one 2-thread session, each batch encoded and then written."""
    import fsqd.commands.replay as replay_module

    def single(pkg: ModelPackage, backend: str = "auto", *, threads: int | None = None) -> Any:
        return OnnxEncoder(pkg, 2, sessions=1)

    monkeypatch.setattr(replay_module, "IN_FLIGHT", 1)
    monkeypatch.setattr(replay_module, "open_encoder", single)


@pytest.mark.parametrize("batch", [7, 100, 256])
@pytest.mark.parametrize("model", ["bundled", "d2", "d2 fixed batch 8"])
def test_two_sessions_in_flight_write_the_same_bytes(
    run_cli: RunCli,
    recording: Path,
    pkg_d2: ModelPackage,
    tmp_path_factory: pytest.TempPathFactory,
    batch: int,
    model: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,191 windows in batches of 7, 100 or 256 (a ragged last batch each time), on the
    bundled model, the 2-device model and a copy of it that takes exactly 8 windows."""
    from test_backend_onnx import fixed_batch_package

    import fsqd.commands.replay as replay_module

    monkeypatch.setattr(replay_module, "BATCH", batch)
    extra: list[str | Path] = []
    if model != "bundled":
        path = pkg_d2.path
        if model.endswith("8"):
            path = fixed_batch_package(pkg_d2, tmp_path_factory.mktemp("fixed"), 8).path
        extra = ["--fill", "duplicate", "--model", path]
    code, out, err = run_cli("replay", recording, "--hop", "10", *extra)
    assert code == 0, err
    assert len(out.splitlines()) == 1191 and 1191 % batch
    with monkeypatch.context() as m:
        _one_session_in_turn(m)
        code, before, err = run_cli("replay", recording, "--hop", "10", *extra)
    assert code == 0, err
    assert out == before


def test_replay_as_a_program_writes_everything_and_exits(
    run_cli: RunCli, recording: Path, tmp_path: Path
) -> None:
    """`python -m fsqd replay` ends with os._exit once its output is flushed: every line
    reaches a pipe and the exit status is replay's; in-process callers (the tests) return."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [sys.executable, "-m", "fsqd", "replay", str(recording), "--hop", "10"]
    # Called with arguments, main() returns to its caller, which may have more to do
    # (checked first: if it did not return, neither would this in-process test).
    caller = "from fsqd.cli import main; import sys; print('back', main(sys.argv[1:]))"
    called = subprocess.run(
        [sys.executable, "-c", caller, *args[3:]], env=env, cwd=tmp_path, capture_output=True
    )
    assert called.returncode == 0 and called.stdout.endswith(b"back 0\n")
    proc = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code, out, _ = run_cli("replay", recording, "--hop", "10")
    assert code == 0
    assert proc.stdout == out and len(out.splitlines()) == 1191
    assert "throughput" in proc.stderr  # the summary came out before the exit
    missing = subprocess.run(
        [*args[:4], str(tmp_path / "none.csv")], env=env, cwd=tmp_path, capture_output=True
    )
    assert missing.returncode == 66


@pytest.mark.parametrize("speed", [None, "1000"])
def test_replay_closes_its_encoder(
    run_cli: RunCli, recording: Path, monkeypatch: pytest.MonkeyPatch, speed: str | None
) -> None:
    import fsqd.commands.replay as replay_mod

    opened: list[object] = []
    closed: list[object] = []
    real = replay_mod.open_encoder

    def tracking(*args: object, **kw: object) -> object:
        enc = real(*args, **kw)  # type: ignore[arg-type]
        inner_close = enc.close

        def close() -> None:
            closed.append(enc)
            inner_close()

        enc.close = close  # type: ignore[method-assign]
        opened.append(enc)
        return enc

    monkeypatch.setattr(replay_mod, "open_encoder", tracking)
    extra = () if speed is None else ("--speed", speed)
    code, out, _ = run_cli("replay", recording, *extra)
    assert code == 0 and out
    assert len(opened) == 1 and closed == opened


def test_a_labelled_file_ends_with_the_evaluate_report(
    run_cli: RunCli, recording: Path, tmp_path: Path
) -> None:
    code, out, err = run_cli("replay", recording)
    assert code == 0 and out
    assert "confusion (rows: true, columns: predicted)" in err
    assert "behaviour states (explicit-duration HMM" in err
    code, _, err = run_cli("replay", recording, "--no-evaluate")
    assert code == 0 and "confusion" not in err
    # Labels the head does not know: the replay went well, so one line and exit 0.
    odd = tmp_path / "odd.csv"
    lines = recording.read_text().splitlines()
    odd.write_text(
        "\n".join([lines[0], *(line.rsplit(",", 1)[0] + ",sleep" for line in lines[1:])]) + "\n"
    )
    code, out, err = run_cli("replay", odd)
    assert code == 0 and out and "confusion" not in err
    assert "odd.csv: labelled, but not evaluated:" in err and "'sleep'" in err
    # Without a label column there is nothing to evaluate against.
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    code, _, err = run_cli("replay", bare)
    assert code == 0 and "confusion" not in err and "not evaluated" not in err


def test_the_evaluate_report_reads_the_file_as_the_replay_did(
    run_cli: RunCli, recording: Path, tmp_path: Path
) -> None:
    """A logger's accelerometer in mg, told with --scale: the report after the replay scores
    the same windows the replay coded, not the file's raw mg values."""
    rows = recording.read_text().splitlines()
    header = rows[0].split(",")
    acc = [i for i, name in enumerate(header) if name in ("ax", "ay", "az")]
    mg = tmp_path / "mg.csv"
    out = [rows[0]]
    for row in rows[1:]:
        f = row.split(",")
        for i in acc:
            f[i] = f"{float(f[i]) / 0.00980665:.6f}"
        out.append(",".join(f))
    mg.write_text("\n".join(out) + "\n")

    def accuracy(err: str) -> str:
        (line,) = [x for x in err.splitlines() if x.startswith("accuracy ")]
        return line

    code, _, plain = run_cli("replay", recording)
    assert code == 0
    code, _, scaled = run_cli("replay", mg, "--scale", "a*=0.00980665")
    assert code == 0
    assert accuracy(scaled) == accuracy(plain)


def test_a_replay_imports_only_what_it_runs(recording: Path, tmp_path: Path) -> None:
    """Start-up is part of every replay's time: a CPU replay of a file it does not evaluate
    loads neither the evaluation, nor the Hailo backend (no HEF), nor `onnx` (the graph
    check is the card's record)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys; from fsqd.cli import main; main(sys.argv[1:]); print(*sys.modules)"
    args = ["replay", str(recording), "--hop", "10", "--out", str(tmp_path / "codes.jsonl")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--no-evaluate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(proc.stdout.split())
    assert "fsqd.commands.replay" in modules and "onnxruntime" in modules
    assert "fsqd.commands.model_evaluate" not in modules
    assert not {m for m in modules if m.startswith("fsqd.backends.hailo")}
    assert "onnx" not in modules

"""The commands as a library: each takes its options dataclass and returns an exit code,
and the command line builds exactly those options from its arguments."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fsqd.cli.parser import build_parser, invocation
from fsqd.commands.check_config import CheckConfigOptions, check_config
from fsqd.commands.replay import ReplayOptions, replay
from fsqd.commands.run import RunOptions, run
from fsqd.commands.simulate import SimulateOptions, simulate
from fsqd.errors import UsageError

SENSOR = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'


def test_simulate_then_replay_without_the_command_line(tmp_path: Path) -> None:
    csv = tmp_path / "sim.csv"
    assert simulate(SimulateOptions(out=csv, duration_s=12.0, seed=3)) == 0
    assert len(csv.read_text().splitlines()) == 1 + 1200  # header + 12 s at 100 Hz
    codes = tmp_path / "codes.jsonl"
    assert replay(ReplayOptions(file=csv, out=codes, backend="onnx")) == 0
    lines = [json.loads(line) for line in codes.read_text().splitlines()]
    assert len(lines) == (1200 - 100) // 50 + 1  # the card's window 100, hop 50
    assert all(isinstance(c["code"], int) for c in lines)


def test_check_config_writes_its_summary_where_asked(tmp_path: Path) -> None:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(SENSOR)
    out = io.StringIO()
    assert check_config(CheckConfigOptions(cfg), out) == 0
    assert out.getvalue().startswith(f"{cfg}: ok (config hash ")


def test_run_stops_after_its_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text("[window]\nhop = 10\n" + SENSOR)
    assert run(RunOptions(cfg, duration_s=2.5, stdout=True, log_format="json")) == 0
    codes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert codes and all("code" in c for c in codes)


def test_the_command_line_builds_the_options() -> None:
    args = build_parser().parse_args(
        ["run", "--config", "x.toml", "--duration", "10m", "--log-level", "debug"]
    )
    call = invocation(args)
    assert call.command is run
    assert call.options == RunOptions(Path("x.toml"), duration_s=600.0, log_level="debug")
    args = build_parser().parse_args(["simulate", "--out", "s.csv", "--no-labels", "--start", "5"])
    sim = invocation(args).options
    assert sim == SimulateOptions(Path("s.csv"), start=5.0, labels=False)


def test_a_bad_duration_is_a_usage_error_before_anything_runs() -> None:
    args = build_parser().parse_args(["run", "--config", "x.toml", "--duration", "soon"])
    with pytest.raises(UsageError, match="duration must look like 90s"):
        invocation(args)

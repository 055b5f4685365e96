"""`fsqd model compile-script`: the Dataflow Compiler commands, runnable, with the right cut."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import RunCli

from fsqd.commands.model_compile_script import end_node, plan, write_script
from fsqd.errors import DataError, ModelError
from fsqd.model.card import InputSpec
from fsqd.model.package import ModelPackage, load_package

# Stands in for the Dataflow Compiler's `hailo` CLI: logs its arguments, writes the file each
# step names after its input (encoder.onnx -> encoder.har -> encoder_optimized.har -> .hef).
FAKE_HAILO = """#!/bin/sh
echo "$@" >> hailo.log
case "$1" in
  parser) stem=$(basename "$3" .onnx); touch "$stem.har" ;;
  optimize) stem=$(basename "$2" .har); test -f "$2" && touch "${stem}_optimized.har" ;;
  compiler) stem=$(basename "$2" _optimized.har); test -f "$2" && touch "$stem.hef" ;;
esac
"""


@pytest.fixture
def pkg_copy(pkg_d2: ModelPackage, tmp_path: Path) -> ModelPackage:
    shutil.copytree(pkg_d2.path, tmp_path / "pkg")
    return load_package(tmp_path / "pkg")


def test_the_end_node_feeds_round(pkg_d2: ModelPackage) -> None:
    assert end_node(pkg_d2) == "/fsq_model/fsq/Sub"
    assert pkg_d2.card.provenance["hailo_end_node"] == "/fsq_model/fsq/Sub"


@pytest.mark.parametrize("arch", ["hailo8", "hailo8l"])
def test_the_script_runs_the_three_steps(pkg_copy: ModelPackage, tmp_path: Path, arch: str) -> None:
    script, p = write_script(pkg_copy, arch=arch)
    assert script == pkg_copy.path / "compile_hef.sh" and os.access(script, os.X_OK)
    text = script.read_text()
    assert [line for line in text.splitlines() if line.startswith("hailo ")] == list(p.commands)
    assert p.commands[0] == (
        f"hailo parser onnx encoder.onnx --hw-arch {arch} --end-node-names /fsq_model/fsq/Sub -y"
    )
    assert "--calib-set-path calib.npy" in p.commands[1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hailo").write_text(FAKE_HAILO)
    (bin_dir / "hailo").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 66 and "missing calib.npy" in run.stderr
    np.save(pkg_copy.path / "calib.npy", np.zeros((4, 2, 100, 9), np.float32))
    run = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert (pkg_copy.path / "encoder.hef").is_file()
    steps = (pkg_copy.path / "hailo.log").read_text().splitlines()
    assert [s.split()[0] for s in steps] == ["parser", "optimize", "compiler"]
    assert all(f"--hw-arch {arch}" in s for s in steps)


def test_a_calibration_set_of_the_wrong_layout_is_refused(pkg_copy: ModelPackage) -> None:
    np.save(pkg_copy.path / "calib.npy", np.zeros((4, 9, 2, 100), np.float32))  # NCHW
    with pytest.raises(DataError, match=r"\[4, 9, 2, 100\].*\[N, 2, 100, 9\] \(NHWC\)"):
        write_script(pkg_copy)


def test_a_card_whose_end_node_differs_is_refused(pkg_copy: ModelPackage) -> None:
    card_file = pkg_copy.path / "model.json"
    d = json.loads(card_file.read_text())
    d["provenance"]["hailo_end_node"] = "/fsq_model/fsq/Mul"
    card_file.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="re-import the model"):
        plan(load_package(pkg_copy.path))


def test_three_axis_inputs_are_refused(pkg_d2: ModelPackage) -> None:
    card = dataclasses.replace(
        pkg_d2.card, devices=1, input=InputSpec("imu_data", "NCT", (None, 9, 100))
    )
    with pytest.raises(ModelError, match="needs a 4-D encoder input"):
        plan(ModelPackage(pkg_d2.path, card))


def test_cli(run_cli: RunCli, pkg_copy: ModelPackage, tmp_path: Path) -> None:
    out = tmp_path / "c.sh"
    code, stdout, err = run_cli("model", "compile-script", pkg_copy.path, "--out", out)
    assert code == 0, err
    assert stdout.splitlines()[0] == f"wrote {out} (hailo8, parse up to /fsq_model/fsq/Sub):"
    assert subprocess.run(["sh", "-n", str(out)], check=False).returncode == 0
    code, _, err = run_cli("model", "compile-script", pkg_copy.path, "--arch", "hailo10h")
    assert code == 64

"""`fsqd model inspect`: card, I/O, operators and Hailo-8 blockers."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import MODELS, RunCli

from fsqd.model.package import ModelPackage


def test_inspect_package(run_cli: RunCli, pkg_d2: ModelPackage) -> None:
    code, out, err = run_cli("model", "inspect", pkg_d2.path)
    assert code == 0, err
    assert "levels [8, 6, 5, 5, 4], 4800 codes" in out
    assert "imu_data [None, 9, 2, 100] layout NCDT" in out
    assert "Conv x3" in out and "Tanh x1" in out
    assert "hailo8 no unsupported operators" in out  # the cut removed Round and If


def test_inspect_full_export_flags_round_and_if(run_cli: RunCli) -> None:
    code, out, _ = run_cli("model", "inspect", MODELS / "m13_d2" / "full.onnx", "--json")
    assert code == 0
    info = json.loads(out)["files"]["model"]
    assert set(info["hailo8_unsupported"]) == {"Round", "If"}
    assert info["operators"]["Round"] == 1
    assert info["inputs"][0]["name"] == "imu_data"


def test_inspect_json_has_the_card(run_cli: RunCli, pkg_d2: ModelPackage) -> None:
    code, out, _ = run_cli("model", "inspect", pkg_d2.path, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["card"]["levels"] == [8, 6, 5, 5, 4]
    assert info["files"]["head"]["outputs"][0]["name"] == "behavior_logits"


def test_inspect_without_a_package_shows_the_bundled_model(run_cli: RunCli) -> None:
    code, out, _ = run_cli("model", "inspect")
    assert code == 0
    assert "fsqd-sim-behaviour@1.0.0" in out
    assert "head       rest, walk, trot, shake, turn" in out
    assert "provenance trained_on:" in out and "simulator" in out


def test_module_entry_point_runs() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fsqd", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("fsqd ")


def test_inspect_shows_the_fsq_constants_and_that_they_agree(
    run_cli: RunCli, pkg_d2: ModelPackage
) -> None:
    code, out, _ = run_cli("model", "inspect", pkg_d2.path)
    assert code == 0
    assert "levels [8, 6, 5, 5, 4], half_l [3.5035, 2.5025, 2.002, 2.002, 1.5015]" in out
    assert "offset [0.5, 0.5, 0, 0, 0.5]" in out
    assert "agrees with the card (stage bounded" in out
    assert "batch      dynamic" in out


def test_inspect_shows_a_disagreement_and_a_fixed_batch(
    run_cli: RunCli, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    from test_backend_onnx import fixed_batch_package

    pkg = fixed_batch_package(pkg_d2, tmp_path, 4)
    card = json.loads((pkg.path / "model.json").read_text())
    card["levels"] = [4, 5, 5, 6, 8]
    (pkg.path / "model.json").write_text(json.dumps(card))
    code, out, _ = run_cli("model", "inspect", pkg.path, "--json")
    assert code == 0
    graph = json.loads(out)["graph"]
    assert graph["agrees"] is False and "(reversed)" in graph["problem"]
    assert graph["bound_in_graph"]["levels"] == [8, 6, 5, 5, 4]
    assert graph["fixed_batch"] == 4
    code, out, _ = run_cli("model", "inspect", pkg.path)
    assert "DISAGREES: the card's levels [4, 5, 5, 6, 8]" in out
    assert "batch      fixed 4" in out


def test_inspect_full_export_previews_the_import(run_cli: RunCli) -> None:
    code, out, _ = run_cli("model", "inspect", MODELS / "m13_d1_multi" / "full.onnx")
    assert code == 0
    assert "fsq        levels [7, 6, 5, 4], Round /fsq_model/fsq/Round" in out
    assert "several head candidates (behavior_logits, behavior_probs): pass --head-output" in out
    assert "FSQ indices: fsq_indices; no sample rate: pass --rate" in out
    code, out, _ = run_cli("model", "inspect", MODELS / "m13_c6" / "full.onnx", "--json")
    preview = json.loads(out)["import"]
    assert preview["head_candidates"] == ["behavior_logits"]
    assert preview["sample_rate_hz"] == "52"
    code, out, _ = run_cli("model", "inspect", MODELS / "two_fsq" / "full.onnx")
    assert code == 0 and "import     would fail: the model has 2 FSQ bounds" in out

"""`fsqd model import`: the cut, the head, the card, and parity with torch's answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import MODELS, RunCli, parity

from fsqd.commands.model_import import ImportOptions, import_model
from fsqd.errors import ConfigError, ModelError
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline

RATE = ImportOptions(sample_rate_hz=100.0)


def test_card_describes_the_user_shaped_model(pkg_d2: ModelPackage) -> None:
    card = pkg_d2.card
    assert card.levels == (8, 6, 5, 5, 4)
    assert card.codebook_size == 4800
    assert (card.devices, card.window, card.hop) == (2, 100, 50)
    assert card.input.name == "imu_data"
    assert card.input.layout == "NCDT"
    assert card.input.shape == (None, 9, 2, 100)
    assert card.output.stage == "bounded"
    assert card.output.name == "/fsq_model/fsq/Sub_output_0"
    assert card.head is not None
    assert card.head.labels == tuple(f"class_{i}" for i in range(10))
    assert card.provenance["hailo_end_node"] == "/fsq_model/fsq/Sub"


def test_encoder_stops_before_round_and_head_starts_at_codes(pkg_d2: ModelPackage) -> None:
    enc = onnx.load(str(pkg_d2.encoder_onnx))
    ops = {n.op_type for n in enc.graph.node}
    assert "Round" not in ops and "If" not in ops
    assert enc.graph.node[-1].name == "/fsq_model/fsq/Sub"
    assert pkg_d2.head_onnx is not None
    head = onnx.load(str(pkg_d2.head_onnx))
    assert [i.name for i in head.graph.input] == ["codes"]
    assert [n.op_type for n in head.graph.node] == ["Gemm", "Relu", "Gemm"]


def test_codes_and_logits_match_torch(pkg_d2: ModelPackage) -> None:
    want = parity("m13_d2")
    pipe = CodePipeline(pkg_d2)
    got = pipe.encode(want["x"])
    np.testing.assert_array_equal(got.index, want["indices"])
    np.testing.assert_array_equal(got.codes, want["zhat"])
    assert pipe.head is not None
    logits = pipe.head.logits(got.codes)
    np.testing.assert_allclose(logits, want["logits"], rtol=1e-4, atol=1e-4)
    assert got.label_id is not None
    np.testing.assert_array_equal(got.label_id, want["logits"].argmax(axis=1))


def test_model_without_head_gives_codes_only(pkg_nohead: ModelPackage) -> None:
    want = parity("m13_d1_nohead")
    assert pkg_nohead.card.head is None
    assert pkg_nohead.card.levels == (7, 5, 5, 5, 5)
    got = CodePipeline(pkg_nohead).encode(want["x"])
    np.testing.assert_array_equal(got.index, want["indices"])
    assert got.label_id is None and got.p is None


def test_levels_option_is_checked_against_the_graph(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--levels 8,8,8 .* 8,6,5,5,4"):
        import_model(
            MODELS / "m13_d2" / "full.onnx",
            tmp_path / "p",
            ImportOptions(levels=(8, 8, 8), sample_rate_hz=100.0),
        )
    assert not (tmp_path / "p").exists()


def test_labels_must_match_head_classes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="3 classes but the head has 10"):
        import_model(
            MODELS / "m13_d2" / "full.onnx",
            tmp_path / "p",
            ImportOptions(labels=("a", "b", "c"), sample_rate_hz=100.0),
        )


def test_model_without_round_is_refused(tmp_path: Path, pkg_d2: ModelPackage) -> None:
    with pytest.raises(ModelError, match="no Round node"):
        import_model(pkg_d2.encoder_onnx, tmp_path / "p", ImportOptions(sample_rate_hz=100.0))


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "p"
    out.mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        import_model(MODELS / "m13_d1_nohead" / "full.onnx", out, RATE)
    import_model(
        MODELS / "m13_d1_nohead" / "full.onnx",
        out,
        ImportOptions(sample_rate_hz=100.0, overwrite=True),
    )
    assert load_package(out).card.levels == (7, 5, 5, 5, 5)


def _copy(pkg: ModelPackage, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(pkg.path, dst)
    return dst


def test_card_with_more_levels_than_the_encoder_output(
    pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    """A projection-stage encoder has no FSQ constants to compare: the probe's width is
    what catches a card with too many levels."""
    dst = _projection_copy(pkg_d2, tmp_path)
    card = json.loads((dst / "model.json").read_text())
    card["levels"] = [8] * 8
    card["output"]["width"] = 8
    (dst / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="output is 5 wide but the card declares 8 FSQ levels"):
        CodePipeline(load_package(dst))


def _projection_copy(pkg: ModelPackage, tmp_path: Path) -> Path:
    """The package with its encoder cut before the FSQ bound, card stage 'projection'."""
    from fsqd.model.surgery import Graph, extract, find_fsq

    full = onnx.load(str(MODELS / "m13_d2" / "full.onnx"))
    site = find_fsq(Graph(full))
    dst = _copy(pkg, tmp_path)
    onnx.save(extract(full, ["imu_data"], [site.projection]), str(dst / "encoder.onnx"))
    card = json.loads((dst / "model.json").read_text())
    card["output"] = {"name": site.projection, "stage": "projection", "width": 5}
    (dst / "model.json").write_text(json.dumps(card))
    return dst


def test_card_width_and_levels_disagree(pkg_d2: ModelPackage, tmp_path: Path) -> None:
    dst = _copy(pkg_d2, tmp_path)
    card = json.loads((dst / "model.json").read_text())
    card["levels"] = [8] * 8
    (dst / "model.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="width 5 does not match 8 FSQ levels"):
        load_package(dst)


def test_cli_import_prints_the_hailo_parser_command(run_cli: RunCli, tmp_path: Path) -> None:
    full = MODELS / "m13_d2" / "full.onnx"
    code, out, err = run_cli(
        "model", "import", full, "--out", tmp_path / "p", "--levels", "8,6,5,5,4",
        "--labels", ",".join(f"b{i}" for i in range(10)), "--mean", ",".join(["0.5"] * 9),
        "--std", ",".join(["2"] * 9), "--name", "dog", "--model-version", "2.1", "--rate", "100",
    )  # fmt: skip
    assert code == 0, err
    assert f"hailo parser onnx {full} --hw-arch hailo8 --end-node-names /fsq_model/fsq/Sub" in out
    assert "host FSQ codes identical" in out
    card = load_package(tmp_path / "p").card
    assert (card.name, card.version, card.mean[0], card.std[0]) == ("dog", "2.1", 0.5, 2.0)
    assert card.head is not None and card.head.labels[3] == "b3"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["model", "import", "missing.onnx", "--out", "{tmp}/p"], 66, "no such ONNX file"),
        (["model", "import", "{garbage}", "--out", "{tmp}/p"], 78, "not a readable ONNX model"),
        (
            ["model", "import", "{full}", "--out", "{tmp}/p", "--levels", "4,4"],
            78,
            "does not match",
        ),
        (["model", "import", "{full}", "--out", "{tmp}/p", "--mean", "1,2"], 64, "go together"),
        (["model", "inspect", "{tmp}/nothing"], 66, "no such model package"),
    ],
)
def test_cli_errors_are_one_line(
    run_cli: RunCli, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01not a model" * 10)
    fill = {
        "tmp": str(tmp_path),
        "garbage": str(garbage),
        "full": str(MODELS / "m13_d2" / "full.onnx"),
    }
    got, _, err = run_cli(*[a.format(**fill) for a in args])
    assert got == code
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_projection_stage_package_applies_the_bound_on_the_host(
    pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    """A package whose encoder stops before the bound (stage 'projection') gives the same
    codes: the host runs bound + round instead of round only."""
    dst = _projection_copy(pkg_d2, tmp_path)
    want = parity("m13_d2")
    got = CodePipeline(load_package(dst)).encode(want["x"])
    np.testing.assert_array_equal(got.index, want["indices"])

"""The card against the graph: FSQ stage and levels read from the encoder's constants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import RunCli

from fsqd.errors import ModelError
from fsqd.fsq import FSQ
from fsqd.model.graphcheck import check_graph
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline


def _edit_card(pkg: ModelPackage, tmp_path: Path, **changes: Any) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(pkg.path, dst)
    card = json.loads((dst / "model.json").read_text())
    for key, value in changes.items():
        if key == "stage":
            card["output"]["stage"] = value
        else:
            card[key] = value
    (dst / "model.json").write_text(json.dumps(card))
    return dst


def test_the_bundled_and_imported_cards_agree_with_their_graphs(pkg_d2: ModelPackage) -> None:
    for pkg in (load_package(), pkg_d2):
        result = check_graph(pkg.card, onnx.load(str(pkg.encoder_onnx)))
        assert result.agrees, result.problem
        assert result.found is not None and result.found.levels == pkg.card.levels
        want = FSQ(pkg.card.levels)
        np.testing.assert_allclose(result.found.half_l, want.half_l, rtol=1e-7)
        np.testing.assert_allclose(result.found.shift, want.shift, rtol=1e-6)
        assert result.found.offset == tuple(want.offset.tolist())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"levels": [4, 5, 5, 6, 8]},
            r"card's levels \[4, 5, 5, 6, 8\] disagree with the encoder's FSQ constants, which "
            r"say levels \[8, 6, 5, 5, 4\] \(reversed\)",
        ),
        ({"levels": [6, 8, 5, 5, 4]}, r"levels \[6, 8, 5, 5, 4\] disagree .* \[8, 6, 5, 5, 4\]$"),
        ({"stage": "projection"}, "stage is 'projection' but .* would apply tanh twice"),
    ],
)
def test_a_card_that_disagrees_with_the_graph_is_refused(
    pkg_d2: ModelPackage, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    dst = _edit_card(pkg_d2, tmp_path, **changes)
    with pytest.raises(ModelError, match=message):
        CodePipeline(load_package(dst))


def test_stage_bounded_on_a_projection_encoder_is_refused(
    pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    from fsqd.model.surgery import Graph, extract

    src = onnx.load(str(pkg_d2.encoder_onnx))
    # The projection is the tensor entering the bound's Add (the input of Tanh's producer).
    tanh = next(n for n in src.graph.node if n.op_type == "Tanh")
    projection = Graph(src).producer[tanh.input[0]].input[0]
    dst = _edit_card(pkg_d2, tmp_path)
    onnx.save(extract(src, ["imu_data"], [projection]), str(dst / "encoder.onnx"))
    card = json.loads((dst / "model.json").read_text())
    card["output"]["name"] = projection
    (dst / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"stage is 'bounded' but its output .* comes from"):
        CodePipeline(load_package(dst))


def test_constants_that_are_not_an_fsq_bound_are_refused(
    pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    dst = _edit_card(pkg_d2, tmp_path)
    model = onnx.load(str(dst / "encoder.onnx"))
    sub = model.graph.node[-1]
    assert sub.op_type == "Sub"
    const = next(n for n in model.graph.node if n.output[0] == sub.input[1])
    offset = onnx.numpy_helper.to_array(const.attribute[0].t).copy()
    offset[...] = 0.25
    const.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(offset))
    onnx.save(model, str(dst / "encoder.onnx"))
    with pytest.raises(ModelError, match="not vector-quantize-pytorch's FSQ bound"):
        CodePipeline(load_package(dst))


def test_cli_refuses_a_reversed_card_in_one_line(
    run_cli: RunCli, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    dst = _edit_card(pkg_d2, tmp_path, levels=[4, 5, 5, 6, 8])
    np.save(tmp_path / "w.npy", np.zeros((3, 9, 2, 100), np.float32))
    code, out, err = run_cli("encode", tmp_path / "w.npy", "--model", dst)
    assert code == 78 and out == ""
    assert "disagree" in err and "[4, 5, 5, 6, 8]" in err and "[8, 6, 5, 5, 4]" in err
    assert err.count("\n") == 1 and "Traceback" not in err

"""The graph check recorded at import: ``fsqd run`` loads no graph (and no ``onnx``) while the
encoder's sha256 and the card are what was checked, and checks again when either changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fsqd.errors import ConfigError, ModelError
from fsqd.model.card import ModelCard
from fsqd.model.graphcheck import check_package, encoder_sha256
from fsqd.model.package import ModelPackage, load_package

# Build the daemon's backend as `fsqd run` does, then report whether onnx was imported.
DAEMON_BACKEND = textwrap.dedent(
    """
    import sys

    import numpy as np

    import fsqd.daemon.wiring
    from fsqd.backends.select import open_encoder
    from fsqd.model.package import load_package
    from fsqd.pipeline import CodePipeline

    pkg = load_package(sys.argv[1] if len(sys.argv) > 1 else None)
    pipeline = CodePipeline(pkg, open_encoder(pkg, "auto"))
    codes = pipeline.encode(np.zeros((2, *pipeline.layout.shape), np.float32))
    print(len(codes), "onnx" in sys.modules)
    """
)


def _build_backend(package: Path | None = None) -> tuple[int, bool]:
    args = [] if package is None else [str(package)]
    done = subprocess.run(
        [sys.executable, "-c", DAEMON_BACKEND, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    n, imported = done.stdout.splitlines()[-1].split()  # log lines come first
    return int(n), imported == "True"


def _copy(pkg: ModelPackage, tmp_path: Path) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(pkg.path, dst)
    return dst


def test_the_daemon_backend_of_the_bundled_model_does_not_import_onnx() -> None:
    assert _build_backend() == (2, False)


def test_the_bundled_card_records_its_encoders_check() -> None:
    pkg = load_package()
    assert pkg.card.graph_check is not None
    assert pkg.card.graph_check.encoder_sha256 == encoder_sha256(pkg)
    assert check_package(pkg) is False


def test_import_records_the_check_and_the_encoders_sha256(pkg_d2: ModelPackage) -> None:
    check = pkg_d2.card.graph_check
    assert check is not None
    assert check.encoder_sha256 == encoder_sha256(pkg_d2)
    assert (check.output, check.stage, check.levels) == (
        pkg_d2.card.output.name,
        pkg_d2.card.output.stage,
        pkg_d2.card.levels,
    )


def test_a_re_saved_encoder_is_checked_again_with_onnx(tmp_path: Path) -> None:
    dst = _copy(load_package(), tmp_path)
    model = onnx.load(str(dst / "encoder.onnx"))
    model.producer_name = "re-saved"  # same graph, other bytes
    onnx.save(model, str(dst / "encoder.onnx"))
    assert _build_backend(dst) == (2, True)


def test_a_tampered_encoder_is_checked_again_and_refused(tmp_path: Path) -> None:
    """New FSQ constants (levels 8,6,5,5,4 -> 8,6,5,5,6) under the old card and record."""
    dst = _copy(load_package(), tmp_path)
    model = onnx.load(str(dst / "encoder.onnx"))
    mul = next(n for n in model.graph.node if n.name == "/fsq_model/fsq/Mul")
    const = next(n for n in model.graph.node if n.output[0] == mul.input[1])
    value = const.attribute[0]
    half_l = numpy_helper.to_array(value.t).copy()
    half_l.flat[-1] = np.float32((6 - 1) * 1.001 / 2)
    value.t.CopyFrom(numpy_helper.from_array(half_l, value.t.name))
    onnx.save(model, str(dst / "encoder.onnx"))
    with pytest.raises(
        ModelError, match=r"not vector-quantize-pytorch's FSQ bound for levels \[8, 6, 5, 5, 6\]"
    ):
        check_package(load_package(dst))


def test_a_card_without_the_record_is_checked(tmp_path: Path) -> None:
    dst = _copy(load_package(), tmp_path)
    card = json.loads((dst / "model.json").read_text())
    del card["graph_check"]
    (dst / "model.json").write_text(json.dumps(card))
    assert check_package(load_package(dst)) is True


def test_a_malformed_record_is_a_card_error() -> None:
    d = json.loads((load_package().path / "model.json").read_text())
    d["graph_check"]["encoder_sha256"] = "not-a-digest"
    with pytest.raises(ConfigError, match="encoder_sha256 must be 64 hex digits"):
        ModelCard.from_dict(d)


def test_a_card_naming_another_output_is_checked_again(tmp_path: Path) -> None:
    dst = _copy(load_package(), tmp_path)
    card = json.loads((dst / "model.json").read_text())
    card["output"]["name"] = "/fsq_model/fsq/Mul_output_0"  # the record names the Sub's
    (dst / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"stage is 'bounded' but its output .* comes from Mul"):
        check_package(load_package(dst))

"""The onnxruntime encoder backend: encoders exported or compiled with a fixed batch size."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import parity

from fsqd.backends.onnx import OnnxEncoder
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline


def fixed_batch_package(pkg: ModelPackage, tmp_path: Path, batch: int) -> ModelPackage:
    """A copy of ``pkg`` whose encoder input and output have batch size ``batch`` baked in,
    the way NPU compilers and `torch.onnx.export` without dynamic_axes leave them."""
    dst = tmp_path / f"fixed{batch}"
    shutil.copytree(pkg.path, dst)
    model = onnx.load(str(dst / "encoder.onnx"))
    for value in [*model.graph.input, *model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    onnx.checker.check_model(model)
    onnx.save(model, str(dst / "encoder.onnx"))
    return load_package(dst)


@pytest.mark.parametrize("batch", [4, 1])
@pytest.mark.parametrize("n", [0, 1, 3, 4, 10, 256])
def test_fixed_batch_encoder_gives_the_dynamic_encoders_answers(
    pkg_d2: ModelPackage, tmp_path: Path, batch: int, n: int
) -> None:
    x = np.tile(parity("m13_d2")["x"], (4, 1, 1, 1))[:n]
    want = OnnxEncoder(pkg_d2)(x)
    enc = OnnxEncoder(fixed_batch_package(pkg_d2, tmp_path, batch))
    assert enc.fixed_batch == batch
    got = enc(x)
    assert got.shape == (n, 5)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_fixed_batch_pipeline_matches_torch(pkg_d2: ModelPackage, tmp_path: Path) -> None:
    want = parity("m13_d2")
    pipe = CodePipeline(fixed_batch_package(pkg_d2, tmp_path, 8))
    got = pipe.encode(want["x"][:61])  # 7 full batches and 5 padded rows
    np.testing.assert_array_equal(got.index, want["indices"][:61])


def test_dynamic_batch_is_not_sliced(pkg_d2: ModelPackage) -> None:
    enc = OnnxEncoder(pkg_d2)
    assert enc.fixed_batch is None
    assert enc(np.tile(parity("m13_d2")["x"], (5, 1, 1, 1))).shape == (320, 5)

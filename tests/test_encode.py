"""`fsqd encode`: the parity tool over already-shaped windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import RunCli, parity

from fsqd.model.package import ModelPackage


def test_encode_matches_torch_codes(run_cli: RunCli, pkg_d2: ModelPackage, tmp_path: Path) -> None:
    want = parity("m13_d2")
    windows = tmp_path / "w.npy"
    np.save(windows, want["x"])
    code, out, err = run_cli("encode", "--model", pkg_d2.path, windows, "--batch", "7")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == list(range(len(want["x"])))
    assert [r["code"] for r in rows] == want["indices"].tolist()
    basis = np.cumprod([1, 8, 6, 5, 5])
    assert all(int(np.dot(r["digits"], basis)) == r["code"] for r in rows)
    assert [r["label"] for r in rows] == [f"class_{i}" for i in want["logits"].argmax(axis=1)]
    e = np.exp(want["logits"] - want["logits"].max(axis=1, keepdims=True))
    top = (e / e.sum(axis=1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose([r["p"] for r in rows], top, atol=1e-4)
    assert {r["model"] for r in rows} == {"full@1.0.0"}


def test_encode_to_file_and_float64(
    run_cli: RunCli, pkg_nohead: ModelPackage, tmp_path: Path
) -> None:
    want = parity("m13_d1_nohead")
    windows = tmp_path / "w.npy"
    np.save(windows, want["x"].astype(np.float64))
    out_file = tmp_path / "codes.jsonl"
    code, out, _ = run_cli("encode", "--model", pkg_nohead.path, windows, "--out", out_file)
    assert code == 0 and out == ""
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["code"] for r in rows] == want["indices"].tolist()
    assert "label" not in rows[0]


def _err(run_cli: RunCli, pkg: ModelPackage, path: Path) -> tuple[int, str, str]:
    return run_cli("encode", "--model", pkg.path, path)


def test_wrong_shape_dtype_nan_missing(
    run_cli: RunCli, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    cases = {
        "shape.npy": (np.zeros((4, 9, 1, 100), np.float32), 65, "expects [N, 9, 2, 100]"),
        "dtype.npy": (np.zeros((4, 9, 2, 100), np.int64), 65, "dtype int64"),
        "nan.npy": (np.zeros((4, 9, 2, 100), np.float32), 65, "window 2 holds NaN"),
    }
    cases["nan.npy"][0][2, 3, 1, 50] = np.nan
    for name, (arr, code, message) in cases.items():
        path = tmp_path / name
        np.save(path, arr)
        got, out, err = _err(run_cli, pkg_d2, path)
        assert (got, out) == (code, ""), name
        assert message in err and "Traceback" not in err, err
    (tmp_path / "junk.npy").write_text("not numpy")
    got, _, err = _err(run_cli, pkg_d2, tmp_path / "junk.npy")
    assert got == 65 and "junk.npy: not a .npy array" in err
    got, _, err = _err(run_cli, pkg_d2, tmp_path / "absent.npy")
    assert got == 66 and "no such file" in err


def test_a_recording_given_to_encode_points_to_replay(run_cli: RunCli, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("t,ax,ay,az,gx,gy,gz,mx,my,mz\n0,1,2,3,4,5,6,7,8,9\n")
    code, out, err = run_cli("encode", data)
    assert (code, out) == (65, "") and err.count("\n") == 1
    assert f"use: fsqd replay {data}" in err and "pickle" not in err
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.zeros((4, 9, 1, 100), np.float32))
    truncated.write_bytes(truncated.read_bytes()[:100])
    code, _, err = run_cli("encode", truncated)
    assert code == 65 and "not a readable .npy" in err


def test_bad_usage_exits_64(run_cli: RunCli) -> None:
    code, out, err = run_cli("encode")
    assert (code, out) == (64, "") and "required" in err
    assert run_cli("--version")[0] == 0


def test_bad_input_leaves_nothing_behind_and_an_old_output_untouched(
    run_cli: RunCli, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    """Every check of the model and the windows comes before --out is opened: no
    ``.NAME.partial`` beside the target, an existing output keeps its bytes and inode."""
    nan = np.zeros((4, 9, 2, 100), np.float32)
    nan[3, 0, 0, 0] = np.inf
    inputs = {
        "absent.npy": None,
        "junk.npy": b"not numpy",
        "shape.npy": np.zeros((4, 9, 1, 100), np.float32),
        "dtype.npy": np.zeros((4, 9, 2, 100), np.int64),
        "nan.npy": nan,
    }
    for name, content in inputs.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        elif content is not None:
            np.save(tmp_path / name, content)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 9, 2, 100), np.float32))
    cases = [(pkg_d2.path, tmp_path / name) for name in inputs]
    cases.append((tmp_path / "no-such-package", good))
    for model, windows in cases:
        for existing in (False, True):
            out_dir = tmp_path / "out"
            out_dir.mkdir()
            target = out_dir / "codes.jsonl"
            if existing:
                target.write_text("old codes\n")
            before = target.stat().st_ino if existing else None
            code, out, err = run_cli("encode", "--model", model, windows, "--out", target)
            assert code in (65, 66, 78) and out == "", (windows, code, err)
            assert err.count("\n") == 1 and "partial" not in err, err
            left = sorted(p.name for p in out_dir.iterdir())
            assert left == (["codes.jsonl"] if existing else []), (windows, left)
            if existing:
                assert target.read_text() == "old codes\n" and target.stat().st_ino == before
            for p in out_dir.iterdir():
                p.unlink()
            out_dir.rmdir()

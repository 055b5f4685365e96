"""`fsqd model import` on graphs shaped like users' exports: more outputs than the logits,
other channel sets, the sample rate, and --out safety."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import MODELS, RunCli, parity

from fsqd.commands.model_import import ImportOptions, import_model
from fsqd.errors import ConfigError, ModelError, UsageError
from fsqd.model.package import load_package
from fsqd.pipeline import CodePipeline

IDX = MODELS / "m13_d1_idx" / "full.onnx"  # returns (logits, indices), like FSQ's forward
MULTI = MODELS / "m13_d1_multi" / "full.onnx"  # returns (codes, logits, probs, indices)
C6 = MODELS / "m13_c6" / "full.onnx"  # 6 channels, sample_rate_hz=52 in its metadata
RATE = 100.0
C6_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")


def _check_parity(pkg_dir: Path, fixture: str) -> None:
    want = parity(fixture)
    pipe = CodePipeline(load_package(pkg_dir))
    got = pipe.encode(want["x"])
    np.testing.assert_array_equal(got.index, want["indices"])
    np.testing.assert_array_equal(got.codes, want["zhat"])
    assert pipe.head is not None
    np.testing.assert_allclose(pipe.head.logits(got.codes), want["logits"], rtol=1e-4, atol=1e-4)


def _without_outputs(src: Path, drop: set[str], dst: Path) -> Path:
    model = onnx.load(str(src))
    keep = [o for o in model.graph.output if o.name not in drop]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    onnx.save(model, str(dst))
    return dst


def test_logits_and_indices_model_keeps_its_head(tmp_path: Path) -> None:
    """vector-quantize-pytorch's FSQ returns (codes, indices); the index Round after the
    FSQ's own is not a second FSQ, and the int32 indices output is not the head."""
    report = import_model(IDX, tmp_path / "p", ImportOptions(sample_rate_hz=RATE))
    card = report.card
    assert card.levels == (8, 5, 5, 5)
    assert card.head is not None and card.head.output == "behavior_logits"
    assert len(card.head.labels) == 6
    _check_parity(tmp_path / "p", "m13_d1_idx")


def test_codes_as_an_output_keep_the_head(tmp_path: Path) -> None:
    full = _without_outputs(MULTI, {"behavior_probs"}, tmp_path / "codes_logits_idx.onnx")
    report = import_model(full, tmp_path / "p", ImportOptions(sample_rate_hz=RATE))
    assert report.card.head is not None and report.card.head.output == "behavior_logits"
    _check_parity(tmp_path / "p", "m13_d1_multi")


def test_several_float_outputs_need_head_output(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError, match=r"several float outputs .*\(behavior_logits, behavior_probs\).*--head"
    ):
        import_model(MULTI, tmp_path / "p", ImportOptions(sample_rate_hz=RATE))
    assert not (tmp_path / "p").exists()
    opts = ImportOptions(sample_rate_hz=RATE, head_output="behavior_logits")
    report = import_model(MULTI, tmp_path / "p", opts)
    assert report.card.head is not None and report.card.head.output == "behavior_logits"
    _check_parity(tmp_path / "p", "m13_d1_multi")


def test_head_output_must_follow_the_codes(tmp_path: Path) -> None:
    opts = ImportOptions(sample_rate_hz=RATE, head_output="fsq_codes")
    with pytest.raises(ModelError, match="those are: behavior_logits, behavior_probs"):
        import_model(MULTI, tmp_path / "p", opts)


def test_codes_only_model_has_no_head(tmp_path: Path) -> None:
    full = _without_outputs(MULTI, {"behavior_probs", "behavior_logits"}, tmp_path / "c.onnx")
    report = import_model(full, tmp_path / "p", ImportOptions(sample_rate_hz=RATE))
    assert report.card.head is None


def test_second_fsq_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"2 FSQ bounds feeding Round .*fsqd handles one FSQ"):
        import_model(MODELS / "two_fsq" / "full.onnx", tmp_path / "p", ImportOptions())


def test_a_round_outside_the_fsq_is_refused(tmp_path: Path) -> None:
    model = onnx.load(str(IDX))
    model.graph.node.append(onnx.helper.make_node("Round", ["imu_data"], ["stray"], name="stray"))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("stray", onnx.TensorProto.FLOAT, None)
    )
    onnx.save(model, str(tmp_path / "stray.onnx"))
    with pytest.raises(ModelError, match="Round 'stray' does not follow the FSQ's Round"):
        import_model(tmp_path / "stray.onnx", tmp_path / "p", ImportOptions(sample_rate_hz=RATE))


def test_six_channel_model_needs_channels(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has 6 channels but 9 are named .*--channels with 6"):
        import_model(C6, tmp_path / "p", ImportOptions())
    report = import_model(C6, tmp_path / "p", ImportOptions(channels=C6_CHANNELS))
    card = report.card
    assert card.channel_names == C6_CHANNELS
    assert [c.unit for c in card.channels] == ["m/s^2"] * 3 + ["rad/s"] * 3
    assert card.sample_rate_hz == 52.0  # from the model's metadata
    _check_parity(tmp_path / "p", "m13_c6")


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            ImportOptions(channels=("a1", "a2", "a3", "g1", "g2", "g3")),
            "no known unit for the channels a1,a2,a3,g1,g2,g3: pass --units",
        ),
        (ImportOptions(channels=C6_CHANNELS, units=("g",) * 3), "gives 3 units for 6 channels"),
        (
            ImportOptions(channels=C6_CHANNELS, sample_rate_hz=100.0),
            "--rate 100 disagrees with the model's metadata sample_rate_hz=52",
        ),
    ],
)
def test_channel_and_rate_options_are_checked(
    tmp_path: Path, opts: ImportOptions, message: str
) -> None:
    with pytest.raises(UsageError, match=message.replace("^", r"\^")):
        import_model(C6, tmp_path / "p", opts)


def test_rate_is_required_when_the_graph_cannot_tell(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not record its sample rate: pass --rate"):
        import_model(IDX, tmp_path / "p", ImportOptions())
    assert not (tmp_path / "p").exists()


def test_cli_options_and_errors(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, err = run_cli(
        "model", "import", C6, "--out", tmp_path / "p", "--channels", "ax,ay,az,gx,gy,gz",
        "--units", "m/s^2,m/s^2,m/s^2,deg/s,deg/s,deg/s",
    )  # fmt: skip
    assert code == 0, err
    assert [c.unit for c in load_package(tmp_path / "p").card.channels][3] == "deg/s"
    code, _, err = run_cli("model", "import", IDX, "--out", tmp_path / "q")
    assert code == 64 and "pass --rate" in err and err.count("\n") == 1
    code, _, err = run_cli("model", "import", MULTI, "--out", tmp_path / "q", "--rate", "50")
    assert code == 78 and "--head-output" in err and err.count("\n") == 1
    code, out, err = run_cli(
        "model", "import", MULTI, "--out", tmp_path / "q", "--rate", "50",
        "--head-output", "behavior_logits",
    )  # fmt: skip
    assert code == 0, err
    assert "head with 4 classes" in out
    assert "FSQ indices fsq_indices; not kept: fsq_codes, behavior_probs" in out
    assert "host FSQ codes identical, indices identical" in out


def test_out_naming_a_file_is_refused_even_with_force(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"keep me")
    for extra in ([], ["--force"]):
        code, _, err = run_cli("model", "import", IDX, "--out", target, "--rate", "100", *extra)
        assert code == 78 and "is a file" in err
        assert err.count("\n") == 1 and "internal error" not in err
    assert target.read_bytes() == b"keep me"


def test_out_naming_another_directory_is_never_replaced(run_cli: RunCli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    for extra in ([], ["--force"]):
        code, _, err = run_cli("model", "import", IDX, "--out", home, "--rate", "100", *extra)
        assert code == 78 and "not a model package" in err
        assert err.count("\n") == 1
    assert (home / "thesis.tex").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("model", "import", IDX, "--out", empty, "--rate", "100", "--force")[0] == 0
    assert load_package(empty).card.levels == (8, 5, 5, 5)


def test_out_in_an_unwritable_place_is_an_output_error(run_cli: RunCli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli("model", "import", IDX, "--out", blocker / "p", "--rate", "100")
    assert code == 74 and "cannot create the package" in err and err.count("\n") == 1


def test_indices_output_that_disagrees_with_the_host_fails_the_self_check(
    tmp_path: Path,
) -> None:
    """The graph's own indices are compared with the host's: a different basis (another
    index order) must not pass as the same model."""
    model = onnx.load(str(IDX))
    basis = np.array([1, 8, 40, 200], np.float32)  # cumprod([1, 8, 5, 5]) for levels 8,5,5,5
    consts = [n for n in model.graph.node if n.op_type == "Constant"]
    hit = [
        n
        for n in consts
        if np.array_equal(onnx.numpy_helper.to_array(n.attribute[0].t).reshape(-1), basis)
    ]
    assert len(hit) == 1
    hit[0].attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(basis[::-1].copy()))
    onnx.save(model, str(tmp_path / "other_basis.onnx"))
    with pytest.raises(ModelError, match="indices differ from the model's 'fsq_indices'"):
        import_model(
            tmp_path / "other_basis.onnx", tmp_path / "p", ImportOptions(sample_rate_hz=RATE)
        )
    assert not (tmp_path / "p").exists()


def test_fixed_batch_export_imports_and_runs(run_cli: RunCli, tmp_path: Path) -> None:
    """torch.onnx.export without dynamic_axes bakes the batch size (8 here) into the graph:
    the self-check runs the full model in padded slices, the card records the batch size,
    and the package gives torch's answers for 20 windows (two slices and a padded one)."""
    full = MODELS / "m13_d1_fb8" / "full.onnx"
    report = import_model(full, tmp_path / "p", ImportOptions(sample_rate_hz=RATE))
    assert report.card.input.shape == (8, 9, 1, 100)
    _check_parity(tmp_path / "p", "m13_d1_fb8")
    code, out, _ = run_cli("model", "inspect", tmp_path / "p")
    assert code == 0 and "batch      fixed 8" in out and "agrees with the card" in out


def test_card_batch_size_must_match_the_encoder(tmp_path: Path) -> None:
    import json

    import_model(IDX, tmp_path / "p", ImportOptions(sample_rate_hz=RATE))
    card = json.loads((tmp_path / "p" / "model.json").read_text())
    card["input"]["shape"][0] = 4
    (tmp_path / "p" / "model.json").write_text(json.dumps(card))
    with pytest.raises(
        ModelError, match="card's input batch size is 4 but the ONNX input's is dynamic"
    ):
        CodePipeline(load_package(tmp_path / "p"))

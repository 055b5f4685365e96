"""Choosing the backend, falling back to the CPU at run time, and returning to the NPU."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import structlog
from conftest import RunCli, parity
from hailo_support import fake_hailo, hef_pkg, structlog_defaults, windows, write_fake_hef

from fsqd.backends.hailo import HailoEncoder, HailoSettings, HailoVersionError
from fsqd.backends.onnx import OnnxEncoder
from fsqd.backends.select import FallbackEncoder, encoder_stats, hef_path, open_encoder
from fsqd.errors import ModelError, NoInputError, UsageError
from fsqd.model.package import ModelPackage

__all__ = ["fake_hailo", "hef_pkg", "structlog_defaults"]

FAST = HailoSettings(timeout_ms=200, backoff_s=0.0, open_attempts=2)


def _x(pkg: ModelPackage, n: int = 16, seed: int = 0) -> np.ndarray:
    return windows(n, tuple(int(v) for v in pkg.card.input.shape[1:] if v), seed)


def _choices(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["backend"], e["reason"]) for e in logs if e["event"] == "encoder_backend"]


def test_unknown_backend(pkg_d2: ModelPackage) -> None:
    with pytest.raises(UsageError, match="auto, hailo, onnx"):
        open_encoder(pkg_d2, "npu")


def test_onnx_when_asked(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> None:
    enc = open_encoder(hef_pkg, "onnx")
    assert isinstance(enc, OnnxEncoder) and enc.name == "onnx"
    assert encoder_stats(enc) == {"backend": "onnx"}
    assert fake_hailo.STATE.vdevices_created == 0


def test_auto_without_a_hef_is_the_cpu(pkg_d2: ModelPackage) -> None:
    assert hef_path(pkg_d2) is None
    with structlog.testing.capture_logs() as logs:
        enc = open_encoder(pkg_d2)
    assert enc.name == "onnx"
    assert _choices(logs) == [("onnx", "no encoder.hef in the package")]


def test_hailo_without_a_hef_is_an_error(pkg_d2: ModelPackage) -> None:
    with pytest.raises(NoInputError, match=r"no encoder\.hef beside the card"):
        open_encoder(pkg_d2, "hailo")


def test_auto_with_a_hef_and_a_device_is_the_npu(
    fake_hailo: ModuleType, hef_pkg: ModelPackage
) -> None:
    with structlog.testing.capture_logs() as logs:
        enc = open_encoder(hef_pkg, hailo=FAST)
    try:
        assert isinstance(enc, FallbackEncoder) and enc.name == "hailo"
        assert _choices(logs) == [("hailo", "HEF present, device answers")]
        enc(_x(hef_pkg))
        assert fake_hailo.STATE.frames_run == 16
        stats = encoder_stats(enc)
        assert stats["backend"] == "hailo" and stats["fallbacks"] == 0
        assert stats["api"] == "infer_model" and stats["input_out_of_range_share"] == 0.0
    finally:
        enc.close()
    assert fake_hailo.STATE.vdevices_alive == 0


def test_hailo_when_asked_has_no_fallback(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> None:
    enc = open_encoder(hef_pkg, "hailo", hailo=FAST)
    try:
        assert isinstance(enc, HailoEncoder)
    finally:
        enc.close()


def test_hailo_refuses_a_card_that_disagrees_with_its_graph(
    fake_hailo: ModuleType, hef_pkg: ModelPackage
) -> None:
    card = json.loads((hef_pkg.path / "model.json").read_text())
    card["levels"] = list(reversed(card["levels"]))
    (hef_pkg.path / "model.json").write_text(json.dumps(card))
    from fsqd.model.package import load_package

    with pytest.raises(ModelError, match=r"disagree with the encoder's FSQ constants"):
        open_encoder(load_package(hef_pkg.path), "hailo", hailo=FAST)
    assert fake_hailo.STATE.vdevices_alive == 0


def test_auto_without_hailort_is_the_cpu_and_says_why(hef_pkg: ModelPackage) -> None:
    with structlog.testing.capture_logs() as logs:
        enc = open_encoder(hef_pkg)
    try:
        assert enc.name == "onnx"
        ((backend, reason),) = _choices(logs)
        assert backend == "onnx" and "apt install hailo-all" in str(reason)
    finally:
        enc.close()


def test_auto_stops_on_a_driver_mismatch(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> None:
    fake_hailo.STATE.driver_version = "4.22.0"
    with pytest.raises(HailoVersionError, match=r"library 4\.23\.0"):
        open_encoder(hef_pkg, hailo=FAST)


def test_auto_refuses_a_hef_that_does_not_fit(
    fake_hailo: ModuleType, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    pkg = write_fake_hef(pkg_d2, tmp_path / "p", in_shape=[9, 2, 100])
    with pytest.raises(ModelError, match="HEF input is"):
        open_encoder(pkg, hailo=FAST)


def test_busy_at_start_runs_on_the_cpu_then_moves_to_the_npu(
    fake_hailo: ModuleType, hef_pkg: ModelPackage
) -> None:
    fake_hailo.STATE.held_elsewhere = True
    enc = open_encoder(hef_pkg, hailo=FAST, retry_s=0.0)
    x = _x(hef_pkg)
    try:
        assert enc.name == "onnx"
        np.testing.assert_array_equal(enc(x), OnnxEncoder(hef_pkg)(x))
        fake_hailo.STATE.held_elsewhere = False
        enc(x)
        assert enc.name == "hailo" and fake_hailo.STATE.frames_run == 16
        assert isinstance(enc, FallbackEncoder) and enc.recoveries == 1 and enc.fallbacks == 0
    finally:
        enc.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _fallback(pkg: ModelPackage, clock: Clock, retry_s: float = 30.0) -> FallbackEncoder:
    path = pkg.path / "encoder.hef"
    once = HailoSettings(**{**FAST.__dict__, "open_attempts": 1})
    return FallbackEncoder(
        HailoEncoder(pkg, path, FAST),
        OnnxEncoder(pkg),
        lambda: HailoEncoder(pkg, path, once),
        retry_s=retry_s,
        clock=clock,
    )


@pytest.mark.parametrize("fault", ["dead", "hang"])
def test_a_runtime_failure_falls_back_and_the_npu_returns(
    fake_hailo: ModuleType, hef_pkg: ModelPackage, fault: str
) -> None:
    clock = Clock()
    enc = _fallback(hef_pkg, clock)
    x = _x(hef_pkg)
    cpu = OnnxEncoder(hef_pkg)(x)
    try:
        npu_y = enc(x)
        assert not np.array_equal(npu_y, cpu)  # quantised on the NPU
        setattr(fake_hailo.STATE, fault, True)
        with structlog.testing.capture_logs() as logs:
            np.testing.assert_array_equal(enc(x), cpu)  # the batch is not lost
        assert enc.name == "onnx"
        assert [e["event"] for e in logs if e["log_level"] == "warning"][-1] == "encoder_fallback"
        stats = enc.stats()
        assert stats["backend"] == "onnx" and stats["fallbacks"] == 1
        assert stats["rebuilds"] == 1 and stats["last_error"]
        setattr(fake_hailo.STATE, fault, False)
        created = fake_hailo.STATE.vdevices_created
        np.testing.assert_array_equal(enc(x), cpu)  # not yet: retry_s has not passed
        assert fake_hailo.STATE.vdevices_created == created
        clock.t += 31
        np.testing.assert_array_equal(enc(x), npu_y)
        assert enc.name == "hailo" and enc.recoveries == 1
    finally:
        enc.close()
    assert fake_hailo.STATE.vdevices_alive == 0


def test_the_npu_still_away_keeps_the_cpu(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> None:
    clock = Clock()
    enc = _fallback(hef_pkg, clock)
    x = _x(hef_pkg)
    try:
        fake_hailo.STATE.dead = True
        enc(x)
        clock.t += 31
        with structlog.testing.capture_logs() as logs:
            enc(x)
        assert enc.name == "onnx" and enc.recoveries == 0
        assert [e for e in logs if e["event"] == "encoder_npu_still_away"]
        assert "HAILO_OUT_OF_PHYSICAL_DEVICES" in str(enc.last_error)
    finally:
        enc.close()


def test_fallback_through_the_async_path(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> None:
    enc = _fallback(hef_pkg, Clock())
    xs = [_x(hef_pkg, 8, seed=s) for s in range(4)]
    cpu = OnnxEncoder(hef_pkg)

    async def main() -> list[np.ndarray]:
        first = await asyncio.wrap_future(enc.submit(xs[0]))
        fake_hailo.STATE.dead = True
        rest = await asyncio.gather(*(asyncio.wrap_future(enc.submit(x)) for x in xs[1:]))
        return [first, *rest]

    try:
        got = asyncio.run(main())
    finally:
        enc.close()
    assert not np.array_equal(got[0], cpu(xs[0]))
    for y, x in zip(got[1:], xs[1:], strict=True):
        np.testing.assert_array_equal(y, cpu(x))
    assert enc.fallbacks == 1


# -- the command line --


def test_encode_on_the_npu(
    run_cli: RunCli, fake_hailo: ModuleType, hef_pkg: ModelPackage, tmp_path: Path
) -> None:
    want = parity("m13_d2")
    w = tmp_path / "w.npy"
    np.save(w, want["x"])
    code, out, err = run_cli("encode", "--model", hef_pkg.path, w, "--backend", "hailo")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert fake_hailo.STATE.frames_run == len(want["x"]) == len(rows)
    same = np.mean([r["code"] for r in rows] == want["indices"])
    # 8-bit edges calibrated for +-4; these windows reach +-7 and are clipped on the "NPU".
    assert same >= 0.7


@pytest.mark.parametrize(
    ("setup", "exit_code", "message"),
    [
        ("no hef", 66, "no encoder.hef beside the card"),
        ("held", 69, "no free Hailo device after 5 attempts"),
        ("driver", 78, "HailoRT library 4.23.0 and hailo_pci driver"),
    ],
)
def test_encode_on_the_npu_errors(
    run_cli: RunCli,
    fake_hailo: ModuleType,
    hef_pkg: ModelPackage,
    pkg_d2: ModelPackage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: str,
    exit_code: int,
    message: str,
) -> None:
    import fsqd.backends.hailo.device as hailo_device

    slept: list[float] = []
    monkeypatch.setattr(hailo_device, "_sleep", slept.append)
    w = tmp_path / "w.npy"
    np.save(w, parity("m13_d2")["x"][:4])
    pkg = pkg_d2 if setup == "no hef" else hef_pkg
    fake_hailo.STATE.held_elsewhere = setup == "held"
    if setup == "driver":
        fake_hailo.STATE.driver_version = "4.20.0"
    code, out, err = run_cli("encode", "--model", pkg.path, w, "--backend", "hailo")
    assert (code, out) == (exit_code, "")
    *retries, last = err.splitlines()
    assert message in last and last.startswith("fsqd: error: ") and "Traceback" not in err
    assert all("hailo_device_unavailable" in line for line in retries)
    assert len(retries) == (4 if setup == "held" else 0)
    assert slept == ([0.5, 1.0, 2.0, 4.0] if setup == "held" else [])


def test_replay_takes_a_backend(run_cli: RunCli, tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    rows = ["t,ax,ay,az,gx,gy,gz,mx,my,mz"]
    rows += [",".join([f"{i / 100:.2f}"] + ["0.5"] * 9) for i in range(300)]
    csv.write_text("\n".join(rows) + "\n")
    code, out, err = run_cli("replay", csv, "--backend", "onnx")
    assert code == 0, err and len(out.splitlines()) == 5
    code, _, err = run_cli("replay", csv, "--backend", "hailo")
    assert code == 66 and "no encoder.hef" in err


def test_a_batch_submitted_while_the_npu_closes_runs_on_the_cpu(
    fake_hailo: ModuleType, hef_pkg: ModelPackage
) -> None:
    enc = _fallback(hef_pkg, Clock())
    x = _x(hef_pkg)
    try:
        assert enc._npu is not None
        enc._npu.close()  # as a fall-back on another thread does, between check and submit
        np.testing.assert_array_equal(enc(x), OnnxEncoder(hef_pkg)(x))
    finally:
        enc.close()

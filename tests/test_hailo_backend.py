"""The Hailo backend through the fake HailoRT: layout, shapes, quantisation, failures."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import structlog
from hailo_support import (
    GOOD_OUT,
    RANDOM_CALIB_IN,
    RANDOM_CALIB_OUT,
    fake_hailo,
    hef_pkg,
    structlog_defaults,
    windows,
    write_fake_hef,
)

import fsqd.backends.hailo as hailo
from fsqd.backends.hailo import (
    HailoEncoder,
    HailoRuntimeError,
    HailoSettings,
    HailoUnavailableError,
    HailoVersionError,
    describe_device,
    status_of,
)
from fsqd.backends.onnx import OnnxEncoder
from fsqd.errors import ModelError
from fsqd.fsq import FSQ
from fsqd.model.package import ModelPackage

__all__ = ["fake_hailo", "hef_pkg", "structlog_defaults"]  # fixtures used by name

FAST = HailoSettings(timeout_ms=200, backoff_s=0.0)


def _x(pkg: ModelPackage, n: int = 48, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return windows(n, tuple(int(v) for v in pkg.card.input.shape[1:] if v), seed, scale)


def _codes(pkg: ModelPackage, y: np.ndarray) -> np.ndarray:
    return FSQ(pkg.card.levels).indices_from_bounded(y)


@pytest.fixture
def npu(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> HailoEncoder:
    enc = HailoEncoder(hef_pkg, hef_pkg.path / "encoder.hef", FAST)
    yield enc
    enc.close()


def test_the_vdevice_runs_the_round_robin_scheduler(npu: HailoEncoder) -> None:
    import hailo_platform
    import hailo_platform._fake as fake

    (params,) = fake.STATE.vdevice_params
    assert params.scheduling_algorithm == hailo_platform.HailoSchedulingAlgorithm.ROUND_ROBIN
    assert params.multi_process_service is False


@pytest.mark.parametrize("api", ["infer_model", "vstreams"])
def test_codes_match_the_cpu_encoder(
    fake_hailo: ModuleType, hef_pkg: ModelPackage, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    if api == "vstreams":  # HailoRT before 4.18 has no InferModel API
        import hailo_platform

        monkeypatch.delattr(hailo_platform.VDevice, "create_infer_model")
    x = _x(hef_pkg, 64)
    enc = HailoEncoder(hef_pkg, hef_pkg.path / "encoder.hef", FAST)
    try:
        assert enc.api == api
        y = enc(x)
    finally:
        enc.close()
    cpu = OnnxEncoder(hef_pkg)(x)
    assert y.shape == cpu.shape == (64, 5)
    # Quantised to 8 bits on both edges: close, not equal.
    assert 0 < np.abs(y - cpu).max() < 0.15
    cos = (y * cpu).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(cpu, axis=1)
    assert cos.min() > 0.99
    assert (_codes(hef_pkg, y) == _codes(hef_pkg, cpu)).mean() >= 0.9
    assert fake_hailo.STATE.frames_run == 64


def test_a_batch_larger_than_the_async_queue_is_chunked(npu: HailoEncoder) -> None:
    import hailo_platform._fake as fake

    fake.STATE.async_queue_size = 3
    x = _x(npu.package, 10)
    np.testing.assert_array_equal(npu(x), np.concatenate([npu(x[:5]), npu(x[5:])]))


def test_untransposed_windows_give_other_codes(
    npu: HailoEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HailoRT (and the fake) check bytes only: NCHW data of the right size runs silently."""
    x = _x(npu.package, 64)
    right = _codes(npu.package, npu(x))
    monkeypatch.setattr(
        hailo.encoder, "to_frames", lambda a: np.ascontiguousarray(a).reshape(len(a), 2, 100, 9)
    )
    wrong = _codes(npu.package, npu(x))
    assert (right == wrong).mean() < 0.5


def test_frames_are_the_card_windows_as_nhwc() -> None:
    x = np.arange(2 * 9 * 2 * 100, dtype=np.float32).reshape(2, 9, 2, 100)
    f = hailo.to_frames(x)
    assert f.shape == (2, 2, 100, 9) and f.flags.c_contiguous
    assert f[1, 1, 37, 4] == x[1, 4, 1, 37]


@pytest.mark.parametrize(
    ("what", "kwargs", "message"),
    [
        ("input as NCHW", {"in_shape": [9, 2, 100]}, "HEF input is [9, 2, 100] (NHWC)"),
        ("input devices", {"in_shape": [1, 100, 9]}, "needs [2, 100, 9]"),
        ("output width", {"out_shape": [1, 1, 10]}, "HEF output is [1, 1, 10]"),
        ("output spread", {"out_shape": [5, 1, 5]}, "FSQ stage is 5 wide"),
    ],
)
def test_a_hef_that_does_not_fit_the_card_is_refused(
    fake_hailo: ModuleType,
    pkg_d2: ModelPackage,
    tmp_path: Path,
    what: str,
    kwargs: dict[str, list[int]],
    message: str,
) -> None:
    pkg = write_fake_hef(pkg_d2, tmp_path / "p", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=re.escape(message)) as e:
        HailoEncoder(pkg, pkg.path / "encoder.hef", FAST)
    assert "\n" not in str(e.value)
    assert fake_hailo.STATE.vdevices_alive == 0  # released on refusal


def test_outputs_are_dequantised_on_the_hef_grid(
    fake_hailo: ModuleType, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    pkg = write_fake_hef(pkg_d2, tmp_path / "p", out_quant=RANDOM_CALIB_OUT)
    enc = HailoEncoder(pkg, pkg.path / "encoder.hef", FAST)
    try:
        y = enc(_x(pkg, 64, scale=2.0))
    finally:
        enc.close()
    q = y / RANDOM_CALIB_OUT["qp_scale"] + RANDOM_CALIB_OUT["qp_zp"]
    np.testing.assert_allclose(q, np.rint(q), atol=1e-3)  # FLOAT32 = (q - zp) * scale
    assert q.min() >= 0 and q.max() <= 255
    # This calibration cannot represent the L=8 level -4: that digit never appears.
    assert y.min() >= RANDOM_CALIB_OUT["limvals_min"] - 1e-6
    digits = FSQ(pkg.card.levels).digits_and_codes_from_bounded(y)[0]
    assert (digits[:, 0] > 0).all()


def test_inputs_outside_the_hef_range_warn_once_with_the_share(
    fake_hailo: ModuleType, pkg_d2: ModelPackage, tmp_path: Path
) -> None:
    pkg = write_fake_hef(pkg_d2, tmp_path / "p", in_quant=RANDOM_CALIB_IN)
    enc = HailoEncoder(pkg, pkg.path / "encoder.hef", FAST)
    x1, x2 = _x(pkg, 16, seed=1), _x(pkg, 16, seed=2)
    try:
        with structlog.testing.capture_logs() as logs:
            enc(x1)
            enc(x2)
        share = enc.stats()["input_out_of_range_share"]
    finally:
        enc.close()
    both = np.concatenate([x1, x2])
    assert share == pytest.approx(((both < 0) | (both > 1)).mean(), abs=1e-6)
    assert share > 0.6  # z-scores: every negative one and the tail above 1
    warnings = [e for e in logs if e["event"] == "hailo_input_out_of_range"]
    assert len(warnings) == 1
    assert warnings[0]["hef_range"] == [0.0, 1.0] and "fsqd model calib" in warnings[0]["fix"]
    assert any("are clipped on the NPU" in e["event"] for e in logs)


def test_a_well_calibrated_hef_does_not_warn(npu: HailoEncoder) -> None:
    with structlog.testing.capture_logs() as logs:
        npu(_x(npu.package, 32))
    assert not [e for e in logs if e["log_level"] == "warning"]
    assert npu.stats()["input_out_of_range_share"] < 0.001


def test_limvals_missing_falls_back_to_the_uint8_range() -> None:
    class Q:
        qp_scale, qp_zp, limvals_min, limvals_max = 0.5, 10.0, 0.0, 0.0

    m = hailo.RangeMonitor.from_quant([Q()], 0.01, Path("x.hef"))
    assert (m.lo, m.hi) == (-5.0, 122.5)


# -- status codes --


@pytest.mark.parametrize("code", [73, 74, 76, 77])
def test_status_codes_are_read_from_a_plain_hailort_exception(
    fake_hailo: ModuleType, code: int
) -> None:
    from hailo_platform.pyhailort import _pyhailort
    from hailo_platform.pyhailort.pyhailort import ExceptionWrapper, HailoRTException

    with pytest.raises(HailoRTException) as e, ExceptionWrapper():
        raise _pyhailort.HailoRTStatusException(str(code))
    assert type(e.value) is HailoRTException  # no subclass for these codes
    assert status_of(e.value) == code
    bare = HailoRTException(str(e.value))  # e.g. re-raised without its cause
    assert bare.__cause__ is None and status_of(bare) == code
    named = HailoRTException(f"failed: {hailo.STATUS_NAMES[code]}")
    assert status_of(named) == code


def test_status_codes_from_the_cause_or_the_number_alone(fake_hailo: ModuleType) -> None:
    from hailo_platform.pyhailort import _pyhailort
    from hailo_platform.pyhailort.pyhailort import HailoRTException

    try:
        raise HailoRTException("failed") from _pyhailort.HailoRTStatusException("85")
    except HailoRTException as e:
        assert status_of(e) == 85  # only the cause knows
    assert status_of(HailoRTException("libhailort failed with error: 74")) == 74


def test_status_codes_of_subclasses(fake_hailo: ModuleType) -> None:
    from hailo_platform.pyhailort.pyhailort import ExceptionWrapper

    e = ExceptionWrapper.create_exception_from_status(4)  # as run_async callbacks get them
    assert type(e).__name__ == "HailoRTTimeout" and status_of(e) == 4
    assert status_of(ExceptionWrapper.create_exception_from_status(36)) == 36
    assert status_of(ValueError("nothing here")) is None


# -- opening the device --


def test_a_busy_device_is_retried_with_back_off(
    fake_hailo: ModuleType, hef_pkg: ModelPackage, tmp_path: Path
) -> None:
    fake_hailo.STATE.busy_opens = 2
    held = tmp_path / "hailo0"
    held.write_bytes(b"")
    slept: list[float] = []
    settings = HailoSettings(backoff_s=0.5, backoff_max_s=0.8, device_path=str(held))
    with held.open("rb"), structlog.testing.capture_logs() as logs:
        enc = HailoEncoder(hef_pkg, hef_pkg.path / "encoder.hef", settings, sleep=slept.append)
    enc.close()
    assert slept == [0.5, 0.8]
    why = [e["why"] for e in logs if e["event"] == "hailo_device_unavailable"]
    assert len(why) == 2
    assert "74 HAILO_OUT_OF_PHYSICAL_DEVICES" in why[0]
    assert f"(pid {os.getpid()})" in why[0]  # who holds the device, read from /proc


def test_a_device_held_for_good_is_unavailable(
    fake_hailo: ModuleType, hef_pkg: ModelPackage
) -> None:
    fake_hailo.STATE.held_elsewhere = True
    slept: list[float] = []
    with pytest.raises(HailoUnavailableError, match="no free Hailo device after 3 attempts") as e:
        HailoEncoder(
            hef_pkg,
            hef_pkg.path / "encoder.hef",
            HailoSettings(open_attempts=3, device_path="/nonexistent/hailo0"),
            sleep=slept.append,
        )
    assert "HAILO_OUT_OF_PHYSICAL_DEVICES" in str(e.value)
    assert e.value.exit_code == 69 and len(slept) == 2


def test_a_driver_library_mismatch_stops_naming_both_versions(
    fake_hailo: ModuleType, hef_pkg: ModelPackage, tmp_path: Path
) -> None:
    fake_hailo.STATE.driver_version = "4.20.0"
    version_file = tmp_path / "version"
    version_file.write_text("4.20.0\n")
    slept: list[float] = []
    with pytest.raises(HailoVersionError) as e:
        HailoEncoder(
            hef_pkg,
            hef_pkg.path / "encoder.hef",
            HailoSettings(driver_version_file=str(version_file)),
            sleep=slept.append,
        )
    msg = str(e.value)
    assert "library 4.23.0" in msg and "driver 4.20.0" in msg and "76" in msg
    assert e.value.exit_code == 78 and slept == []  # no point retrying


def test_the_multi_process_service_switch(fake_hailo: ModuleType, hef_pkg: ModelPackage) -> None:
    fake_hailo.STATE.held_elsewhere = True  # by hailort.service, which shares it
    shared = HailoSettings(multi_process_service=True)
    enc = HailoEncoder(hef_pkg, hef_pkg.path / "encoder.hef", shared)
    enc.close()
    fake_hailo.STATE.service_running = False
    with pytest.raises(HailoUnavailableError, match=r"77 HAILO_RPC_FAILED.*hailort.service"):
        HailoEncoder(
            hef_pkg,
            hef_pkg.path / "encoder.hef",
            HailoSettings(multi_process_service=True, open_attempts=1),
        )


def test_one_vdevice_per_process(npu: HailoEncoder) -> None:
    with pytest.raises(HailoUnavailableError, match="one VDevice per process"):
        HailoEncoder(npu.package, npu.hef, FAST)
    npu.close()
    again = HailoEncoder(npu.package, npu.hef, FAST)
    again.close()


def test_a_hef_for_another_architecture_is_refused(
    fake_hailo: ModuleType, hef_pkg: ModelPackage
) -> None:
    fake_hailo.STATE.architecture = "HAILO8L"
    with pytest.raises(ModelError, match="93 HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE"):
        HailoEncoder(hef_pkg, hef_pkg.path / "encoder.hef", FAST)


def test_without_the_bindings_the_backend_says_how_to_install(hef_pkg: ModelPackage) -> None:
    with pytest.raises(HailoUnavailableError, match="apt install hailo-all"):
        HailoEncoder(hef_pkg, hef_pkg.path / "encoder.hef")


# -- failures at run time --


def test_a_transient_driver_failure_rebuilds_the_vdevice(npu: HailoEncoder) -> None:
    import hailo_platform._fake as fake

    x = _x(npu.package, 8)
    want = npu(x)
    fake.STATE.fail_runs, fake.STATE.fail_status = 1, 36
    np.testing.assert_array_equal(npu(x), want)
    assert npu.rebuilds == 1
    assert fake.STATE.vdevices_created == 2 and fake.STATE.vdevices_alive == 1


def test_a_rebuild_that_cannot_load_the_hef_releases_the_device(npu: HailoEncoder) -> None:
    import hailo_platform._fake as fake

    fake.STATE.fail_runs, fake.STATE.fail_loads = 1, 1
    with pytest.raises(HailoRuntimeError, match=r"did not come back.*cannot load the HEF"):
        npu(_x(npu.package, 4))
    assert fake.STATE.vdevices_created == 2 and fake.STATE.vdevices_alive == 0


def test_a_hang_times_out_and_a_failed_rebuild_raises(npu: HailoEncoder) -> None:
    import hailo_platform._fake as fake

    fake.STATE.hang = True
    with pytest.raises(HailoRuntimeError, match="again after a rebuild"):
        npu(_x(npu.package, 4))
    assert npu.rebuilds == 1


def test_a_dead_device_raises_after_the_rebuild_fails(npu: HailoEncoder) -> None:
    import hailo_platform._fake as fake

    fake.STATE.dead = True
    with pytest.raises(HailoRuntimeError, match=r"did not come back.*HAILO_OUT_OF_PHYSICAL"):
        npu(_x(npu.package, 4))
    assert fake.STATE.vdevices_alive == 0


def test_errors_that_are_not_the_device_do_not_rebuild(npu: HailoEncoder) -> None:
    import hailo_platform._fake as fake

    fake.STATE.fail_runs, fake.STATE.fail_status = 1, 2  # HAILO_INVALID_ARGUMENT
    with pytest.raises(HailoRuntimeError, match="HAILO_INVALID_ARGUMENT"):
        npu(_x(npu.package, 4))
    assert npu.rebuilds == 0


def test_submit_overlaps_and_bridges_to_asyncio(npu: HailoEncoder) -> None:
    xs = [_x(npu.package, 6, seed=s) for s in range(5)]
    want = [npu(x) for x in xs]
    futures = [npu.submit(x) for x in xs]  # all in flight before any result is read
    for f, w in zip(futures, want, strict=True):
        np.testing.assert_array_equal(f.result(5), w)

    async def main() -> list[np.ndarray]:
        return list(await asyncio.gather(*(asyncio.wrap_future(npu.submit(x)) for x in xs)))

    for got, w in zip(asyncio.run(main()), want, strict=True):
        np.testing.assert_array_equal(got, w)


def test_describe_device(fake_hailo: ModuleType, tmp_path: Path) -> None:
    version_file = tmp_path / "version"
    version_file.write_text("4.23.0\n")
    info = describe_device(HailoSettings(driver_version_file=str(version_file)))
    assert info == {
        "hailort_version": "4.23.0",
        "driver_version": "4.23.0",
        "devices": [
            {
                "id": "0000:01:00.0",
                "architecture": "HAILO8",
                "firmware": "4.23.0 (release,app,extended context switch buffer)",
                "board": "Hailo-8",
            }
        ],
    }
    fake_hailo.STATE.identify_status = 74
    (dev,) = describe_device(HailoSettings(device_path="/nonexistent"))["devices"]  # type: ignore[index]
    assert dev == {
        "id": "0000:01:00.0",
        "error": "status 74 HAILO_OUT_OF_PHYSICAL_DEVICES; no process visible here holds "
        "/nonexistent",
    }
    fake_hailo.STATE.dead = True
    assert describe_device()["devices"] == []  # type: ignore[index]


def test_describe_device_without_hailort() -> None:
    assert describe_device() is None


def test_parse_hailo_table() -> None:
    from fsqd.config.hailo import parse_hailo
    from fsqd.errors import ConfigError
    from fsqd.tomlcheck import Table

    s = parse_hailo(Table({"multi_process_service": True, "timeout_ms": 500}, "[hailo]"))
    assert s.multi_process_service and s.timeout_ms == 500 and s.open_attempts == 5
    with pytest.raises(ConfigError, match="timeout_ms"):
        parse_hailo(Table({"timeout_ms": 0}, "[hailo]"))
    with pytest.raises(ConfigError, match="multi_process_servic"):
        parse_hailo(Table({"multi_process_servic": True}, "[hailo]"))


def test_good_out_quant_is_wide_enough() -> None:
    # The fixture's calibration covers the bounded range of L=8 ([-4, 3.0035]).
    lo = (0 - GOOD_OUT["qp_zp"]) * GOOD_OUT["qp_scale"]
    assert lo < -4.0 < 3.0035 < (255 - GOOD_OUT["qp_zp"]) * GOOD_OUT["qp_scale"]

"""The daemon wired to the other parts: stream stages, encoder choice, STATUS, reload, CLI."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import numpy as np
import pytest
import structlog
from hailo_support import fake_hailo, structlog_defaults, write_fake_hef  # noqa: F401
from test_daemon import SENSOR, Recorder, codes, make_config

import fsqd.daemon.reload as reload_mod
import fsqd.daemon.telemetry as telemetry_mod
import fsqd.daemon.wiring as wiring_mod
from fsqd.chunk import SampleChunk
from fsqd.config import load_config
from fsqd.daemon import Daemon, LoggingOverride
from fsqd.model.package import load_package
from fsqd.pipeline import LOW_LATENCY_HALF_TAPS
from fsqd.sinks.jsonl import JsonLinesSink
from fsqd.sinks.schemas import load as load_schema
from fsqd.testing import SimulatedAcquisition


class Lines(Recorder):
    """A notifier that keeps the STATUS= lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def status(self, line: str) -> None:
        super().status(line)
        self.lines.append(line)


class MilliG(SimulatedAcquisition):
    """A sensor whose accelerometer reads in milli-g (a driver scaled for the wrong unit)."""

    def read(self) -> list[SampleChunk]:
        out = []
        for c in super().read():
            x = c.x.copy()
            x[:, 0:3] *= 1000.0 / 9.80665
            out.append(SampleChunk(c.t, x, c.new_segment))
        return out


def meta_messages(meta: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in meta.getvalue().splitlines()]


def test_implausible_units_are_logged_once_with_the_fix_and_in_stats(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n[stats]\ninterval_s = 1\n")
    out, meta = io.StringIO(), io.StringIO()
    daemon = Daemon(
        config,
        acquisition=MilliG(chunk=2),
        sinks=[JsonLinesSink(out, meta=meta)],
        duration_s=3.5,
        handle_signals=False,
    )
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(daemon.run()) == 0
    found = [e for e in logs if e["event"] == "implausible sensor values"]
    assert len(found) == 1, found  # once, not per block or window
    assert found[0]["log_level"] == "warning"
    assert found[0]["group"] == "ax..az" and "--scale 'a*=0.00980665'" in found[0]["fix"]
    stats = [m for m in meta_messages(meta) if "counters" in m]
    props = load_schema("stats")["properties"]  # JSON lines carry no MQTT counters
    for m in stats:
        jsonschema.validate(m["plausibility"], props["plausibility"])
        jsonschema.validate(m["encoder"], props["encoder"])
    last = stats[-1]
    assert last["plausibility"]["warnings"] == 1
    assert last["plausibility"]["groups"]["ax..az"]["accel_median_g"] > 50  # ~1000 read as m/s^2
    assert last["counters"]["time_going_back"] == 0
    assert codes(out)  # a warning, not a stop


def test_status_line_at_ready_and_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_mod, "STATUS_INTERVAL_S", 0.5)
    config = make_config(tmp_path, "[window]\nhop = 10\n")  # stats every 60 s
    notes = Lines()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(io.StringIO())],
        notifier=notes,
        duration_s=3.2,
        handle_signals=False,
    )
    assert asyncio.run(daemon.run()) == 0
    assert notes.calls.index("status") == notes.calls.index("ready") + 1  # at READY
    assert len(notes.lines) >= 5  # long before the first 60 s stats period
    last = notes.lines[-1]
    assert "\n" not in last
    assert last.startswith("sensors ok 100.0 Hz, ")
    assert "windows/s" in last and "broker stdout" in last and "0 spooled" in last
    assert last.endswith("backend onnx")
    rate = float(last.split(", ")[1].split()[0])
    assert 8.0 <= rate <= 12.0  # hop 10 at 100 Hz
    assert "e2e p99 -" not in last and " ms" in last


def test_status_is_sent_at_ready_not_only_after_an_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_mod, "STATUS_INTERVAL_S", 600.0)
    notes = Lines()
    daemon = Daemon(
        make_config(tmp_path),
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(io.StringIO())],
        notifier=notes,
        duration_s=1.0,
        handle_signals=False,
    )
    assert asyncio.run(daemon.run()) == 0
    assert len(notes.lines) == 1 and "0.0 windows/s" in notes.lines[0]


def test_a_104_hz_chip_is_resampled_live_with_the_short_kernel(tmp_path: Path) -> None:
    out = io.StringIO()
    daemon = Daemon(
        make_config(tmp_path, "[window]\nhop = 10\n"),
        acquisition=SimulatedAcquisition(rate_hz=104.0, chunk=2),
        sinks=[JsonLinesSink(out)],
        duration_s=2.5,
        handle_signals=False,
    )
    resampler = daemon.stream.resampler
    assert resampler is not None and resampler.design.half_taps == LOW_LATENCY_HALF_TAPS
    assert asyncio.run(daemon.run()) == 0
    msgs = codes(out)
    assert len(msgs) >= 10
    # On the model's 100 Hz grid: a window spans 99 periods of 10 ms, hop 10 is 0.1 s.
    assert all(abs(m["t_end"] - m["t_start"] - 0.99) < 1e-6 for m in msgs)
    assert np.allclose(np.diff([m["t_end"] for m in msgs]), 0.1, atol=1e-6)


def test_status_names_the_broker_state(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    daemon = Daemon(
        config, acquisition=SimulatedAcquisition(), sinks=[FakeMqtt(1, 7)], handle_signals=False
    )
    assert "broker connected, 7 spooled" in daemon.status_line(10.0)
    daemon.sinks = [FakeMqtt(0, 12)]
    assert "broker disconnected, 12 spooled" in daemon.status_line(10.0)


class FakeMqtt(JsonLinesSink):
    """Counters as the MQTT sink reports them (only counters() is used here)."""

    def __init__(self, connected: int, depth: int) -> None:
        super().__init__(io.StringIO())
        self._c = {"connected": connected, "spool_depth": depth}

    def counters(self) -> dict[str, int | float]:
        return dict(self._c)


def test_reload_resends_info_and_keeps_the_command_line_log_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(reload_mod, "configure_logging", lambda f, lv: calls.append((f, lv)))
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text("[logging]\nformat = 'console'\nlevel = 'info'\n" + SENSOR)
    meta = io.StringIO()
    notes = Lines()
    daemon = Daemon(
        load_config(cfg),
        acquisition=SimulatedAcquisition(),
        sinks=[JsonLinesSink(io.StringIO(), meta=meta)],
        notifier=notes,
        handle_signals=False,
        log_override=LoggingOverride("json", "debug"),
    )
    assert daemon.config.logging.format == "json" and daemon.config.logging.level == "debug"
    with structlog.testing.capture_logs() as logs:
        daemon.reload()  # the file is unchanged
        cfg.write_text("[logging]\nformat = 'journal'\nlevel = 'warning'\n" + SENSOR)
        daemon.reload()  # the file changed only what the command line overrides
        daemon.reload()  # and a second reload does not drop the override
    reloaded = [e for e in logs if e["event"] == "config reloaded"]
    assert len(reloaded) == 3
    assert all(e["needs_restart"] is None for e in reloaded), reloaded
    assert calls == []  # the level never changed: debug from the command line throughout
    assert daemon.config.logging.format == "json" and daemon.config.logging.level == "debug"
    infos = [m for m in meta_messages(meta) if "versions" in m]
    assert len(infos) == 3  # info re-sent after each reload, with the file's new hash
    assert infos[-1]["config_hash"] == load_config(cfg).hash != infos[0]["config_hash"]
    assert notes.calls.count("ready") == 3


def test_reload_without_override_applies_the_level_and_flags_the_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(reload_mod, "configure_logging", lambda f, lv: calls.append((f, lv)))
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text("[logging]\nformat = 'console'\n" + SENSOR)
    daemon = Daemon(
        load_config(cfg),
        acquisition=SimulatedAcquisition(),
        sinks=[JsonLinesSink(io.StringIO())],
        handle_signals=False,
        log_override=LoggingOverride(level="warning"),
    )
    cfg.write_text("[logging]\nformat = 'json'\nlevel = 'debug'\n" + SENSOR)
    with structlog.testing.capture_logs() as logs:
        daemon.reload()
        daemon.reload()
    reloaded = [e for e in logs if e["event"] == "config reloaded"]
    assert [e["needs_restart"] for e in reloaded] == [["logging.format"]] * 2
    assert calls == []  # level pinned to warning by the command line


def test_run_cli_log_flags_override_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from fsqd.cli import main

    monkeypatch.setattr(wiring_mod, "open_source", lambda c, clk: SimulatedAcquisition(chunk=2))
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text("[logging]\nformat = 'console'\nlevel = 'warning'\n" + SENSOR)
    code = main(
        [
            *("run", "--config", str(cfg), "--duration", "1.5s", "--stdout"),
            *("--log-format", "json", "--log-level", "info"),
        ]
    )
    assert code == 0
    err = capfd.readouterr().err
    events = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    # JSON lines at info (the config said console at warning: no "started" line at all).
    assert any(e["event"] == "started" for e in events)


def test_fsqd_run_uses_the_npu_and_falls_back_to_the_cpu(
    fake_hailo: ModuleType,  # noqa: F811
    tmp_path: Path,
) -> None:
    pkg = write_fake_hef(load_package(None), tmp_path / "model")
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f'[model]\npath = "{pkg.path}"\n'
        "[hailo]\nopen_attempts = 1\ntimeout_ms = 300\nbackoff_s = 0\n"
        "multi_process_service = true\n"
        "[window]\nhop = 10\n[stats]\ninterval_s = 1\n" + SENSOR
    )
    config = load_config(cfg)
    assert config.hailo.open_attempts == 1 and config.hailo.timeout_ms == 300
    out, meta = io.StringIO(), io.StringIO()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(out, meta=meta)],
        duration_s=4.5,
        handle_signals=False,
    )
    assert daemon.backend == "hailo"
    # The [hailo] table reached the device: the VDevice was made for hailort.service.
    assert fake_hailo.STATE.vdevice_params[0].multi_process_service is True
    # The device dies 2.2 s in: the running daemon falls back to the CPU and goes on.
    timer = threading.Timer(2.2, lambda: setattr(fake_hailo.STATE, "dead", True))
    timer.start()
    try:
        with structlog.testing.capture_logs() as logs:
            assert asyncio.run(daemon.run()) == 0
    finally:
        timer.cancel()
    assert fake_hailo.STATE.frames_run > 0  # codes came from the NPU first
    assert fake_hailo.STATE.vdevices_alive == 0  # encoder.close() released the VDevice
    msgs = meta_messages(meta)
    info = next(m for m in msgs if "versions" in m)
    jsonschema.validate(info, load_schema("info"))
    assert info["backend"] == "hailo" and info["encoder"]["fallbacks"] == 0
    stats = [m for m in msgs if "counters" in m]
    assert stats[0]["backend"] == "hailo"
    last = stats[-1]
    jsonschema.validate(last["encoder"], load_schema("stats")["properties"]["encoder"])
    assert last["backend"] == "onnx"
    assert last["encoder"]["backend"] == "onnx" and last["encoder"]["fallbacks"] == 1
    assert last["encoder"]["last_error"]
    assert last["counters"]["encoder_fallbacks"] == 1
    warned = [e for e in logs if e["event"] == "encoder_fallback"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    seqs = [m["seq"] for m in codes(out)]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 25  # no window lost over it


def test_encoder_is_closed_when_the_daemon_stops(tmp_path: Path) -> None:
    closed: list[bool] = []

    class Closing:
        name = "probe"

        def __init__(self) -> None:
            from fsqd.backends.onnx import OnnxEncoder

            self.inner = OnnxEncoder(load_package(None))

        def __call__(self, x: np.ndarray) -> np.ndarray:
            return self.inner(x)

        def close(self) -> None:
            closed.append(True)
            self.inner.close()

    daemon = Daemon(
        make_config(tmp_path),
        acquisition=SimulatedAcquisition(),
        sinks=[JsonLinesSink(io.StringIO())],
        encoder=Closing(),
        duration_s=0.5,
        handle_signals=False,
    )
    assert asyncio.run(daemon.run()) == 0
    assert closed == [True]


class Stamped(JsonLinesSink):
    """JSON lines, with the monotonic time each code was handed over."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.times: list[float] = []

    def submit_code(self, payload: bytes, seq: int) -> None:
        self.times.append(time.monotonic())
        super().submit_code(payload, seq)


def test_a_stuck_config_read_on_sighup_never_holds_up_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n")
    release = threading.Event()

    def stuck(path: Path) -> Any:  # a config on a hung network mount
        release.wait(3.0)
        return load_config(path)

    monkeypatch.setattr(reload_mod, "load_config", stuck)
    monkeypatch.setattr(reload_mod, "RELOAD_TIMEOUT_S", 0.5)
    sink, notes = Stamped(), Recorder()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[sink],
        notifier=notes,
        duration_s=3.0,
        handle_signals=True,
    )

    async def main() -> int:
        # The first window completes at 1 s; from then on a code every 0.1 s.
        loop = asyncio.get_running_loop()
        loop.call_later(1.3, os.kill, os.getpid(), signal.SIGHUP)
        loop.call_later(1.5, os.kill, os.getpid(), signal.SIGHUP)  # while the first waits
        return await daemon.run()

    try:
        with structlog.testing.capture_logs() as logs:
            assert asyncio.run(main()) == 0
    finally:
        release.set()
    # Codes every 0.1 s throughout (hop 10 at 100 Hz), the stuck read or not.
    assert len(sink.times) >= 15
    assert max(b - a for a, b in itertools.pairwise(sink.times)) < 0.5
    failed = [e for e in logs if e["event"] == "reload failed: keeping the running config"]
    assert len(failed) == 1 and "not read within 0.5 s" in failed[0]["error"], logs
    assert any(e["event"] == "reload already in progress: SIGHUP ignored" for e in logs)
    after = notes.calls[notes.calls.index("reloading") :]
    assert after.count("reloading") == 1 and "ready" in after  # systemd is told it is over

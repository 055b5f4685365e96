"""`fsqd run` and `fsqd check-config` as processes: signals, sd_notify, exit codes."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemonkit import ROOT, SIM_DAEMON, env, log_events, start, write_config
from mosquitto import Collector, Mosquitto
from sdnotify import NotifyListener, unique_name
from waiting import PipeLines, finish


@pytest.fixture
def listener(tmp_path: Path) -> Any:
    lst = NotifyListener(unique_name("fsqd-test"), abstract=True)
    yield lst
    lst.close()


def test_sigterm_drains_every_window_and_exits_0(tmp_path: Path, listener: NotifyListener) -> None:
    cfg = write_config(tmp_path / "fsqd.toml", "[window]\nhop = 5\n[logging]\nformat = 'json'")
    proc = start(cfg, listener)
    try:
        listener.wait_for("READY", 30, "1")
        listener.wait_for("WATCHDOG", 5, "1")
        stdout, stderr = PipeLines(proc.stdout), PipeLines(proc.stderr)
        stdout.wait_for(lambda lines: len(lines) >= 10, what="10 codes written")
        proc.send_signal(signal.SIGTERM)
        finish(proc, stdout, stderr)
        out, err = stdout.text(), stderr.text()
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    listener.wait_for("STOPPING", 1, "1")
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) >= 10
    assert [m["seq"] for m in lines] == list(range(len(lines)))
    summary = [e for e in log_events(err) if e.get("event") == "summary"][-1]
    # Everything windowed before the stop was coded and written: nothing left behind.
    assert summary["windows"] == summary["published"] == len(lines)
    assert summary["dropped"] == 0


def test_sighup_reloads_and_names_what_needs_a_restart(
    tmp_path: Path, listener: NotifyListener
) -> None:
    cfg = write_config(tmp_path / "fsqd.toml", "[window]\nhop = 10\n[logging]\nformat = 'json'")
    proc = start(cfg, listener)
    try:
        listener.wait_for("READY", 30, "1")
        write_config(cfg, "[window]\nhop = 20\n[stats]\ninterval_s = 2\n[logging]\nformat = 'json'")
        proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING", 5, "1")
        listener.wait_for("READY", 5, "1")
        # A broken file on the next reload is refused; the daemon keeps running.
        cfg.write_text("[window]\nhop = 'x'\n")
        proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING", 5, "1")
        listener.wait_for("READY", 5, "1")
        stdout, stderr = PipeLines(proc.stdout), PipeLines(proc.stderr)
        # The new stats interval (2 s) applied: a stats line comes (the old one was 60 s).
        stderr.wait_for(
            lambda lines: any(e.get("event") == "stats" for e in log_events("".join(lines))),
            what="a stats line",
        )
        proc.send_signal(signal.SIGTERM)
        finish(proc, stdout, stderr)
        out, err = stdout.text(), stderr.text()
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = log_events(err)
    reloaded = [e for e in events if e.get("event") == "config reloaded"]
    assert len(reloaded) == 1
    assert reloaded[0]["needs_restart"] == ["window"]
    failed = [e for e in events if e.get("event") == "reload failed: keeping the running config"]
    assert len(failed) == 1 and "hop" in failed[0]["error"]
    assert any(e.get("event") == "stats" for e in events)
    # The hop did not change under the running stream: windows stay 0.1 s apart (hop 20
    # would make it 0.2 s). The times are wall-clock times, and the daemon follows the
    # wall clock's slew once it reaches 1 ms, so a step of a few ms is allowed.
    t_end = [json.loads(x)["t_end"] for x in out.splitlines()]
    assert max(abs(b - a - 0.1) for a, b in itertools.pairwise(t_end)) < 0.02


def test_sighup_with_a_fifo_for_a_config_keeps_running(
    tmp_path: Path, listener: NotifyListener
) -> None:
    cfg = write_config(tmp_path / "fsqd.toml", "[logging]\nformat = 'json'")
    proc = start(cfg, listener)
    try:
        listener.wait_for("READY", 30, "1")
        cfg.unlink()
        os.mkfifo(cfg)  # nobody ever writes: a plain read of it would wait for ever
        proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING", 5, "1")
        listener.wait_for("READY", 5, "1")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    failed = [e for e in log_events(err) if e.get("event", "").startswith("reload failed")]
    assert len(failed) == 1 and "is a FIFO, not a regular file" in failed[0]["error"]


def test_check_config_summarises(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "fsqd.toml", "[window]\nhop = 10\n")
    r = subprocess.run(
        [sys.executable, "-m", "fsqd", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert "ok (config hash" in r.stdout and "hop 10" in r.stdout
    write_config(cfg, "[window]\nhopp = 10\n")
    r = subprocess.run(
        [sys.executable, "-m", "fsqd", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
    )
    assert r.returncode == 78 and r.stdout == ""
    assert r.stderr == "fsqd: error: fsqd.toml [window] hopp: unknown key (did you mean 'hop'?)\n"


def test_run_with_a_bad_config_is_one_line_78(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "fsqd.toml", "[model]\npath = 'nowhere'\n")
    r = subprocess.run(
        [sys.executable, "-m", "fsqd", "run", "--config", str(cfg), "--duration", "5s"],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
    )
    assert r.returncode == 78
    assert r.stderr.count("\n") == 1 and "[model] path" in r.stderr
    assert r.stdout == ""


def test_fsqd_run_with_an_emulated_sensor_prints_codes(tmp_path: Path) -> None:
    """The real acquisition (register-level emulated LSM6DSOX at 104 Hz, resampled to the
    card's 100 Hz) through `python -m fsqd run`, no broker configured."""
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        "[window]\nhop = 10\n[logging]\nformat = 'json'\n"
        '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
    )
    before = time.time()
    r = subprocess.run(
        [sys.executable, "-m", "fsqd", "run", "--config", str(cfg), "--duration", "3s"],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    codes = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(codes) >= 10
    assert [m["seq"] for m in codes] == list(range(len(codes)))
    assert all(before < m["t_start"] < m["t_end"] < time.time() for m in codes)
    summary = [e for e in log_events(r.stderr) if e.get("event") == "summary"][-1]
    assert summary["sensors"] == "ok" and summary["dropped"] == 0
    assert summary["published"] == len(codes)


def test_run_with_a_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "fsqd.toml", "")
    r = subprocess.run(
        [sys.executable, "-m", "fsqd", "run", "--config", str(cfg), "--duration", "5 parsecs"],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
    )
    assert r.returncode == 64
    assert r.stderr.count("\n") == 1 and "duration" in r.stderr


def test_sigterm_with_a_broker_delivers_every_code_then_offline(
    tmp_path: Path, broker: Mosquitto
) -> None:
    cfg = write_config(
        tmp_path / "fsqd.toml",
        f"[window]\nhop = 10\n[logging]\nformat = 'json'\n[service]\nnode_id = 'n9'\n"
        f"state_dir = 'state'\n[mqtt]\nhost = '{broker.host}'\nport = {broker.port}\n",
    )

    async def scenario() -> tuple[int, str, list[tuple[str, bytes, bool]]]:
        async with Collector(broker, "fsqd/n9/#") as c:
            proc = await asyncio.create_subprocess_exec(
                *SIM_DAEMON,
                "run",
                "--config",
                str(cfg),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env(),
            )
            deadline = time.monotonic() + 30
            while sum(t.endswith("/codes") for t, _, _ in c.messages) < 15:
                assert time.monotonic() < deadline, "no codes arrived"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            # The last word on a clean stop is the retained "offline".
            await c.wait_for(lambda c: c.payloads("fsqd/n9/status")[-1:] == [b"offline"], 60)
            return proc.returncode or 0, err.decode(), list(c.messages)

    code, err, msgs = asyncio.run(scenario())
    assert code == 0, err
    codes = [json.loads(p)["seq"] for t, p, _ in msgs if t == "fsqd/n9/codes"]
    summary = [e for e in log_events(err) if e.get("event") == "summary"][-1]
    # Every window cut before the stop reached the broker, in order, once.
    assert codes == list(range(summary["windows"]))
    status = [p for t, p, _ in msgs if t == "fsqd/n9/status"]
    assert status[0] == b"online" and status[-1] == b"offline"


def test_run_on_a_corrupt_spool_starts_and_says_so_once(tmp_path: Path) -> None:
    """A spool the SD card mangled is set aside at start: no exit 74, no crash loop."""
    from mosquitto import free_port

    state = tmp_path / "state"
    state.mkdir()
    (state / "spool.sqlite").write_bytes(os.urandom(64 * 1024))
    cfg = write_config(
        tmp_path / "fsqd.toml",
        "[window]\nhop = 10\n[logging]\nformat = 'json'\n[service]\nstate_dir = 'state'\n"
        f"[mqtt]\nhost = '127.0.0.1'\nport = {free_port()}\n",
    )
    r = subprocess.run(
        [*SIM_DAEMON, "run", "--config", str(cfg), "--duration", "2s"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    errors = [e for e in log_events(r.stderr) if e.get("level") == "error"]
    assert [e["event"] for e in errors] == ["spool corrupt: set aside, readable codes kept"]
    assert len(list(state.glob("spool.sqlite.corrupt-*"))) == 1
    summary = [e for e in log_events(r.stderr) if e.get("event") == "summary"][-1]
    assert summary["spooled"] == summary["coded"] > 0  # the fresh spool took them

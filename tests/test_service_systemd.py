"""`fsqd run` as systemd runs it: a subprocess with an emulated IMU on the real acquisition,
a real AF_UNIX datagram socket as NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID as systemd sets
them, and signals as systemctl sends them."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from journald import Entry, JournaldStandIn
from sdnotify import Notification, NotifyListener
from waiting import PipeLines, finish

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "emulated_daemon.py"
UNIT = ROOT / "systemd" / "fsqd.service"
WATCHDOG_USEC = 1_000_000  # pings every 0.5 s
# As a normal user, a private mount namespace needs a user namespace too.
UNSHARE = [
    "unshare",
    *(["--map-root-user"] if os.geteuid() != 0 else []),
    "-m",
    "--propagation",
    "private",
]


def unit_seconds(key: str) -> float:
    m = re.search(rf"^{key}=(\d+)s$", UNIT.read_text(), re.M)
    assert m, key
    return float(m.group(1))


def write_config(tmp_path: Path, *, log_format: str = "json", level: str = "info") -> Path:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f"""
[window]
hop = 10

[service]
state_dir = "{tmp_path / "state"}"

[stats]
interval_s = 1

[logging]
format = "{log_format}"
level = "{level}"

[[sensor]]
name = "collar"
driver = "lsm6dsox"
bus = "emulated"
rate_hz = 104
"""
    )
    return cfg


def child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def spawn(
    cfg: Path, listener: NotifyListener, *, wrap: list[str] | None = None
) -> subprocess.Popen[str]:
    """Start the daemon the way systemd does: WATCHDOG_PID is the daemon's own PID (the
    shell sets it to $$ and then execs, keeping the PID)."""
    script = 'WATCHDOG_PID=$$ exec "$@"'
    cmd = ["sh", "-c", script, "sh", sys.executable, str(HARNESS), "run", "--config", str(cfg)]
    return subprocess.Popen(
        [*(wrap or []), *cmd, "--stdout"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(NOTIFY_SOCKET=listener.env, WATCHDOG_USEC=str(WATCHDOG_USEC)),
        cwd=ROOT,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[float, str, str]:
    """SIGTERM as `systemctl stop` sends it; seconds until exit, stdout, stderr."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=unit_seconds("TimeoutStopSec") + 10)
    return time.monotonic() - t0, out, err


def watchdogs(notes: list[Notification]) -> list[float]:
    return [n.at for n in notes if n.fields.get("WATCHDOG") == "1"]


def collect_pings(
    listener: NotifyListener, count: int, timeout: float = 60.0
) -> list[Notification]:
    """Receive until ``count`` WATCHDOG=1 came (the daemon's own pace, however loaded)."""
    end = time.monotonic() + timeout
    got: list[Notification] = []
    while len(watchdogs(got)) < count:
        left = end - time.monotonic()
        assert left > 0, f"{len(watchdogs(got))} of {count} watchdog pings in {timeout:.0f} s"
        if (note := listener.receive(left)) is not None:
            got.append(note)
    return got


def stop_reading(
    proc: subprocess.Popen[str], stdout: PipeLines, stderr: PipeLines
) -> tuple[float, str, str]:
    """``stop`` for a child whose pipes are already read by ``PipeLines``."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    finish(proc, stdout, stderr, timeout_s=unit_seconds("TimeoutStopSec") + 10)
    return time.monotonic() - t0, stdout.text(), stderr.text()


def json_events(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def collect(listener: NotifyListener, seconds: float) -> list[Notification]:
    end = time.monotonic() + seconds
    got = []
    while (left := end - time.monotonic()) > 0:
        note = listener.receive(left)
        if note is not None:
            got.append(note)
    return got


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    sock = NotifyListener(tmp_path / "notify")
    yield sock
    sock.close()


@pytest.fixture
def daemon(tmp_path: Path, listener: NotifyListener) -> Iterator[subprocess.Popen[str]]:
    proc = spawn(write_config(tmp_path), listener)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_ready_status_watchdog_and_a_clean_stop(
    daemon: subprocess.Popen[str], listener: NotifyListener
) -> None:
    ready = listener.wait_for("READY", 60, "1")
    stdout, stderr = PipeLines(daemon.stdout), PipeLines(daemon.stderr)
    notes = [*listener.received, *collect_pings(listener, 6)]
    # Everything comes from the main process, as NotifyAccess=main requires.
    assert {n.pid for n in notes} == {daemon.pid}
    pings = [t for t in watchdogs(notes) if t >= ready.at]
    assert len(pings) >= 4
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 0.3 < sum(gaps) / len(gaps) < 0.8, gaps  # WATCHDOG_USEC / 2 = 0.5 s
    status = [n.fields["STATUS"] for n in notes if "STATUS" in n.fields]
    assert status and "windows" in status[-1] and "sensors ok" in status[-1]

    stdout.wait_for(lambda lines: len(lines) >= 10, what="10 codes written")
    seconds, out, err = stop_reading(daemon, stdout, stderr)
    assert daemon.returncode == 0, err
    assert seconds < unit_seconds("TimeoutStopSec")
    rest = listener.drain()
    assert any(n.fields.get("STOPPING") == "1" for n in rest)
    codes = [json.loads(line) for line in out.splitlines()]
    assert len(codes) >= 10
    assert [c["seq"] for c in codes] == list(range(len(codes)))


def test_watchdog_stops_while_the_bus_hangs_and_resumes_when_it_recovers(
    daemon: subprocess.Popen[str], listener: NotifyListener
) -> None:
    listener.wait_for("READY", 60, "1")
    collect_pings(listener, 3)

    daemon.send_signal(signal.SIGUSR1)  # SDA held low: every transfer times out
    hung_at = time.monotonic()
    during = watchdogs(collect(listener, 9.0))
    # Samples read just before the hang may still be counted a little later (the event
    # loop can itself wait on the acquisition's lock meanwhile); after that, silence.
    late = [round(t - hung_at, 2) for t in during if t - hung_at > 4.0]
    assert late == [], "WATCHDOG=1 kept coming while no sample arrived"
    # systemd would now restart fsqd after WatchdogSec; released instead, it recovers.
    daemon.send_signal(signal.SIGUSR2)
    listener.wait_for("WATCHDOG", 15, "1")

    _, _, err = stop(daemon)
    assert daemon.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e.get("sensor") == "collar" and e.get("level") == "warning" for e in events)


def test_sighup_reloads_with_reloading_then_ready(
    tmp_path: Path, daemon: subprocess.Popen[str], listener: NotifyListener
) -> None:
    listener.wait_for("READY", 60, "1")
    stdout, stderr = PipeLines(daemon.stdout), PipeLines(daemon.stderr)
    stderr.wait_for(  # a stats line at INFO first
        lambda lines: any(e.get("event") == "stats" for e in json_events(lines)), what="stats"
    )
    write_config(tmp_path, level="warning")
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.send_signal(signal.SIGHUP)  # ExecReload=/bin/kill -HUP $MAINPID
    reloading = listener.wait_for("RELOADING", 60, "1")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(reloading.fields["MONOTONIC_USEC"]) <= after
    ready = listener.wait_for("READY", 60, "1")
    reloaded_at = time.time()
    assert ready.at >= reloading.at
    # Still making progress after the reload; 4 pings (0.5 s each) span two stats periods.
    collect_pings(listener, 4)
    _, _, err = stop_reading(daemon, stdout, stderr)
    assert daemon.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    info_at = [
        datetime.fromisoformat(e["timestamp"]).timestamp() for e in events if e["level"] == "info"
    ]
    # INFO lines before the reload; none once the new level (warning) applied.
    assert info_at and min(info_at) < reloaded_at
    assert max(info_at) < reloaded_at


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run([*UNSHARE, "true"], capture_output=True).returncode == 0


def test_under_journald_the_daemon_logs_structured_entries(
    tmp_path: Path, listener: NotifyListener
) -> None:
    """StandardError=journal: JOURNAL_STREAM names stderr, so `auto` picks the journal; a
    stand-in journald socket is bind-mounted over /run/systemd in a private namespace."""
    if not _can_unshare():
        pytest.skip("cannot make a private mount namespace here (needs root or userns)")
    run = tmp_path / "run-systemd"
    (run / "journal").mkdir(parents=True)
    journald = JournaldStandIn(run / "journal" / "socket")
    cfg = write_config(tmp_path, log_format="auto")
    # systemd sets JOURNAL_STREAM to the device:inode of the stream it connects to stderr.
    wrap = [
        *UNSHARE,
        "sh",
        "-c",
        'mount --bind "$0" /run/systemd && '
        'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"',
        str(run),
    ]
    proc = spawn(cfg, listener, wrap=wrap)
    try:
        listener.wait_for("READY", 60, "1")
        entries: list[Entry] = []
        deadline = time.monotonic() + 60
        while not any(e.get("WINDOWS") not in (None, "0") for e in entries):
            assert time.monotonic() < deadline, "no stats entry with windows in the journal"
            if (entry := journald.receive(1.0)) is not None:
                entries.append(entry)
        _, _, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        entries += journald.receive_all()
        journald.close()
    assert proc.returncode == 0, err
    assert not [line for line in err.splitlines() if line.startswith("{")]  # not JSON on stderr
    assert entries and all(e["SYSLOG_IDENTIFIER"] == "fsqd" for e in entries)
    configured = [e for e in entries if e.get("SENSOR") == "collar" and e["PRIORITY"] == "6"]
    assert configured, [e["MESSAGE"] for e in entries]
    stats = [e for e in entries if e.get("LOGGER") == "fsqd.daemon" and e.get("WINDOWS")]
    assert stats and int(stats[-1]["WINDOWS"]) > 0
    assert all((e.get("CODE_FILE") or "").endswith("telemetry.py") for e in stats)


def test_sigterm_while_the_bus_hangs_still_exits_0_in_time(
    daemon: subprocess.Popen[str], listener: NotifyListener
) -> None:
    listener.wait_for("READY", 60, "1")
    listener.wait_for("WATCHDOG", 5, "1")
    stdout, stderr = PipeLines(daemon.stdout), PipeLines(daemon.stderr)
    daemon.send_signal(signal.SIGUSR1)
    # The reader is now inside timed-out transfers and retries: it has warned of them.
    stderr.wait_for(
        lambda lines: any(
            e.get("sensor") == "collar" and e.get("level") == "warning" for e in json_events(lines)
        ),
        what="a bus warning",
    )
    seconds, out, err = stop_reading(daemon, stdout, stderr)
    assert daemon.returncode == 0, err
    assert seconds < unit_seconds("TimeoutStopSec")
    assert any(n.fields.get("STOPPING") == "1" for n in listener.drain())
    codes = [json.loads(line) for line in out.splitlines()]
    assert [c["seq"] for c in codes] == list(range(len(codes)))

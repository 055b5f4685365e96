"""One `fsqd run` per state directory: the flock, its pid, exit 75, and who does not take it."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from daemonkit import ROOT, SENSOR, SIM_DAEMON, env
from mosquitto import free_port
from sdnotify import NotifyListener, unique_name

from fsqd.daemon.instance import LOCK_FILE, StateDirLock
from fsqd.errors import EX_TEMPFAIL, BusyError


def holder(state: Path) -> subprocess.Popen[str]:
    """A process that takes the lock, says so, and holds it until its stdin closes."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from fsqd.daemon.instance import StateDirLock
        with StateDirLock(Path({str(state)!r})):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


def spool_runs(state: Path) -> list[tuple[int, str]]:
    """The runs the spool in ``state`` has registered (read-only, beside a running daemon)."""
    uri = (state / "spool.sqlite").as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return [(int(r), str(i)) for r, i in db.execute("SELECT run, run_id FROM runs")]


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = holder(state)
    try:
        with pytest.raises(BusyError) as e:
            StateDirLock(state).acquire()
        assert e.value.exit_code == EX_TEMPFAIL == 75
        assert f"pid {first.pid}" in str(e.value) and "\n" not in str(e.value)
    finally:
        assert first.stdin is not None
        first.stdin.close()
        first.wait(10)
        assert first.stdout is not None
        first.stdout.close()
    # Released with the first process: the next one takes it.
    with StateDirLock(state) as lock:
        assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert lock._fd is None and (state / LOCK_FILE).read_text() == ""


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = holder(state)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    for f in (first.stdin, first.stdout):
        assert f is not None
        f.close()
    assert (state / LOCK_FILE).read_text() == f"{first.pid}\n"  # the dead pid is still there
    with StateDirLock(state):  # but the kernel let the lock go with the process
        pass


def test_fsqd_run_twice_on_one_state_directory(tmp_path: Path) -> None:
    """The second `fsqd run` refuses in one line naming the first; `fsqd record` (which
    only reads sensors) and `fsqd run --stdout` (no spool) run beside it."""
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        "[window]\nhop = 10\n[logging]\nformat = 'json'\n[service]\nnode_id = 'twice'\n"
        f"state_dir = 'state'\n[mqtt]\nhost = '127.0.0.1'\nport = {free_port()}\n" + SENSOR
    )
    listener = NotifyListener(unique_name("fsqd-lock"), abstract=True)
    first = subprocess.Popen(
        [*SIM_DAEMON, "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env(NOTIFY_SOCKET=listener.env),
    )
    try:
        listener.wait_for("READY", 30, "1")
        runs_before = spool_runs(tmp_path / "state")
        second = subprocess.run(
            [*SIM_DAEMON, "run", "--config", str(cfg), "--duration", "5s"],
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
        )
        assert second.returncode == 75, second.stderr
        assert second.stderr.count("\n") == 1
        assert f"pid {first.pid}" in second.stderr and "state" in second.stderr
        # Refused before it opened anything: the spool never saw the second run.
        assert spool_runs(tmp_path / "state") == runs_before
        out = tmp_path / "r.fsqr"
        record_cmd = [sys.executable, "-m", "fsqd", "record", "--config", str(cfg)]
        record_cmd += ["--out", str(out), "--duration", "1s"]
        record = subprocess.run(
            record_cmd,
            capture_output=True,
            text=True,
            env=env(),
            cwd=ROOT,
            timeout=60,
        )
        assert record.returncode == 0, record.stderr
        # Nor does a run that prints its codes (no spool, no broker): debugging beside it.
        printing = subprocess.run(
            [*SIM_DAEMON, "run", "--config", str(cfg), "--stdout", "--duration", "1.5s"],
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
        )
        assert printing.returncode == 0 and '"seq"' in printing.stdout, printing.stderr
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
    finally:
        first.kill()
        listener.close()
    # The lock went with the first daemon: a new one starts.
    again = subprocess.run(
        [*SIM_DAEMON, "run", "--config", str(cfg), "--duration", "1s"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert again.returncode == 0, again.stderr

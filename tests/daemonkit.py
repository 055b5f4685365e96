"""`fsqd run` as a child process on an emulated sensor (tests/sim_daemon.py), for CLI tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sdnotify import NotifyListener

ROOT = Path(__file__).resolve().parents[1]
SIM_DAEMON = [sys.executable, str(ROOT / "tests" / "sim_daemon.py")]
SENSOR = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'


def env(**extra: str) -> dict[str, str]:
    """This environment without a service manager's variables, fsqd importable, plus ``extra``."""
    e = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    e["PYTHONPATH"] = str(ROOT)
    e.update(extra)
    return e


def write_config(path: Path, body: str) -> Path:
    path.write_text(body + "\n" + SENSOR)
    return path


def log_events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a child's stderr, parsed."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def start(cfg: Path, listener: NotifyListener, *args: str) -> subprocess.Popen[str]:
    """`fsqd run --config cfg` under a notify socket and a 0.4 s watchdog."""
    return subprocess.Popen(
        [*SIM_DAEMON, "run", "--config", str(cfg), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(NOTIFY_SOCKET=listener.env, WATCHDOG_USEC="400000"),
    )

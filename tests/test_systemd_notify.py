"""SystemdNotifier against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdnotify import NotifyListener, unique_name
from structlog.testing import capture_logs

from fsqd.daemon.systemd import SystemdNotifier, notify_address, watchdog_interval

DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
HAVE_PYTHON_SYSTEMD = (DIST_PACKAGES / "systemd" / "daemon.py").exists()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    sock = NotifyListener(tmp_path / "notify")
    yield sock
    sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[NotifyListener]:
    sock = NotifyListener(unique_name("fsqd-notify"), abstract=True)
    yield sock
    sock.close()


def _notifier(listener: NotifyListener, **env: str) -> SystemdNotifier:
    return SystemdNotifier.from_environ({"NOTIFY_SOCKET": listener.env, **env})


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = SystemdNotifier.from_environ({"WATCHDOG_USEC": "2000000"})
    assert not n.enabled
    assert n.watchdog_interval_s is None  # no socket to ping, so no watchdog either
    n.ready()
    n.status("x")
    n.watchdog()
    n.stopping()
    n.reloading()
    assert (n.sent, n.failed) == (0, 0)


def test_each_call_sends_its_datagram_with_our_credentials(listener: NotifyListener) -> None:
    n = _notifier(listener)
    assert n.enabled and n.via == "socket"
    n.ready()
    n.status("rate 104.0 Hz, 1.0 windows/s, p99 3.1 ms, broker up, 0 spooled")
    n.watchdog()
    n.stopping()
    got = [listener.receive(1.0) for _ in range(4)]
    assert [g.fields if g else None for g in got] == [
        {"READY": "1"},
        {"STATUS": "rate 104.0 Hz, 1.0 windows/s, p99 3.1 ms, broker up, 0 spooled"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1"},
    ]
    # systemd attributes datagrams by the sender's PID (NotifyAccess=main).
    assert all(g is not None and g.pid == os.getpid() for g in got)
    assert n.sent == 4


def test_reloading_carries_monotonic_usec(listener: NotifyListener) -> None:
    n = _notifier(listener)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    got = listener.receive(1.0)
    assert got is not None and got.fields["RELOADING"] == "1"
    assert before <= int(got.fields["MONOTONIC_USEC"]) <= after


def test_abstract_namespace_socket(abstract_listener: NotifyListener) -> None:
    assert abstract_listener.env.startswith("@")
    n = _notifier(abstract_listener)
    n.ready()
    got = abstract_listener.receive(1.0)
    assert got is not None and got.fields == {"READY": "1"}


def test_notify_address_forms() -> None:
    assert notify_address("@sd-notify") == b"\0sd-notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    for bad in ("", "@", "relative/path", "vsock:2:1234"):
        with pytest.raises(ValueError):
            notify_address(bad)


def test_unusable_notify_socket_value_disables_with_a_warning() -> None:
    with capture_logs() as logs:
        n = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "relative/notify"})
    assert not n.enabled
    assert logs[0]["log_level"] == "warning" and "relative/notify" in logs[0]["reason"]


def test_status_is_one_line(listener: NotifyListener) -> None:
    _notifier(listener).status("first\nWATCHDOG=1\nthird")
    got = listener.receive(1.0)
    # A newline would have smuggled a WATCHDOG=1 past the daemon's progress check.
    assert got is not None and got.fields == {"STATUS": "first WATCHDOG=1 third"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4242"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4243"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "10s"}, None),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_watchdog_pid_defaults_to_this_process(listener: NotifyListener) -> None:
    n = _notifier(listener, WATCHDOG_USEC="8000000", WATCHDOG_PID=str(os.getpid()))
    assert n.watchdog_interval_s == 4.0
    n = _notifier(listener, WATCHDOG_USEC="8000000", WATCHDOG_PID=str(os.getpid() + 1))
    assert n.watchdog_interval_s is None


def test_send_errors_are_counted_logged_once_and_recover(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    n = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(path)})  # nobody listening yet
    with capture_logs() as logs:
        n.ready()
        n.watchdog()
        n.watchdog()
    assert (n.sent, n.failed) == (0, 3)
    assert [e["log_level"] for e in logs] == ["warning", "debug", "debug"]
    assert logs[0]["message"] == "READY=1"

    listener = NotifyListener(path)
    try:
        with capture_logs() as logs:
            n.watchdog()
        assert n.sent == 1
        assert logs == [
            {"event": "sd_notify works again", "failed": 3, "log_level": "info"},
        ]
        got = listener.receive(1.0)
        assert got is not None and got.fields == {"WATCHDOG": "1"}
    finally:
        listener.close()


def test_a_manager_that_stops_reading_never_blocks_the_caller(listener: NotifyListener) -> None:
    n = _notifier(listener)

    def flood() -> None:
        for _ in range(5000):  # far beyond net.unix.max_dgram_qlen
            n.watchdog()

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "sd_notify blocked on a full socket"
    assert n.failed > 0 and n.sent > 0


@pytest.mark.skipif(not HAVE_PYTHON_SYSTEMD, reason="python3-systemd (apt) is not installed")
@pytest.mark.parametrize("abstract", [False, True])
def test_through_libsystemd_when_python_systemd_is_importable(
    tmp_path: Path, abstract: bool
) -> None:
    listener = (
        NotifyListener(unique_name("fsqd-lib"), abstract=True)
        if abstract
        else NotifyListener(tmp_path / "notify")
    )
    code = textwrap.dedent(
        """
        from fsqd.daemon.systemd import SystemdNotifier
        n = SystemdNotifier.from_environ()
        print(n.via, n.watchdog_interval_s)
        n.ready(); n.status("up"); n.reloading(); n.watchdog(); n.stopping()
        print(n.sent, n.failed)
        """
    )
    root = Path(__file__).resolve().parents[1]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{root}:{DIST_PACKAGES}",
        "NOTIFY_SOCKET": listener.env,
        "WATCHDOG_USEC": "6000000",
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["libsystemd", "3.0", "5", "0"]
        keys = []
        for _ in range(5):
            got = listener.receive(2.0)
            assert got is not None
            keys.append(sorted(got.fields))
        assert keys == [
            ["READY"],
            ["STATUS"],
            ["MONOTONIC_USEC", "RELOADING"],
            ["WATCHDOG"],
            ["STOPPING"],
        ]
    finally:
        listener.close()

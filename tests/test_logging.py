"""configure_logging: console, JSON lines and journal entries over a real datagram socket."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from journald import JournaldStandIn, parse_native

from fsqd.daemon.journal import (
    JournalHandler,
    encode_native,
    journal_field_name,
    journal_stream_matches,
)
from fsqd.daemon.logging import configure_logging, resolve_format
from fsqd.errors import UsageError

DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
HAVE_PYTHON_SYSTEMD = (DIST_PACKAGES / "systemd" / "journal.py").exists()
ROOT = Path(__file__).resolve().parents[1]
# As a normal user, a private mount namespace needs a user namespace too.
UNSHARE = [
    "unshare",
    *(["--map-root-user"] if os.geteuid() != 0 else []),
    "-m",
    "--propagation",
    "private",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[JournaldStandIn]:
    j = JournaldStandIn(tmp_path / "journal.socket")
    yield j
    j.close()


def _journal(journald: JournaldStandIn, level: str = "debug") -> io.StringIO:
    fallback = io.StringIO()
    fmt = configure_logging(
        "journal", level, stream=fallback, environ={}, journal_socket=str(journald.path)
    )
    assert fmt == "journal"
    return fallback


def _line() -> int:
    frame = sys._getframe(1)
    return frame.f_lineno


# -- choosing the format --


def test_auto_picks_journal_only_when_journal_stream_is_our_stderr(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as err, open(tmp_path / "other", "w") as other:
        st = os.fstat(err.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal_stream_matches(env, err)
        assert resolve_format("auto", environ=env, stream=err) == "journal"
        # Inherited variable, stderr redirected elsewhere: not the journal.
        assert not journal_stream_matches(env, other)
        assert resolve_format("auto", environ=env, stream=other) == "json"
    for bad in ("", "1:2", "x:y", "12"):
        assert not journal_stream_matches({"JOURNAL_STREAM": bad}, io.StringIO())
    assert resolve_format("auto", environ={}, stream=io.StringIO()) == "json"


def test_auto_picks_console_on_a_terminal() -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            assert resolve_format("auto", environ={}, stream=tty) == "console"
    finally:
        os.close(leader)
        os.close(follower)


def test_explicit_formats_win_and_bad_names_are_refused() -> None:
    assert resolve_format("json", environ={}, stream=sys.stderr) == "json"
    with pytest.raises(UsageError, match="log format 'xml'"):
        configure_logging("xml")
    with pytest.raises(UsageError, match="log level 'loud'"):
        configure_logging("json", "loud")


# -- field names and the wire format --


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("sensor", "SENSOR"),
        ("latency_ms", "LATENCY_MS"),
        ("seq", "SEQ"),
        ("rate.hz", "RATE_HZ"),
        ("x-y z", "X_Y_Z"),
        ("_private", "PRIVATE"),  # '_' starts journald's trusted fields
        ("__x", "X"),
        ("9axis", "F_9AXIS"),  # nor may a name start with a digit
        ("größe", "GR_SSE"),
        ("message", "FSQD_MESSAGE"),  # never overrides the fields we set
        ("priority", "FSQD_PRIORITY"),
        ("code_line", "FSQD_CODE_LINE"),
        ("message_id", "MESSAGE_ID"),
        ("k" * 80, "K" * 64),
        ("___", None),
        ("", None),
    ],
)
def test_journal_field_names(key: str, name: str | None) -> None:
    assert journal_field_name(key) == name


def test_native_encoding_round_trips_newlines_and_equals_signs() -> None:
    fields = [
        ("MESSAGE", "two\nlines"),
        ("A", "x=y"),
        ("EMPTY", ""),
        ("NL", "\n"),
        ("U", "µs ✓"),
    ]
    data = encode_native(fields)
    assert data.startswith(b"MESSAGE\n" + (9).to_bytes(8, "little") + b"two\nlines\n")
    assert b"A=x=y\n" in data
    assert parse_native(data) == fields


# -- journal entries over a real socket --


def test_structlog_event_becomes_a_structured_journal_entry(journald: JournaldStandIn) -> None:
    _journal(journald)
    log = structlog.get_logger("fsqd.daemon")
    line = _line() + 1
    log.info("window coded", sensor="collar", seq=17, latency_ms=3.25, backend="onnx", ok=True)
    e = journald.receive()
    assert e is not None and not e.via_memfd
    assert e["MESSAGE"] == (
        "window coded sensor=collar seq=17 latency_ms=3.25 backend=onnx ok=true"
    )
    assert e["PRIORITY"] == "6"
    assert e["SYSLOG_IDENTIFIER"] == "fsqd"
    assert e["LOGGER"] == "fsqd.daemon"
    assert (e["SENSOR"], e["SEQ"], e["LATENCY_MS"], e["BACKEND"], e["OK"]) == (
        "collar",
        "17",
        "3.25",
        "onnx",
        "true",
    )
    assert e["CODE_FILE"] == __file__
    assert e["CODE_LINE"] == str(line)
    assert e["CODE_FUNC"] == "test_structlog_event_becomes_a_structured_journal_entry"
    assert e["THREAD_NAME"] == "MainThread"
    assert "TIMESTAMP" not in e.names and "LEVEL" not in e.names  # journald stamps entries


@pytest.mark.parametrize(
    ("method", "priority"),
    [("debug", "7"), ("info", "6"), ("warning", "4"), ("error", "3"), ("critical", "2")],
)
def test_priorities(journald: JournaldStandIn, method: str, priority: str) -> None:
    _journal(journald)
    getattr(structlog.get_logger("t"), method)("x")
    e = journald.receive()
    assert e is not None and e["PRIORITY"] == priority


def test_exception_goes_binary_encoded_with_its_traceback(journald: JournaldStandIn) -> None:
    _journal(journald)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        structlog.get_logger("t").exception("inference failed", backend="hailo")
    e = journald.receive()
    assert e is not None
    assert e["PRIORITY"] == "3"
    assert e["EXCEPTION"] == "ZeroDivisionError: division by zero"
    first, rest = e["MESSAGE"].split("\n", 1)
    assert first == "inference failed backend=hailo"
    assert rest.startswith("Traceback (most recent call last):")
    # The multi-line MESSAGE took the length-prefixed form on the wire.
    assert e.raw.startswith(b"MESSAGE\n")


def test_stdlib_records_take_the_same_road(journald: JournaldStandIn) -> None:
    _journal(journald)
    line = _line() + 1
    logging.getLogger("aiomqtt").warning("reconnecting in %d s", 5)
    e = journald.receive()
    assert e is not None
    assert (e["MESSAGE"], e["PRIORITY"], e["LOGGER"]) == ("reconnecting in 5 s", "4", "aiomqtt")
    assert (e["CODE_FILE"], e["CODE_LINE"]) == (__file__, str(line))
    assert e["CODE_FUNC"] == "test_stdlib_records_take_the_same_road"


def test_warnings_are_logged(journald: JournaldStandIn) -> None:
    _journal(journald)
    warnings.warn("old option", DeprecationWarning, stacklevel=1)
    e = journald.receive()
    assert e is not None and "old option" in e["MESSAGE"] and e["PRIORITY"] == "4"


def test_level_filters_structlog_and_stdlib(journald: JournaldStandIn) -> None:
    _journal(journald, level="warning")
    structlog.get_logger("t").info("not this")
    logging.getLogger("onnxruntime").info("nor this")
    structlog.get_logger("t").warning("this")
    assert [e["MESSAGE"] for e in journald.receive_all()] == ["this"]


def test_every_field_name_is_one_journald_accepts(journald: JournaldStandIn) -> None:
    _journal(journald)
    structlog.get_logger("t").info(
        "odd keys", **{"9lives": 1, "_x": 2, "a.b": 3, "MESSAGE": "no", "ünï": 4, "": 5}
    )
    e = journald.receive()  # parse_native refuses any invalid name
    assert e is not None
    assert e["MESSAGE"].startswith("odd keys ")
    assert e["FSQD_MESSAGE"] == "no"
    assert {"F_9LIVES", "X", "A_B", "N_"} <= set(e.names)


def test_an_entry_too_big_for_a_datagram_goes_in_a_sealed_memfd(
    journald: JournaldStandIn,
) -> None:
    _journal(journald)
    blob = "0123456789abcdef" * 40_000  # 640 kB, above the default socket buffer
    structlog.get_logger("t").info("big", blob=blob)
    e = journald.receive()
    assert e is not None and e.via_memfd
    want = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
    assert e.seals & want == want
    assert e["BLOB"] == blob


def test_without_journald_lines_fall_back_to_stderr_with_priority_prefix(
    tmp_path: Path,
) -> None:
    with open(tmp_path / "stderr", "w+") as err:
        st = os.fstat(err.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        fmt = configure_logging(
            "auto", stream=err, environ=env, journal_socket=str(tmp_path / "absent")
        )
        assert fmt == "journal"
        structlog.get_logger("t").warning("spool growing", depth=12)
        logging.getLogger("paho").error("two\nlines")
        err.seek(0)
        assert err.read() == "<4>spool growing depth=12\n<3>two\n<3>lines\n"
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, JournalHandler))
    assert handler.fallbacks == 2


def test_fallback_on_a_plain_stream_has_no_prefix(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("journal", stream=out, environ={}, journal_socket=str(tmp_path / "absent"))
    structlog.get_logger("t").info("hello", n=1)
    assert out.getvalue() == "hello n=1\n"


# -- console and JSON --


def test_json_lines_for_structlog_stdlib_and_exceptions() -> None:
    out = io.StringIO()
    assert configure_logging("json", stream=out, environ={}) == "json"
    structlog.get_logger("fsqd.x").info("started", backend="onnx", threads=2)
    logging.getLogger("aiomqtt").warning("broker %s down", "localhost")
    try:
        raise OSError(5, "Input/output error")
    except OSError:
        structlog.get_logger("fsqd.x").exception("bus failed", sensor="collar")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["event"], r["level"], r["logger"]) for r in rows] == [
        ("started", "info", "fsqd.x"),
        ("broker localhost down", "warning", "aiomqtt"),
        ("bus failed", "error", "fsqd.x"),
    ]
    assert rows[0]["backend"] == "onnx" and rows[0]["threads"] == 2
    assert rows[0]["timestamp"].endswith("Z")
    assert "OSError: [Errno 5] Input/output error" in rows[2]["exception"]
    assert rows[2]["sensor"] == "collar"


def test_console_on_a_terminal() -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            assert configure_logging("auto", stream=tty, environ={}) == "console"
            structlog.get_logger("fsqd.x").info("ready", sensors=2)
            tty.flush()
            text = os.read(leader, 4096).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert "ready" in text and "sensors" in text and "fsqd.x" in text


def test_reconfiguring_replaces_only_our_handler() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    module_level = structlog.get_logger("fsqd.y")  # as modules hold them, from import on
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", stream=first, environ={})
    module_level.info("before reload")
    module_level.debug("not at info")
    configure_logging("json", "debug", stream=second, environ={})  # a SIGHUP reload
    assert len(root.handlers) == before + 1
    module_level.debug("after reload")
    assert [json.loads(x)["event"] for x in first.getvalue().splitlines()] == ["before reload"]
    assert [json.loads(x)["event"] for x in second.getvalue().splitlines()] == ["after reload"]


# -- through libsystemd (systemd-python), with journald's socket swapped in a mount namespace --


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not HAVE_PYTHON_SYSTEMD, reason="python3-systemd (apt) is not installed")
def test_through_systemd_python_journal_send(tmp_path: Path) -> None:
    if not _can_unshare():
        pytest.skip("cannot make a private mount namespace here (needs root or userns)")
    run = tmp_path / "run-systemd"
    (run / "journal").mkdir(parents=True)
    journald = JournaldStandIn(run / "journal" / "socket")
    code = textwrap.dedent(
        """
        import io, logging, structlog
        from fsqd.daemon.logging import configure_logging
        configure_logging("journal", stream=io.StringIO(), environ={})
        structlog.get_logger("fsqd.imu").warning("sensor lost", sensor="collar", seq=9)
        logging.getLogger("aiomqtt").error("two\\nlines")
        """
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{ROOT}:{DIST_PACKAGES}",
    }
    script = 'mount --bind "$1" /run/systemd && exec "$2" -c "$3"'
    try:
        proc = subprocess.run(
            [*UNSHARE, "sh", "-c", script, "sh", str(run), sys.executable, code],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        entries = journald.receive_all()
    finally:
        journald.close()
    assert len(entries) == 2
    first: Any = entries[0]
    assert first["MESSAGE"] == "sensor lost sensor=collar seq=9"
    assert (first["SENSOR"], first["SEQ"], first["PRIORITY"]) == ("collar", "9", "4")
    assert first["SYSLOG_IDENTIFIER"] == "fsqd" and first["CODE_LINE"] == "5"
    assert entries[1]["MESSAGE"] == "two\nlines" and entries[1]["PRIORITY"] == "3"

"""A full disk (a real 64 KiB tmpfs) and an I/O error: one line, exit 74, and what was
written stays readable up to its last complete block or line."""

from __future__ import annotations

import errno
import functools
import importlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunCli
from smallfs import tmpfs

import fsqd.commands.record as record_mod
import fsqd.outfile
from fsqd.recordings import NativeRecording, ReadOptions, open_recording
from fsqd.sim import SimConfig, simulate, write_csv
from fsqd.testing import PacedClock
from fsqd.units import CHANNELS

CONFIG = """
[[sensor]]
name = "collar"
driver = "lsm6dsox"
bus = "emulated"
rate_hz = 104
[sensor.emulated]
seed = 4
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: writes past it fail with ENOSPC, as on a full SD card."""
    with tmpfs(tmp_path / "tiny", "size=64k") as d:
        yield d


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "record.toml"
    p.write_text(CONFIG)
    return p


@pytest.fixture(autouse=True)
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fsqd record` on the emulated sensor, 200x faster than real time."""
    monkeypatch.setattr(
        record_mod, "record", functools.partial(record_mod.record, clock=PacedClock(200))
    )


def samples(path: Path) -> int:
    rec = open_recording(path, ReadOptions(channels=CHANNELS))
    return sum(len(c) for c in rec.chunks())


@pytest.mark.parametrize("suffix", [".fsqr", ".csv"])
def test_record_on_a_full_disk_is_one_line_and_exit_74(
    suffix: str, run_cli: RunCli, config: Path, tiny: Path
) -> None:
    out = tiny / f"rec{suffix}"
    code, stdout, err = run_cli("record", "--config", config, "--out", out, "--duration", "10m")
    assert (code, stdout, err.count("\n")) == (74, "", 1), err
    # Everything up to the last whole block (line) reads back, nothing torn after it.
    assert samples(out) > 300
    if suffix == ".fsqr":
        assert NativeRecording(out, ReadOptions(channels=CHANNELS)).torn_bytes == 0
    else:
        assert out.read_bytes().endswith(b"\n")
    assert err == f"fsqd: error: {out}: cannot write: No space left on device\n"


def test_record_appends_again_once_there_is_room(run_cli: RunCli, config: Path, tiny: Path) -> None:
    out = tiny / "rec.fsqr"
    code, _, _ = run_cli("record", "--config", config, "--out", out, "--duration", "10m")
    assert code == 74
    before = samples(out)
    size = out.stat().st_size
    subprocess.run(["mount", "-o", "remount,size=128k", str(tiny)], check=True)
    code, _, err = run_cli("record", "--config", config, "--out", out, "--duration", "5s")
    assert code == 0, err
    assert out.stat().st_size > size and samples(out) > before


def test_replay_and_simulate_on_a_full_disk(run_cli: RunCli, tmp_path: Path, tiny: Path) -> None:
    rec = tmp_path / "long.csv"
    write_csv(simulate(600.0, SimConfig(seed=1)), rec, label_column=False)
    out = tiny / "codes.jsonl"
    code, stdout, err = run_cli("replay", rec, "--out", out)
    assert (code, stdout) == (74, "") and err.count("\n") == 1, err
    assert "No space left on device" in err and "internal error" not in err
    assert not out.exists()  # never replaced by a torn file
    (tiny / ".codes.jsonl.partial").unlink()
    out = tiny / "sim.csv"
    code, _, err = run_cli("simulate", "--out", out, "--duration", "10m")
    assert code == 74 and err.count("\n") == 1 and "No space left on device" in err, err
    assert not out.exists()


def test_an_io_error_mid_recording_keeps_the_file_readable(
    run_cli: RunCli, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0
    good = -1  # where the file ended before the failing write
    real = fsqd.outfile._write

    def failing(fd: int, data: bytes) -> int:
        nonlocal writes, good
        writes += 1
        if writes == 6:  # the sixth write: half of it lands, then the device fails
            good = os.lseek(fd, 0, os.SEEK_CUR)
            real(fd, data[: len(data) // 2])
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, data)

    monkeypatch.setattr(fsqd.outfile, "_write", failing)
    for suffix in (".fsqr", ".csv"):
        writes = 0
        out = tmp_path / f"rec{suffix}"
        code, _, err = run_cli("record", "--config", config, "--out", out, "--duration", "1m")
        assert code == 74 and err == f"fsqd: error: {out}: cannot write: Input/output error\n"
        assert out.stat().st_size == good  # cut back; nothing (no status block) after it
        assert samples(out) > 0
        if suffix == ".csv":
            assert out.read_bytes().endswith(b"\n")
        else:
            assert NativeRecording(out, ReadOptions(channels=CHANNELS)).torn_bytes == 0


def test_a_failed_sync_ends_the_recording_there(
    run_cli: RunCli, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync reports EIO (the card lost a write): one line, and nothing more is written."""
    out = tmp_path / "rec.fsqr"
    syncs = 0
    size_at_failure = -1

    def failing(fd: int) -> None:
        nonlocal syncs, size_at_failure
        syncs += 1
        if syncs == 4:
            size_at_failure = os.fstat(fd).st_size
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)

    monkeypatch.setattr(fsqd.outfile, "_fsync", failing)
    code, _, err = run_cli("record", "--config", config, "--out", out, "--duration", "1m")
    assert code == 74 and err == f"fsqd: error: {out}: cannot write: Input/output error\n"
    assert out.stat().st_size == size_at_failure  # no status block, no buffered samples after
    assert samples(out) > 0


def test_report_on_a_full_disk_is_one_line_and_exit_74(
    run_cli: RunCli, tmp_path: Path, tiny: Path
) -> None:
    """`fsqd report` draws a dozen PNGs and a page: the one that meets the full disk is named
    (it used to be `internal error: OSError`, exit 70); the others are whole files."""
    pytest.importorskip("matplotlib")
    from fleetkit import make_store

    store = make_store(tmp_path / "store", nodes=1, hours=2.0)
    out = tiny / "report"
    code, stdout, err = run_cli("report", store, "--out", out)
    assert (code, stdout, err.count("\n")) == (74, "", 1), err
    assert err.startswith(f"fsqd: error: {out}/") and "No space left on device" in err, err
    assert "internal error" not in err
    # Every PNG there is whole (from its signature to its IEND chunk): the torn one is
    # only the partial file the error names.
    written = sorted(out.glob("*.png"))
    assert written
    for png in written:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), png
    assert not (out / "report.html").exists()


@pytest.mark.parametrize(
    "failure", [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS], ids=errno.errorcode.get
)
def test_a_disk_failure_no_command_words_is_still_one_line_and_exit_74(
    failure: int, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: whatever write meets a full or failing disk, the user gets
    one line naming the file and exit 74, not `internal error` and exit 70."""
    cli_main = importlib.import_module("fsqd.cli.main")  # the package exports main()

    def command() -> int:
        raise OSError(failure, os.strerror(failure), "/var/lib/fsqd/somewhere")

    monkeypatch.setattr(cli_main, "invocation", lambda args: command)
    code, stdout, err = run_cli("check-config", "x.toml")
    assert (code, stdout) == (74, "")
    assert err == f"fsqd: error: /var/lib/fsqd/somewhere: {os.strerror(failure)}\n"


def test_other_os_errors_are_still_reported_as_bugs(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_main = importlib.import_module("fsqd.cli.main")  # the package exports main()

    def command() -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(cli_main, "invocation", lambda args: command)
    code, _, err = run_cli("check-config", "x.toml")
    assert code == 70 and err.startswith("fsqd: internal error: OSError:"), err

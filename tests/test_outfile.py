"""`--out` never replaces what it names: FIFOs and devices are written in place, a symlink
stays a link, a regular file is replaced whole; every command that writes goes this way."""

from __future__ import annotations

import functools
import os
import select
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import RunCli, parity

import fsqd.commands.record as record_mod
from fsqd.errors import OutputError
from fsqd.model.package import ModelPackage, bundled_model_path, load_package
from fsqd.outfile import binary_output, output_target, text_output
from fsqd.recordings.fsqr import MAGIC
from fsqd.sim import SimConfig, simulate, write_csv
from fsqd.testing import PacedClock

RECORD_CONFIG = """
[[sensor]]
name = "collar"
driver = "lsm6dsox"
bus = "emulated"
rate_hz = 104
[sensor.emulated]
seed = 4
"""


class FifoReader:
    """A FIFO at ``path`` and a thread reading it to the writer's end.

    The read end is opened without blocking, so a writer that never comes (the FIFO was
    replaced) leaves the thread waiting on poll, not stuck in open(); ``take`` then
    returns what arrived (nothing)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.eof = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poll = select.poll()
        poll.register(self.fd, select.POLLIN)
        while not self._stop.is_set():
            if not poll.poll(50):
                continue
            try:
                piece = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not piece:  # the writer closed its end
                self.eof.set()
                return
            self.data += piece

    def take(self, timeout_s: float = 5.0) -> bytes:
        self.eof.wait(timeout_s)
        self._stop.set()
        self._thread.join()
        os.close(self.fd)
        return bytes(self.data)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    p = tmp_path / "rec.csv"
    write_csv(simulate(30.0, SimConfig(seed=2)), p, label_column=False)
    return p


@pytest.fixture
def record_config(tmp_path: Path) -> Path:
    p = tmp_path / "record.toml"
    p.write_text(RECORD_CONFIG)
    return p


@pytest.fixture
def pkg_copy(pkg_d2: ModelPackage, tmp_path: Path) -> ModelPackage:
    shutil.copytree(pkg_d2.path, tmp_path / "pkg")
    return load_package(tmp_path / "pkg")


@pytest.fixture
def paced_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fsqd record` on the emulated sensor with a clock 200x real time."""
    paced = functools.partial(record_mod.record, clock=PacedClock(200))
    monkeypatch.setattr(record_mod, "record", paced)


Command = Callable[[Path], list[str | Path]]


def commands(
    recording: Path, tmp_path: Path, pkg_nohead: ModelPackage, pkg_copy: ModelPackage
) -> dict[str, Command]:
    windows = tmp_path / "w.npy"
    np.save(windows, parity("m13_d1_nohead")["x"])
    model = bundled_model_path()
    return {
        "replay": lambda out: ["replay", recording, "--out", out],
        "encode": lambda out: ["encode", "--model", pkg_nohead.path, windows, "--out", out],
        "simulate": lambda out: ["simulate", "--out", out, "--duration", "20s", "--seed", "3"],
        "calib": lambda out: ["model", "calib", model, "--out", out, "--sim-minutes", "0.2"],
        "compile-script": lambda out: ["model", "compile-script", pkg_copy.path, "--out", out],
    }


NAMES = ["replay", "encode", "simulate", "calib", "compile-script"]


@pytest.mark.parametrize("name", NAMES)
def test_a_fifo_gets_every_byte_and_stays_a_fifo(
    name: str,
    run_cli: RunCli,
    recording: Path,
    tmp_path: Path,
    pkg_nohead: ModelPackage,
    pkg_copy: ModelPackage,
) -> None:
    command = commands(recording, tmp_path, pkg_nohead, pkg_copy)[name]
    regular = tmp_path / "regular.out"
    code, _, err = run_cli(*command(regular))
    assert code == 0, err
    fifo = tmp_path / "fifo.out"
    reader = FifoReader(fifo)
    code, _, err = run_cli(*command(fifo))
    got = reader.take()
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    assert got == regular.read_bytes()
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize("fmt", ["csv", "native"])
def test_record_writes_into_a_fifo(
    fmt: str, run_cli: RunCli, record_config: Path, tmp_path: Path, paced_record: None
) -> None:
    fifo = tmp_path / ("rec.csv" if fmt == "csv" else "rec.fsqr")
    reader = FifoReader(fifo)
    code, _, err = run_cli("record", "--config", record_config, "--out", fifo, "--duration", "5s")
    got = reader.take()
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if fmt == "csv":
        lines = got.decode().splitlines()
        assert lines[0].startswith("t,ax,ay,az") and len(lines) > 400
    else:
        assert got.startswith(MAGIC) and len(got) > 5 * 104 * 9 * 4


def test_a_symlink_stays_a_link_and_its_file_is_replaced_whole(
    run_cli: RunCli, recording: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = data / "codes.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    inode = target.stat().st_ino
    code, _, err = run_cli("replay", recording, "--out", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    text = target.read_text()
    assert text.startswith('{"') and text.count("\n") > 50
    # Written atomically beside the file it points to: a new inode, the old mode kept.
    assert target.stat().st_ino != inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert not list(data.glob(".*.partial")) and not list(tmp_path.glob(".*.partial"))
    # A dangling link names the file to create.
    target.unlink()
    code, _, err = run_cli("replay", recording, "--out", link)
    assert code == 0, err
    assert link.is_symlink() and target.read_text() == text


def _char_device(tmp_path: Path) -> Path:
    """A /dev/null-like node in tmp (root only); else /dev/null itself, read-only checks."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:
        return Path("/dev/null")
    return node


def test_a_character_device_is_written_not_replaced(
    run_cli: RunCli, recording: Path, tmp_path: Path
) -> None:
    dev = _char_device(tmp_path)
    before = os.lstat(dev)
    code, out, err = run_cli("replay", recording, "--out", dev)
    assert (code, out) == (0, ""), err
    after = os.lstat(dev)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (
        before.st_ino,
        before.st_rdev,
        before.st_mode,
    )
    code, _, err = run_cli("simulate", "--out", dev, "--duration", "5s")
    assert code == 0, err
    assert os.lstat(dev).st_ino == before.st_ino
    assert not list(dev.parent.glob(".null.partial"))


def test_compile_script_leaves_a_devices_mode_alone(
    run_cli: RunCli, pkg_copy: ModelPackage, tmp_path: Path
) -> None:
    dev = _char_device(tmp_path)
    mode = os.lstat(dev).st_mode
    code, _, err = run_cli("model", "compile-script", pkg_copy.path, "--out", dev)
    assert code == 0, err
    assert os.lstat(dev).st_mode == mode  # no chmod 0755 on a device
    script = tmp_path / "compile.sh"
    code, _, err = run_cli("model", "compile-script", pkg_copy.path, "--out", script)
    assert code == 0, err
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_directories_and_sockets_are_refused_in_one_line(tmp_path: Path) -> None:
    import socket

    with pytest.raises(OutputError, match="is a directory"):
        output_target(tmp_path)
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(OutputError, match="is a socket"):
            output_target(path)


def test_a_failed_body_keeps_the_old_file_and_names_the_partial(tmp_path: Path) -> None:
    out = tmp_path / "out.npy"
    out.write_bytes(b"old")
    kept = r"partial output kept in .*\.out\.npy\.partial"
    with pytest.raises(OutputError, match=kept), binary_output(out) as fh:
        fh.write(b"new")
        raise OutputError("boom")
    assert out.read_bytes() == b"old"
    # A planted symlink at the partial name is removed, not written through.
    victim = tmp_path / "victim"
    victim.write_text("keep")
    partial = tmp_path / ".out.npy.partial"
    partial.unlink()
    partial.symlink_to(victim)
    with text_output(out) as fh:
        fh.write("new")
    assert victim.read_text() == "keep" and out.read_text() == "new"


def test_model_import_follows_a_symlinked_package(tmp_path: Path) -> None:
    from conftest import MODELS

    from fsqd.commands.model_import import ImportOptions, import_model

    real = tmp_path / "models" / "dog-v2"
    real.parent.mkdir()
    link = tmp_path / "current"
    link.symlink_to(real)  # dangling until the first import
    full = MODELS / "m13_d1_nohead" / "full.onnx"
    import_model(full, link, ImportOptions(sample_rate_hz=100.0))
    assert link.is_symlink() and load_package(link).path == link and (real / "model.json").is_file()
    # --force replaces the package the link points to; the link stays.
    import_model(full, link, ImportOptions(sample_rate_hz=100.0, name="again", overwrite=True))
    assert link.is_symlink() and load_package(real).card.name == "again"
    assert sorted(p.name for p in real.parent.iterdir()) == ["dog-v2"]  # no temporary left

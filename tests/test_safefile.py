"""Files read by name: regular files under a cap, or one line saying what they are."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fsqd.model.package import ModelPackage
from fsqd.safefile import FileProblem, read_bytes, read_text, regular_file
from fsqd.sim import SimConfig, simulate, write_csv

ROOT = Path(__file__).resolve().parents[1]


def test_a_regular_file_reads_whole(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_bytes(p, limit=100) == b"\xef\xbb\xbfhello\n"
    assert read_text(p, limit=100) == "hello\n"  # the byte-order mark dropped
    assert regular_file(p, limit=100).st_size == 9


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: p.mkdir(), "a directory"),
        (lambda p: os.mkfifo(p), "a FIFO"),
        (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    ],
)
def test_anything_else_is_refused_without_reading_it(
    tmp_path: Path, make: Callable[[Path], object], kind: str
) -> None:
    p = tmp_path / "x"
    make(p)
    with pytest.raises(FileProblem, match=rf"x: is {kind}, not a regular file \(a config file\)"):
        read_bytes(p, limit=1 << 20, what="a config file")


def test_the_cap(tmp_path: Path) -> None:
    p = tmp_path / "big"
    p.write_bytes(b"x" * 2049)
    with pytest.raises(FileProblem, match=r"is too large for a key \(at most 2 KiB\)"):
        read_bytes(p, limit=2048, what="a key")
    assert len(read_bytes(p, limit=2049)) == 2049
    # A file whose size says 0 but that reads on (procfs): cut at the cap, not read for ever.
    with pytest.raises(FileProblem, match="grew past"):
        read_bytes(Path("/proc/self/maps"), limit=16)
    with pytest.raises(FileProblem, match="no such file"):
        read_bytes(tmp_path / "missing", limit=1)


def _fsqd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fsqd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_fifo_for_a_model_card_or_a_norm_file_is_one_line(
    pkg_nohead: ModelPackage, tmp_path: Path
) -> None:
    """`model.json` or `--norm` swapped for a FIFO: a plain read would wait for ever."""
    pkg = tmp_path / "pkg"
    shutil.copytree(pkg_nohead.path, pkg)
    (pkg / "model.json").unlink()
    os.mkfifo(pkg / "model.json")
    rec = tmp_path / "rec.csv"
    write_csv(simulate(3.0, SimConfig(seed=1)), rec)
    p = _fsqd("replay", rec, "--model", pkg)
    assert p.returncode == 66 and p.stderr == (
        f"fsqd: error: {pkg}/model.json: is a FIFO, not a regular file (a model card)\n"
    )
    p = _fsqd("model", "import", "x.onnx", "--out", tmp_path / "o", "--norm", "/dev/zero")
    assert p.returncode == 66 and p.stderr.count("\n") == 1
    assert "/dev/zero: is a character device, not a regular file" in p.stderr


def test_a_fifo_swapped_in_after_the_check_neither_blocks_nor_reads_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is checked, then (a race, a config being replaced) a FIFO stands there: the
    open does not wait for a writer (O_NONBLOCK) and the descriptor is checked again, so it
    is refused, not read as an empty file."""
    import fsqd.safefile

    p = tmp_path / "fsqd.toml"
    os.mkfifo(p)
    monkeypatch.setattr(fsqd.safefile, "regular_file", lambda *a, **k: None)  # the check passed
    outcome: list[str] = []

    def read() -> None:
        try:
            outcome.append(repr(read_bytes(p, limit=1024, what="a config file")))
        except FileProblem as e:
            outcome.append(str(e))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): give it a writer so the thread can end
        with contextlib.suppress(OSError):
            os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("opening a FIFO waited for a writer")
    assert outcome == [f"{p}: is a FIFO, not a regular file (a config file)"]


@pytest.mark.parametrize("action", ["calibrate", "evaluate"])
def test_labelled_data_that_is_a_fifo_or_a_device_is_one_line(action: str, tmp_path: Path) -> None:
    """`model calibrate/evaluate --data` hashed and read the labels of a FIFO (waiting for a
    writer for ever) or /dev/zero (reading for ever) before anything checked what it was."""
    fifo = tmp_path / "labelled.csv"
    os.mkfifo(fifo)
    for data, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a character device")):
        cmd = ["model", action, str(ROOT / "fsqd/models/default"), "--data", str(data)]
        p = subprocess.run(
            [sys.executable, "-m", "fsqd", *cmd],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert (p.returncode, p.stdout) == (66, "")
        assert (
            p.stderr
            == f"fsqd: error: {data}: is {kind}, not a regular file (a labelled recording)\n"
        )

"""``fsqd replay --segments FILE``: the daemon's behaviour segments from a recorded file."""

from __future__ import annotations

import csv
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import RunCli

from fsqd.model.package import ModelPackage
from fsqd.sim import SimConfig, simulate, write_csv
from fsqd.units import BEHAVIOURS


@pytest.fixture(scope="module")
def gapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of simulated collar with 4 s missing at 30 s."""
    rec = simulate(60, SimConfig(seed=12))
    keep = (rec.t < 30) | (rec.t >= 34)
    path = tmp_path_factory.mktemp("rec") / "gap.csv"
    write_csv(type(rec)(rec.t[keep], rec.x[keep], rec.labels[keep]), path)
    return path


def test_segments_as_json_lines_tile_each_stretch(
    run_cli: RunCli, gapped: Path, tmp_path: Path
) -> None:
    out = tmp_path / "seg.jsonl"
    code, stdout, err = run_cli("replay", gapped, "--segments", out)
    assert code == 0
    codes = [json.loads(line) for line in stdout.splitlines()]
    segs = [json.loads(line) for line in out.read_text().splitlines()]
    assert f"{out}: {len(segs)} behaviour segment(s) (hsmm)" in err  # the bundled card's
    assert {s["behaviour"] for s in segs} <= set(BEHAVIOURS)
    assert sum(s["windows"] for s in segs) == len(codes)
    # Within a stretch each segment starts where the one before ended; the gap splits them.
    breaks = [b["start"] - a["end"] for a, b in itertools.pairwise(segs)]
    assert sum(gap > 1.0 for gap in breaks) == 1
    assert all(abs(gap) < 1e-6 for gap in breaks if gap <= 1.0)
    (cut,) = [i for i, g in enumerate(breaks) if g > 1.0]
    assert 29.0 < segs[cut]["end"] <= 30.0 and 34.0 <= segs[cut + 1]["start"] < 35.0
    # Fewer behaviour changes than the per-window label.
    flips = sum(a["label"] != b["label"] for a, b in itertools.pairwise(codes))
    assert len(segs) - 2 < flips
    assert all(0 < s["confidence"] <= 1 and s["duration_s"] > 0 for s in segs)


def test_segments_as_csv(run_cli: RunCli, gapped: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg.csv"
    code, _, _ = run_cli("replay", gapped, "--segments", out, "--out", os.devnull)
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["behaviour", "start", "end", "duration_s", "confidence", "windows"]
    d = np.array([float(r["end"]) - float(r["start"]) for r in rows])
    np.testing.assert_allclose(d, [float(r["duration_s"]) for r in rows], atol=2e-3)


def test_segments_to_a_fifo_are_written_in_place(
    run_cli: RunCli, gapped: Path, tmp_path: Path
) -> None:
    import threading

    fifo = tmp_path / "seg.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    code, _, _ = run_cli("replay", gapped, "--segments", fifo, "--out", os.devnull)
    reader.join(30)
    assert code == 0 and fifo.is_fifo()
    assert got and all(json.loads(line)["type"] == "segment" for line in got[0].splitlines())


def test_segments_to_a_directory_is_one_line(run_cli: RunCli, gapped: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("replay", gapped, "--segments", tmp_path)
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
    assert "is a directory" in err and out == ""  # refused before replaying anything


def test_segments_need_a_head(
    run_cli: RunCli, gapped: Path, tmp_path: Path, pkg_nohead: ModelPackage
) -> None:
    out = tmp_path / "seg.jsonl"
    code, stdout, err = run_cli("replay", gapped, "--model", pkg_nohead.path, "--segments", out)
    assert (code, stdout) == (64, "") and "has no head" in err and err.count("\n") == 1
    assert not out.exists()

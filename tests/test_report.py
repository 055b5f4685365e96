"""``fsqd report``: the numbers, the files, and the page as a real browser draws it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fleetkit import make_store

from fsqd.cli import main
from fsqd.fleet.analysis import analyse_day, day_bounds, merged_latency
from fsqd.fleet.charts import GAP_COLOUR, palette
from fsqd.fleet.rows import TABLES
from fsqd.hdrhistogram import HdrHistogram

DAY = "2026-05-29"
LO, _ = day_bounds(DAY)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("fleet") / "store")


def codes_table(
    labels: list[str], seqs: list[int], codes: list[int], step: float = 10.0
) -> pa.Table:
    n = len(labels)
    t_end = [LO + 100 + s * step for s in seqs]
    cols = {
        "node": ["n"] * n, "run": ["r"] * n, "seq": seqs, "t_start": [t - 1 for t in t_end],
        "t_end": t_end, "code": codes, "digits": [[1]] * n, "label": labels, "p": [0.9] * n,
        "set": [None] * n, "model": ["m"] * n, "clock_synced": [True] * n,
        "latency_ms": [1.0] * n, "received_at": t_end,
    }  # fmt: skip
    return pa.table(cols, schema=TABLES["codes"].schema)


def test_budget_segments_completeness_and_perplexity_from_codes() -> None:
    labels = ["rest"] * 6 + ["walk"] * 3 + ["rest"] * 1
    seqs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12]  # windows 9-11 lost
    codes = [7, 7, 8, 8, 9, 9, 1, 2, 3, 7]
    day = analyse_day(
        "n", DAY, codes_table(labels, seqs, codes), TABLES["events"].schema.empty_table()
    )
    assert day.source == "codes"
    assert day.budget_s == {"rest": 70.0, "walk": 30.0}  # 10 s per window
    assert [(s.behaviour, s.duration_s) for s in day.segments] == [
        ("rest", 60.0), ("walk", 30.0), ("rest", 10.0),
    ]  # fmt: skip
    c = day.completeness
    assert c is not None and (c.expected, c.present) == (13, 10)
    assert c.gaps == [(LO + 100 + 80, LO + 100 + 110)]  # after seq 8, up to seq 12's start
    # One hour, codes 7 x3, 8 x2, 9 x2, 1, 2, 3: exp(entropy).
    p = np.array([3, 2, 2, 1, 1, 1]) / 10
    assert day.perplexity[0][1] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))


def test_events_take_precedence_and_are_cut_at_midnight() -> None:
    ev = pa.table(
        {
            "node": ["n", "n"], "run": ["r", "r"], "key": [1, 2], "type": ["segment"] * 2,
            "behaviour": ["eat", "rest"], "start": [LO - 600, LO + 3600],
            "end": [LO + 1800, LO + 7200], "duration_s": [2400.0, 3600.0],
            "confidence": [0.9, 0.8], "received_at": [LO, LO],
        },
        schema=TABLES["events"].schema,
    )  # fmt: skip
    day = analyse_day("n", DAY, codes_table(["walk"], [0], [1]), ev)
    assert day.source == "events"
    assert day.budget_s == {"eat": 1800.0, "rest": 3600.0}
    assert day.budget_share == {"eat": 1 / 3, "rest": 2 / 3}


def test_fleet_latency_is_the_merged_histogram_not_an_average_of_percentiles() -> None:
    rng = np.random.default_rng(7)
    fast = rng.integers(5_000, 10_000, 9_900)
    slow = rng.integers(200_000, 400_000, 100)  # one node's bad minute
    blobs, everything = [], HdrHistogram(1, 60_000_000, 3)
    for values in (fast, slow):
        h = HdrHistogram(1, 60_000_000, 3)
        for v in values.tolist():
            h.record_value(v)
            everything.record_value(v)
        blobs.append(h.encode().decode())
    merged = merged_latency(blobs)
    assert merged is not None
    for q in (50, 90, 99, 99.9):
        assert merged.get_value_at_percentile(q) == everything.get_value_at_percentile(q)
    per_node_p99 = [HdrHistogram.decode(b).get_value_at_percentile(99) for b in blobs]
    assert merged.get_value_at_percentile(99) < 0.5 * np.mean(per_node_p99)


def test_report_writes_pngs_and_one_self_contained_page(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["report", str(store), "--out", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 3 * 4 + 2
    assert "dog0_2026-05-29_timeline.png" in pngs and "fleet_latency.png" in pngs
    page = (out / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == len(pngs) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(href|src)=\"(https?:)?//", page)  # nothing to fetch
    assert page.count("Behaviour from its codes' labels") == 1  # dog2 sent no events
    assert page.count("Behaviour from its behaviour states' segments") == 2
    assert "16980 of 17280" in page  # dog0 lost 300 windows


def test_report_filters_and_errors(store: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, _ = run_cli(
        "report", store, "--node", "dog1", "--from", DAY, "--to", DAY, "--out", tmp_path / "a"
    )
    assert code == 0 and len(list((tmp_path / "a").glob("dog*_timeline.png"))) == 1
    code, _, err = run_cli("report", store, "--from", "2027-01-01", "--out", tmp_path / "b")
    assert code == 65 and "no codes or events" in err
    code, _, err = run_cli("report", tmp_path / "nope", "--out", tmp_path / "c")
    assert code == 66 and err.count("\n") == 1
    code, _, err = run_cli("report", store, "--from", "29/05/2026", "--out", tmp_path / "d")
    assert code == 64 and "YYYY-MM-DD" in err
    # Bad input leaves no (empty) report directory behind.
    assert not [p for p in "bcd" if (tmp_path / p).exists()]
    (tmp_path / "e").write_text("not a directory")
    code, _, err = run_cli("report", store, "--out", tmp_path / "e")
    assert code == 74 and err.count("\n") == 1 and "not a directory" in err
    assert (tmp_path / "e").read_text() == "not a directory"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, png: Path) -> np.ndarray:
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1300,5200", f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    import matplotlib.image as mpimg

    return np.asarray(mpimg.imread(png))[..., :3]


def pixels_of(shot: np.ndarray, hex_colour: str) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(shot - rgb).max(axis=2) < 0.02).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt install chromium)")
def test_the_page_in_headless_chromium_shows_the_charts(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["report", str(store), "--out", str(out)]) == 0
    shot = screenshot(out / "report.html", tmp_path / "shot.png")
    assert shot.shape[:2] == (5200, 1300)
    colours = palette(["eat", "groom", "rest", "shake", "trot", "walk"])
    # Each behaviour's colour fills bars and timeline segments; the lost windows are drawn.
    for name in ("rest", "eat", "walk"):
        assert pixels_of(shot, colours[name]) > 2000, name
    assert pixels_of(shot, GAP_COLOUR) > 200
    # The same page without its images: the check above would see none of those colours.
    page = (out / "report.html").read_text()
    bare = out / "bare.html"
    bare.write_text(re.sub(r'src="data:[^"]*"', 'src=""', page))
    blank = screenshot(bare, tmp_path / "bare.png")
    assert all(pixels_of(blank, colours[n]) == 0 for n in ("rest", "eat", "walk"))

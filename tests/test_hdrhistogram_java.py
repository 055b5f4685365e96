"""fsqd.hdrhistogram against the Java HdrHistogram, the reference implementation.

tests/fixtures/hdr_java.json was recorded once from Java's HdrHistogram 2.2.2 (a small Java
program fed each case's values): Java's own blob and what Java reported decoding it, and
fsqd's blob and what Java read in it. No JVM is needed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fsqd.hdrhistogram import HdrHistogram

FIXTURE = Path(__file__).parent / "fixtures" / "hdr_java.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["cases"]


def report(h: HdrHistogram) -> dict[str, Any]:
    """What the Java program printed for a decoded histogram, computed by fsqd."""
    return {
        "layout": [h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures],
        "total": h.get_total_count(),
        "min": h.get_min_value(),
        "max": h.get_max_value(),
        "recorded": [list(bucket) for bucket in h.recorded()],
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fsqd_still_writes_the_blob_java_read_and_java_read_it_right(case: dict[str, Any]) -> None:
    h = HdrHistogram(*case["layout"])
    for value, count in case["values"]:
        assert h.record_value(value, count)
    assert h.encode().decode("ascii") == case["fsqd_blob"]
    assert case["java_reads_fsqd"] == report(HdrHistogram.decode(case["fsqd_blob"]))
    assert case["java_reads_fsqd"]["total"] == sum(c for _, c in case["values"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fsqd_reads_javas_blob_as_java_does(case: dict[str, Any]) -> None:
    assert report(HdrHistogram.decode(case["java_blob"])) == case["java"]


def test_the_fixture_covers_what_differs_between_encoders() -> None:
    # Java writes a lone zero count as 0 and one count for an empty histogram; hdrh and fsqd
    # write -1 and nothing. The cases must include blobs where the bytes differ.
    differ = {c["name"] for c in CASES if c["java_blob"] != c["fsqd_blob"]}
    assert {"empty", "single zero gaps"} <= differ
    assert any(c["layout"][2] == 0 for c in CASES) and any(c["layout"][0] > 1 for c in CASES)

"""Generate tests/fixtures/hdr_java.json: fsqd's histograms checked against the Java HdrHistogram.

The Java library is the reference implementation of HdrHistogram. This script compiles
tools/hdr_reference/HdrReference.java against it and, for each case below (seeded, fixed):

- Java records the values and encodes them: ``java_blob``, plus what Java itself reports on
  decoding its own blob (``java``: total, min, max, recorded buckets);
- fsqd records the same values and encodes them: ``fsqd_blob``, and Java decodes that blob:
  ``java_reads_fsqd``.

tests/test_hdrhistogram_java.py then checks, without Java, that fsqd still encodes exactly
``fsqd_blob`` (so Java's reading of it still holds) and that fsqd decodes ``java_blob`` to
what Java reported. Java writes a single zero count as 0 where hdrh and fsqd write -1, and
encodes one count for an empty histogram: its blobs are not fsqd's bytes, only its values.

Usage (JDK 11+; HDR is a checkout of github.com/HdrHistogram/HdrHistogram or its jar)::

    python tools/gen_hdr_fixture.py --hdr-java HDR --label "HdrHistogram Java 2.2.2"
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fsqd.hdrhistogram import HdrHistogram

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "hdr_java.json"
REFERENCE = ROOT / "tools" / "hdr_reference" / "HdrReference.java"
FSQD_LAYOUT = (1, 60_000_000, 3)


def cases() -> list[tuple[str, tuple[int, int, int], list[tuple[int, int]]]]:
    """(name, (lowest, highest, digits), [(value, count), ...]) for every case."""
    rng = np.random.default_rng(20240611)
    edges = sorted({0, 60_000_000} | {(1 << k) + d for k in range(26) for d in (-1, 0, 1)})
    wide = np.clip(rng.lognormal(7.0, 2.5, 2000), 0, 60_000_000).astype(np.int64)
    values, counts = np.unique(wide, return_counts=True)
    return [
        ("empty", FSQD_LAYOUT, []),
        ("one value", FSQD_LAYOUT, [(1, 1)]),
        ("1 and 60e6", FSQD_LAYOUT, [(1, 1), (60_000_000, 1)]),
        ("bucket edges", FSQD_LAYOUT, [(v, 1) for v in edges if v >= 0]),
        ("single zero gaps", FSQD_LAYOUT, [(v, 1 + v % 3) for v in range(1, 1200, 2)]),
        ("wide log-normal", FSQD_LAYOUT, list(zip(values.tolist(), counts.tolist(), strict=True))),
        (
            "large counts",
            FSQD_LAYOUT,
            [(3, 2**31), (700, 2**40), (5_000, 2**56 + 3), (90_000, 2**58), (2**20, 2**62)],
        ),
        ("digits 0", (1, 1000, 0), [(v, 1) for v in (0, 1, 2, 3, 5, 8, 13, 999)]),
        ("digits 5", (1, 10**9, 5), [(v, 2) for v in (1, 99_999, 100_000, 262_143, 10**9)]),
        ("lowest 3, digits 2", (3, 10_000_000, 2), [(v, 1) for v in (0, 3, 4, 700, 9_999_999)]),
        ("lowest 1000, digits 4", (1000, 10**12, 4), [(v, 7) for v in (1000, 10**6, 10**12)]),
    ]


def compile_reference(hdr_java: Path, work: Path) -> str:
    """Compile HdrReference.java (and the Java sources when given a checkout): a classpath."""
    classes = work / "classes"
    classes.mkdir()
    if hdr_java.suffix == ".jar":
        classpath = f"{hdr_java}:{classes}"
    else:
        src = hdr_java / "src" / "main" / "java"
        template = src / "org" / "HdrHistogram" / "Version.java.template"
        version = work / "Version.java"
        version.write_text(
            template.read_text().replace("$VERSION$", "source").replace("$BUILD_TIME$", "")
        )
        sources = [str(p) for p in src.rglob("*.java")] + [str(version)]
        subprocess.run(["javac", "-nowarn", "-d", str(classes), *sources], check=True)
        classpath = str(classes)
    subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(REFERENCE)], check=True)
    return classpath


def run_java(classpath: str, lines: list[str]) -> list[str]:
    done = subprocess.run(
        ["java", "-cp", classpath, "HdrReference"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def parse_decode(line: str) -> dict[str, object]:
    total, low, high, lowest, highest, digits, *buckets = line.split()
    return {
        "layout": [int(lowest), int(highest), int(digits)],
        "total": int(total),
        "min": int(low),
        "max": int(high),
        "recorded": [[int(x) for x in b.split(":")] for b in buckets],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hdr-java", type=Path, required=True, help="HdrHistogram checkout or jar")
    ap.add_argument("--label", required=True, help="which Java HdrHistogram, for the record")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if shutil.which("javac") is None:
        print("gen_hdr_fixture: javac not found (a JDK 11+ is needed)", file=sys.stderr)
        return 69
    todo = cases()
    with tempfile.TemporaryDirectory() as tmp:
        classpath = compile_reference(args.hdr_java, Path(tmp))
        ours = []
        for _, layout, pairs in todo:
            h = HdrHistogram(*layout)
            for value, count in pairs:
                assert h.record_value(value, count)
            ours.append(h)
        encode = [
            " ".join(["encode", *map(str, layout), *(f"{v}:{c}" for v, c in pairs)])
            for _, layout, pairs in todo
        ]
        java_blobs = run_java(classpath, encode)
        fsqd_blobs = [h.encode().decode("ascii") for h in ours]
        decoded = run_java(classpath, [f"decode {b}" for b in java_blobs + fsqd_blobs])
    n = len(todo)
    out = {
        "about": f"tools/gen_hdr_fixture.py with {args.label}: Java and fsqd encode, Java decodes",
        "cases": [
            {
                "name": name,
                "layout": list(layout),
                "values": [list(p) for p in pairs],
                "java_blob": java_blobs[i],
                "java": parse_decode(decoded[i]),
                "fsqd_blob": fsqd_blobs[i],
                "java_reads_fsqd": parse_decode(decoded[n + i]),
            }
            for i, (name, layout, pairs) in enumerate(todo)
        ],
    }
    # One case per line: diffs stay readable, the file small.
    lines = ",\n".join(json.dumps(c, separators=(",", ":")) for c in out["cases"])
    args.out.write_text(f'{{"about":{json.dumps(out["about"])},"cases":[\n{lines}\n]}}\n')
    agree = sum(c["java"] == c["java_reads_fsqd"] for c in out["cases"])
    print(f"{args.out}: {n} cases, Java reads fsqd's blob as its own in {agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

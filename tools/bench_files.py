"""Benchmark the recorded-file readers on one hour of 100 Hz, 9-channel data.

Writes the test files with plain numpy (random values, not the simulator), then reads
them with fsqd's streaming reader and, for comparison, with one np.loadtxt of the whole
file. Prints rows per second (best of ``--repeat`` runs).

    .venv/bin/python tools/bench_files.py [--rows 360000] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fsqd.recordings import ReadOptions, open_recording

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
T0 = 1795341600.0  # 2026-11-22T10:00:00Z


def make_data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(rows) / 100.0
    x = rng.normal(size=(rows, 9)) * [9.8, 9.8, 9.8, 1, 1, 1, 40, 40, 40]
    return t, x


def write_csv(path: Path, t: np.ndarray, x: np.ndarray, iso: bool) -> None:
    header = ("timestamp," if iso else "t,") + ",".join(CHANNELS)
    if not iso:
        data = np.column_stack([t, x])
        np.savetxt(path, data, delimiter=",", fmt=["%.2f"] + ["%.6f"] * 9, header=header,
                   comments="")  # fmt: skip
        return
    stamps = np.datetime64(int(T0 * 1000), "ms") + (t * 1000).round().astype("timedelta64[ms]")
    values = [",".join(f"{v:.6f}" for v in row) for row in x]
    with path.open("w") as fh:
        fh.write(header + "\n")
        fh.writelines(f"{s}Z,{v}\n" for s, v in zip(stamps.astype(str), values, strict=True))


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return min(times), n


def read_fsqd(path: Path, **kw: float) -> Callable[[], int]:
    def run() -> int:
        rec = open_recording(path, ReadOptions(channels=CHANNELS, **kw))  # type: ignore[arg-type]
        return sum(len(c.t) for c in rec.chunks())

    return run


def read_loadtxt(path: Path) -> Callable[[], int]:
    def run() -> int:
        return len(np.loadtxt(path, delimiter=",", skiprows=1))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=360_000, help="rows (default: 1 h at 100 Hz)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="where to write the files (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = args.dir or Path(tmp)
        t, x = make_data(args.rows)
        csv, iso, npy = d / "bench.csv", d / "bench_iso.csv", d / "bench.npy"
        write_csv(csv, t, x, iso=False)
        write_csv(iso, t, x, iso=True)
        np.save(npy, x.astype(np.float32))
        mb = csv.stat().st_size / 1e6
        print(f"{args.rows} rows x 10 columns; CSV {mb:.1f} MB; best of {args.repeat}")
        cases = [
            ("fsqd CSV, seconds", read_fsqd(csv)),
            ("fsqd CSV, ISO-8601 times", read_fsqd(iso)),
            ("fsqd .npy (mmap)", read_fsqd(npy, rate_hz=100.0)),
            ("np.loadtxt whole CSV", read_loadtxt(csv)),
        ]
        for name, fn in cases:
            secs, n = best(fn, args.repeat)
            assert n == args.rows, (name, n)
            print(f"{name:28s} {secs:7.3f} s  {n / secs / 1e6:6.2f} M rows/s")


if __name__ == "__main__":
    main()

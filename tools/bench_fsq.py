"""FSQ throughput on the CPU in rows per second, from projection and from bounded values.

    .venv/bin/python tools/bench_fsq.py [--rows 1000000] [--repeat 5]

Levels [8, 6, 5, 5, 4], float32 rows; each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from fsqd.fsq import FSQ


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    fsq = FSQ([8, 6, 5, 5, 4])
    z = np.random.default_rng(0).normal(0, 1.5, (args.rows, fsq.dim)).astype(np.float32)
    b = fsq.bound(z)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("indices(z)", lambda: fsq.indices(z)),
        ("indices_from_bounded(b)", lambda: fsq.indices_from_bounded(b)),
        ("digits_and_codes_from_bounded(b)", lambda: fsq.digits_and_codes_from_bounded(b)),
    ]
    print(f"{args.rows:,} x {fsq.dim} float32 rows, levels {fsq.levels.tolist()}")
    for name, fn in cases:
        secs = best_seconds(fn, args.repeat)
        print(f"{name:<34} {args.rows / secs:>14,.0f} rows/s  ({secs * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()

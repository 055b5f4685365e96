"""Benchmark: FSQ throughput on the CPU (rows per second), projection and bounded stage.

python tools/bench_fsq.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fsqd.fsq import FSQ


def best_of(n: int, fn: object) -> float:
    assert callable(fn)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    fsq = FSQ([8, 6, 5, 5, 4])
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (args.rows, 5)).astype(np.float32)
    b = fsq.bound(z)
    for name, fn in (
        ("indices(z)", lambda: fsq.indices(z)),
        ("indices_from_bounded(b)", lambda: fsq.indices_from_bounded(b)),
        ("digits_and_codes_from_bounded(b)", lambda: fsq.digits_and_codes_from_bounded(b)),
    ):
        secs = best_of(3, fn)
        print(f"{name:<34} {args.rows / secs / 1e6:7.2f} M rows/s  ({secs * 1e3:.0f} ms)")
    one = b[:1]
    secs = best_of(5, lambda: [fsq.digits_and_codes_from_bounded(one) for _ in range(10_000)])
    print(f"{'one window, bounded stage':<34} {secs / 10_000 * 1e6:7.1f} us per call")


if __name__ == "__main__":
    main()

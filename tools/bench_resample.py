"""Benchmark the band-limited resampler: cost per input and per output sample.

Feeds 9-channel noise in chunks (as the reader and the daemon do) through ``Resampler``
for common rate pairs and prints ns per input sample, ns per output sample and the filter
length. Numbers depend on the machine and its load: report them with the command.

    PYTHONPATH=$PWD python tools/bench_resample.py [--seconds 600] [--chunk 4096]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fsqd.chunk import SampleChunk
from fsqd.stream.resample import Resampler

PAIRS = [(104.0, 100.0), (208.0, 100.0), (416.0, 100.0), (833.0, 100.0), (1000.0, 100.0),
         (50.0, 100.0), (95.6, 100.0)]  # fmt: skip


def bench(rin: float, rout: float, seconds: float, chunk: int) -> tuple[float, float, int]:
    n = int(seconds * rin)
    rng = np.random.default_rng(0)
    t = np.arange(n) / rin
    x = rng.normal(size=(n, 9)).astype(np.float32)
    r = Resampler(rin, rout)
    outputs = 0
    t0 = time.perf_counter()
    for a in range(0, n, chunk):
        for p in r.push(SampleChunk(t[a : a + chunk], x[a : a + chunk], a == 0)):
            outputs += len(p)
    outputs += sum(len(p) for p in r.flush())
    elapsed = time.perf_counter() - t0
    return elapsed / n * 1e9, elapsed / max(outputs, 1) * 1e9, 2 * r.design.half_taps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds of data per pair")
    ap.add_argument("--chunk", type=int, default=4096, help="input samples per push")
    args = ap.parse_args()
    print(f"{args.seconds:g} s of 9-channel data per pair, chunks of {args.chunk} samples")
    print(f"{'pair':>16} {'taps':>5} {'ns/in sample':>13} {'ns/out sample':>14}")
    for rin, rout in PAIRS:
        per_in, per_out, taps = bench(rin, rout, args.seconds, args.chunk)
        print(f"{rin:>7g} -> {rout:<5g} {taps:>5} {per_in:>13.0f} {per_out:>14.0f}")


if __name__ == "__main__":
    main()

"""fsqd.hdrhistogram against the hdrhistogram package (hdrh, C codec) in one run.

    .venv/bin/python tools/bench_histogram.py [--calls 200000] [--repeat 5] [--days 30]

- ``record_value``: ns per call on log-normal latencies in microseconds, fsqd's and hdrh's,
  and fsqd's whole ``StageStats.record`` (lock, clamp, two histograms) as the daemon calls it
  about 17 times per window.
- One stats period as the daemon has it: 12 stages, each a period histogram (60 s at 10
  windows/s: 600 values) and a cumulative one (``--days`` of them, 10 values/s): 24
  histograms to summarise (p50/p90/p99/p99.9/max), encode, and for a subscriber decode.

Every figure is the best of ``--repeat`` runs. hdrh is optional: without it only fsqd's
figures print.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fsqd.hdrhistogram import HdrHistogram
from fsqd.metrics import DIGITS, HIGH_US, LOW_US, PERCENTILES, StageStats

try:
    from hdrh.histogram import HdrHistogram as Hdrh
except ImportError:
    Hdrh = None

# Typical medians per stage, microseconds (acquire .. e2e).
STAGE_MEDIANS_US = [900, 700, 60, 40, 30, 25, 35, 400, 20, 15, 9_000, 12_000]


def best_ns(fn: Callable[[], object], repeat: int) -> int:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return min(times)


def latencies(rng: np.random.Generator, median_us: float, n: int) -> np.ndarray:
    return np.clip(rng.lognormal(np.log(median_us), 0.6, n), LOW_US, HIGH_US).astype(np.int64)


def period_histograms(cls: Any, rng: np.random.Generator, days: float) -> list[Any]:
    out = []
    per_day = 10 * 86_400
    for median in STAGE_MEDIANS_US:
        period = cls(LOW_US, HIGH_US, DIGITS)
        for v in latencies(rng, median, 600).tolist():
            period.record_value(v)
        # A million draws stand for the days' values: the same buckets filled, counts scaled.
        cumulative = cls(LOW_US, HIGH_US, DIGITS)
        values, counts = np.unique(latencies(rng, median, 1_000_000), return_counts=True)
        scale = max(1, round(days * per_day / 1_000_000))
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            cumulative.record_value(v, c * scale)
        out += [period, cumulative]
    return out


def bench_record(cls: Any, values: list[int], repeat: int) -> float:
    def run() -> None:
        h = cls(LOW_US, HIGH_US, DIGITS)
        record = h.record_value
        for v in values:
            record(v)

    return best_ns(run, repeat) / len(values)


def bench_period(cls: Any, hists: list[Any], repeat: int) -> dict[str, float]:
    blobs = [h.encode() for h in hists]
    pct = list(PERCENTILES)
    return {
        "summaries": best_ns(lambda: [h.get_percentile_to_value_dict(pct) for h in hists], repeat),
        "encode": best_ns(lambda: [h.encode() for h in hists], repeat),
        "decode": best_ns(lambda: [cls.decode(b) for b in blobs], repeat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--days", type=float, default=30.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    values = latencies(rng, 1_500, args.calls).tolist()
    libs: list[tuple[str, Any]] = [("fsqd", HdrHistogram)] + ([("hdrh", Hdrh)] if Hdrh else [])

    print(f"record_value, {args.calls:,} log-normal values (median 1.5 ms), ns per call:")
    record_ns = {name: bench_record(cls, values, args.repeat) for name, cls in libs}
    for name, ns in record_ns.items():
        print(f"  {name:<6} {ns:8.0f}")
    if "hdrh" in record_ns:
        print(f"  fsqd / hdrh: {record_ns['fsqd'] / record_ns['hdrh']:.2f}")
    stage = StageStats("e2e")
    elapsed = [v * 1000 for v in values]

    def run_stage() -> None:
        for ns in elapsed:
            stage.record(ns)

    per = best_ns(run_stage, args.repeat) / len(values)
    print(f"  StageStats.record (lock + 2 histograms): {per:.0f} ns; 17 per window at 10/s: "
          f"{per * 170 / 1e7:.4f} % of a core")  # fmt: skip

    print(f"\none stats period: 24 histograms (12 stages x period/cumulative, {args.days:g} days)")
    print(f"  {'':<6} {'summaries':>10} {'encode':>10} {'decode':>10}  (ms for all 24)")
    seed = int(rng.integers(2**32))
    blobs: dict[str, list[bytes]] = {}
    for name, cls in libs:
        hists = period_histograms(cls, np.random.default_rng(seed), args.days)
        times = bench_period(cls, hists, args.repeat)
        blobs[name] = [h.encode() for h in hists]
        print(
            f"  {name:<6} {times['summaries'] / 1e6:>10.2f} {times['encode'] / 1e6:>10.2f} "
            f"{times['decode'] / 1e6:>10.2f}"
        )
    print(f"  the 24 blobs: {sum(map(len, blobs['fsqd'])):,} bytes of base64")
    if "hdrh" in blobs:
        same = sum(a == b for a, b in zip(blobs["fsqd"], blobs["hdrh"], strict=True))
        print(f"  identical blobs, fsqd vs hdrh: {same}/{len(blobs['fsqd'])}")


if __name__ == "__main__":
    main()

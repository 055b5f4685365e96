"""Cost of code-usage health per window, and of one drift check.

Feeds ``CodeHealth`` the way the daemon does (one ``observe`` per inference batch) with
codes drawn from a 4800-code book (the bundled model's), a reference of ``--reference``
codes and a sliding window of ``--windows`` windows, and prints microseconds per window
(the drift checks included, one every ``windows // 2``) and per check on its own.

    PYTHONPATH=. python tools/bench_health.py [--windows 600] [--reference 400] [--batch 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fsqd.behaviour.health import CodeHealth
from fsqd.model.calibration import CodeReference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=600)
    ap.add_argument("--reference", type=int, default=400)
    ap.add_argument("--batch", type=int, default=1, help="windows per observe() call")
    ap.add_argument("--n", type=int, default=200_000, help="windows fed")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    codes = np.sort(rng.choice(4800, args.reference, replace=False))
    counts = rng.integers(1, 500, args.reference)
    ref = CodeReference(
        codes=tuple(int(c) for c in codes),
        counts=tuple(int(c) for c in counts),
        perplexity=0.0,
        drift_threshold=0.2,
        drift_windows=args.windows,
    )
    p = counts / counts.sum()
    stream = np.where(rng.random(args.n) < 0.95, rng.choice(codes, args.n, p=p),
                      rng.integers(0, 4800, args.n)).astype(np.int64)  # fmt: skip
    health = CodeHealth(ref)
    batches = [stream[i : i + args.batch].tolist() for i in range(0, args.n, args.batch)]
    t0 = time.perf_counter()
    for b in batches:
        health.observe(b)
    per_window = (time.perf_counter() - t0) / args.n * 1e6
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        health.window_jsd()
    per_check = (time.perf_counter() - t0) / reps * 1e6
    period = health.roll()
    print(
        f"windows {args.windows}, reference {args.reference} codes, batch {args.batch}: "
        f"{per_window:.2f} us per window (checks included), {per_check:.1f} us per check; "
        f"last jsd {health.jsd:.3f}, {period.checks} checks"
    )


if __name__ == "__main__":
    main()

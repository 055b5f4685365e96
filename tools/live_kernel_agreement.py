"""What the live resampling kernel costs in codes: agreement between kernels on one input.

The simulator's animal sampled at an LSM6DSOX's 104.17 Hz (its clock ``--drift`` off as
well), stamped with the true sample times, goes through ``WindowStream`` three ways and the
bundled model (or ``--model``):

- ``4-tap``: the live kernel before linear interpolation (short Kaiser sinc, K = 2);
- ``linear``: the live kernel for a chip whose own low-pass ends below 50 Hz (K = 1);
- ``full``: the band-limited resampler replay uses (K = 27 at 104 -> 100 Hz).

It prints, per seed and over all seeds, the share of windows whose FSQ code (and head label)
is the same between pairs of paths. The windows are the same grid in all three (the
resampler places outputs by time), so they pair one to one.

    PYTHONPATH=$PWD python tools/live_kernel_agreement.py --seeds 1 2 3 --seconds 300
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fsqd.chunk import SampleChunk
from fsqd.model.package import load_package
from fsqd.pipeline import CodePipeline, WindowStream
from fsqd.sim import SimConfig, Simulator
from fsqd.stream.windows import WindowBatch
from fsqd.types import CodeBatch

CHIP_HZ = 6667 / 64  # the LSM6DSOX's 104 Hz setting
PATHS = {
    "4-tap": {"low_latency": True, "band_limit_hz": None},
    "linear": {"low_latency": True, "band_limit_hz": 33.0},
    "full": {"low_latency": False, "band_limit_hz": None},
}


def windows(
    pipeline: CodePipeline, t: np.ndarray, x: np.ndarray, chunk: int, **kw: object
) -> tuple[np.ndarray, CodeBatch]:
    stream = WindowStream(
        pipeline.package,
        CHIP_HZ,
        hop=10,
        track_clock=True,
        **kw,  # type: ignore[arg-type]
    )
    out: list[WindowBatch] = []
    for a in range(0, len(t), chunk):
        out += stream.push(SampleChunk(t[a : a + chunk], x[a : a + chunk], a == 0))
    out += stream.flush()
    batch = WindowBatch(
        np.concatenate([b.x for b in out]),
        np.concatenate([b.t_start for b in out]),
        np.concatenate([b.t_end for b in out]),
    )
    return batch.t_end, pipeline.encode_windows(batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--drift", type=float, default=0.002, help="the chip clock's error")
    ap.add_argument("--model", help="model package (default: the bundled one)")
    args = ap.parse_args()

    pkg = load_package(args.model)
    pipeline = CodePipeline(pkg, threads=1)
    pairs = [("linear", "4-tap"), ("linear", "full"), ("4-tap", "full")]
    totals = {p: [0, 0, 0] for p in pairs}  # same code, same label, windows
    print(f"model {pkg.label}, {CHIP_HZ * (1 + args.drift):.3f} Hz -> 100 Hz, hop 10")
    for seed in args.seeds:
        rate = CHIP_HZ * (1 + args.drift)
        sim = Simulator(SimConfig(rate_hz=rate, devices=pkg.card.devices, seed=seed))
        s = sim.read(int(args.seconds * rate))
        t = 1.7e9 + s.t
        res = {name: windows(pipeline, t, s.x, 5, **kw) for name, kw in PATHS.items()}
        line = [f"seed {seed}:"]
        for a, b in pairs:
            (ta, ca), (tb, cb) = res[a], res[b]
            n = min(len(ta), len(tb))
            assert np.allclose(ta[:n], tb[:n]), "the paths cut different windows"
            same = int((ca.index[:n] == cb.index[:n]).sum())
            lab = n if ca.label_id is None else int((ca.label_id[:n] == cb.label_id[:n]).sum())
            tot = totals[(a, b)]
            tot[0] += same
            tot[1] += lab
            tot[2] += n
            line.append(f"{a} vs {b} codes {100 * same / n:.1f} % labels {100 * lab / n:.1f} %;")
        print(" ".join(line), f"({n} windows)", flush=True)
    for (a, b), (same, lab, n) in totals.items():
        print(
            f"all seeds, {a} vs {b}: codes {100 * same / n:.2f} %, labels {100 * lab / n:.2f} % "
            f"of {n} windows"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

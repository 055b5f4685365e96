"""Encoder throughput: blocking batches vs batches submitted ahead (NPU works while the host
does FSQ), on the backend ``open_encoder`` picks.

    python tools/bench_hailo.py PKG [--backend auto|hailo|onnx] [--batch 64] [--batches 50]
    python tools/bench_hailo.py --fake        # through the test fake (no NPU timing!)

On a Pi 5 with a Hailo-8 run it with the package that holds encoder.hef. With ``--fake`` the
"NPU" is onnxruntime behind the fake HailoRT API: the numbers show the overhead of the
backend's plumbing, not the chip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _fake_package(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "fake_hailo"))
    sys.path.insert(0, str(ROOT / "tests"))
    from hailo_support import write_fake_hef

    from fsqd.model.package import load_package

    return write_fake_hef(load_package(None), tmp / "pkg").path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", type=Path)
    ap.add_argument("--backend", default="auto", choices=["auto", "hailo", "onnx"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--fake", action="store_true", help="use the test fake of HailoRT")
    args = ap.parse_args()

    from fsqd.backends.select import encoder_stats, open_encoder
    from fsqd.fsq import FSQ
    from fsqd.model.package import load_package

    with tempfile.TemporaryDirectory() as d:
        path = _fake_package(Path(d)) if args.fake else args.package
        pkg = load_package(path)
        enc = open_encoder(pkg, args.backend)
        fsq = FSQ(pkg.card.levels)
        shape = tuple(int(v) for v in pkg.card.input.shape[1:] if v)
        rng = np.random.default_rng(0)
        xs = [
            rng.standard_normal((args.batch, *shape)).astype(np.float32)
            for _ in range(args.batches)
        ]
        try:
            enc(xs[0])  # warm up
            t0 = time.perf_counter()
            for x in xs:
                fsq.indices_from_bounded(enc(x))
            blocking = time.perf_counter() - t0
            submit = getattr(enc, "submit", None)
            ahead = None
            if submit is not None:
                t0 = time.perf_counter()
                pending = submit(xs[0])
                for x in xs[1:]:
                    nxt = submit(x)  # the next batch runs while FSQ handles this one
                    fsq.indices_from_bounded(pending.result())
                    pending = nxt
                fsq.indices_from_bounded(pending.result())
                ahead = time.perf_counter() - t0
            n = args.batch * args.batches
            print(f"backend {enc.name}, {args.batches} batches of {args.batch} windows {shape}")
            print(f"blocking:        {n / blocking:10.0f} windows/s")
            if ahead is not None:
                print(f"submitted ahead: {n / ahead:10.0f} windows/s")
            print(f"stats: {encoder_stats(enc)}")
        finally:
            enc.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

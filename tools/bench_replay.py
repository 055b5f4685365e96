"""Benchmark: the whole replay pipeline against raw batched onnxruntime inference.

Replays one hour of simulated 100 Hz 9-axis data (CSV) with hop 10 through the bundled
model, and in the same run times raw ``InferenceSession.run`` of the same encoder on the
same windows in batches of the same size. The pipeline (parse, window, normalise, infer,
FSQ, head, JSON) should reach at least 80 % of the raw inference throughput.

    python tools/bench_replay.py [--minutes 60] [--rounds 3]

Prints windows/s for both and their ratio; rounds alternate the two so machine noise
hits both alike, and the best round of each counts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from fsqd.cli import main as fsqd_main
from fsqd.model.layout import InputLayout
from fsqd.model.package import load_package
from fsqd.pipeline import WindowStream
from fsqd.sensors.files import ReadOptions, open_recording
from fsqd.sensors.sim import SimConfig, simulate, write_csv
from fsqd.service.replay import BATCH

HOP = 10


def model_windows(csv: Path) -> np.ndarray:
    """The exact encoder inputs replay builds, prepared outside the clock."""
    pkg = load_package(None)
    card = pkg.card
    stream = WindowStream(pkg, card.sample_rate_hz, hop=HOP)
    rec = open_recording(csv, ReadOptions(channels=card.channel_names, devices=card.devices))
    layout = InputLayout(card)
    parts = [layout(b.x) for c in rec.chunks() for b in stream.push(c)]
    return np.concatenate(parts)


def time_raw(x: np.ndarray, threads: int | None) -> float:
    from fsqd.backends.onnx import open_session

    pkg = load_package(None)
    sess = open_session(pkg.encoder_onnx, threads)
    name, out = pkg.card.input.name, [pkg.card.output.name]
    sess.run(out, {name: x[:BATCH]})  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        sess.run(out, {name: x[i : i + BATCH]})
    return time.perf_counter() - t0


def time_replay(path: Path, out: Path, threads: int | None) -> tuple[float, float]:
    """(seconds end to end, seconds from the first sample read to the last line written)."""
    err = io.StringIO()
    rate = ["--rate", "100"] if path.suffix == ".npy" else []
    rate += ["--threads", str(threads)] if threads else []
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = fsqd_main(["replay", str(path), "--hop", str(HOP), "--out", str(out), *rate])
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"replay failed: {err.getvalue()}")
    # The summary's own clock starts after the model is loaded and its sessions built.
    m = re.search(r"of data in ([0-9.]+) s", err.getvalue())
    if m is None:
        raise SystemExit(f"no summary in: {err.getvalue()}")
    return elapsed, float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = Path(tmp) / "hour.csv", Path(tmp) / "codes.jsonl"
        rec = simulate(args.minutes * 60, SimConfig(seed=1))
        write_csv(rec, csv, label_column=False)
        npy = Path(tmp) / "hour.npy"
        np.save(npy, rec.x)
        x = model_windows(csv)
        n = len(x)
        raw, full, from_npy = [], [], []
        for _ in range(args.rounds):
            raw.append(time_raw(x, args.threads))
            full.append(time_replay(csv, out, args.threads))
            from_npy.append(time_replay(npy, out, args.threads))
        lines = sum(1 for _ in out.open())
        if lines != n:
            raise SystemExit(f"replay wrote {lines} lines for {n} windows")
    raw_rate = n / min(raw)
    print(
        f"data        {args.minutes:g} min at 100 Hz, hop {HOP}: {n} windows, batch {BATCH}, "
        f"{os.cpu_count()} cores, onnxruntime threads {args.threads or 'default'}"
    )
    print(f"raw infer   {raw_rate:9.0f} windows/s  (best of {args.rounds}: {min(raw):.2f} s)")
    for name, times in (("replay csv", full), ("replay npy", from_npy)):
        for what, best in (
            ("end to end", min(t[0] for t in times)),
            ("streaming", min(t[1] for t in times)),
        ):
            rate = n / best
            print(
                f"{name}  {rate:9.0f} windows/s  {what:<10} (best of {args.rounds}: {best:.2f} s)"
                f" = {100 * rate / raw_rate:.1f} % of raw inference"
            )


if __name__ == "__main__":
    main()

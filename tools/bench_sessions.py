"""Measure: one 2-thread onnxruntime session vs two 1-thread sessions on alternate batches.

Replay runs the encoder while a second thread parses and windows the file. With one session
of 2 intra-op threads, a step stalls whenever the parser takes one of its cores; two
1-thread sessions, each running every other batch (results put back in order), lose only
one session's progress. This prints windows/s for both, alone and with a real parse thread
(the CSV reader and WindowStream on an hour of data) competing for the cores.

    PYTHONPATH=$PWD python tools/bench_sessions.py [--windows 36000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fsqd.backends.onnx import open_session
from fsqd.commands.replay import BATCH
from fsqd.model.package import load_package
from fsqd.pipeline import WindowStream
from fsqd.recordings import ReadOptions, open_recording
from fsqd.sim import SimConfig, simulate, write_csv


def one_session(sess: Any, name: str, out: list[str], x: np.ndarray) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        sess.run(out, {name: x[i : i + BATCH]})
    return time.perf_counter() - t0


def two_sessions(sessions: list[Any], name: str, out: list[str], x: np.ndarray) -> float:
    starts = list(range(0, len(x), BATCH))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        # Batch k goes to session k % 2; each session runs its batches in order.
        def run(which: int) -> list[Any]:
            return [sessions[which].run(out, {name: x[s : s + BATCH]})[0] for s in starts[which::2]]

        a, b = pool.map(run, (0, 1))
    merged = [r for pair in zip(a, b, strict=False) for r in pair] + a[len(b) :]
    assert len(merged) == len(starts)
    return time.perf_counter() - t0


def parse_load(csv: Path, stop: threading.Event) -> None:
    """The replay producer's work, over and over, until stopped."""
    pkg = load_package(None)
    card = pkg.card
    while not stop.is_set():
        stream = WindowStream(pkg, card.sample_rate_hz, hop=10, copy_windows=False)
        rec = open_recording(csv, ReadOptions(channels=card.channel_names))
        for chunk in rec.chunks():
            stream.push(chunk)
            if stop.is_set():
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=36000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pkg = load_package(None)
    name, out = pkg.card.input.name, [pkg.card.output.name]
    x = np.random.default_rng(0).normal(size=(args.windows, 9, 1, 100)).astype(np.float32)
    single = open_session(pkg.encoder_onnx, 2)
    pair = [open_session(pkg.encoder_onnx, 1), open_session(pkg.encoder_onnx, 1)]
    for s in (single, *pair):
        s.run(out, {name: x[:BATCH]})  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "hour.csv"
        write_csv(simulate(3600, SimConfig(seed=1)), csv, label_column=False)
        for load in (False, True):
            stop = threading.Event()
            parser = threading.Thread(target=parse_load, args=(csv, stop), daemon=True)
            if load:
                parser.start()
            one, two = [], []
            for _ in range(args.rounds):
                one.append(one_session(single, name, out, x))
                two.append(two_sessions(pair, name, out, x))
            stop.set()
            if load:
                parser.join()
            what = "with a parse thread" if load else "alone"
            print(
                f"{what:<20} one 2-thread session {args.windows / min(one):8.0f} windows/s, "
                f"two 1-thread sessions {args.windows / min(two):8.0f} windows/s "
                f"(best of {args.rounds})"
            )


if __name__ == "__main__":
    main()

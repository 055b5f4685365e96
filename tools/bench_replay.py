"""Benchmark `fsqd replay` as a user runs it, against raw batched onnxruntime inference.

Hour mode (default): one hour of simulated 100 Hz 9-axis CSV at hop 10. Each round times
raw ``InferenceSession.run`` of the same encoder on the same windows (built outside the
clock, batches of replay's size) and then the whole ``python -m fsqd replay`` process as a
subprocess, launch to exit, as a user sees it. Rounds alternate so machine noise hits both.
Prints windows/s, replay / raw of the best rounds, and the median (and range) of each
round's own replay / raw: on a shared machine the paired ratio is the steadier number.
``--vs-root DIR`` replays with a second tree in every round too (in turn with the first),
so two versions are compared under the same load.

The replayed trees are byte-compiled first (``compileall``), as an installed package is:
without it a shell with PYTHONDONTWRITEBYTECODE set compiles fsqd's modules from source on
every launch (0.1-0.2 s here). ``--no-compile`` leaves them as they are.

Day mode (``--day``): 24 h of 100 Hz CSV (the simulated hour tiled with continuous
timestamps) replayed at the card's default hop; prints wall time and the child's peak RSS.

    PYTHONPATH=$PWD python tools/bench_replay.py [--minutes 60] [--rounds 3] [--model PKG]
        [--vs-root OLD_TREE]
    PYTHONPATH=$PWD python tools/bench_replay.py --day [--hours 24]
    (--root DIR replays with another checkout, e.g. `git archive` of an older commit)

Numbers depend on the machine and on what else runs on it: report them with the command.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fsqd.commands.replay import BATCH
from fsqd.model.layout import InputLayout
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import WindowStream
from fsqd.recordings import ReadOptions, open_recording
from fsqd.sim import SimConfig, simulate

HOP = 10
ROOT = Path(__file__).resolve().parent.parent


def write_csv(path: Path, x: np.ndarray, hours: float = 0.0) -> int:
    """``x`` as 100 Hz CSV, tiled to ``hours`` when given; returns the rows written."""
    header = "t," + ",".join(("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")) + "\n"
    values = [",".join(f"{v:.5g}" for v in row) for row in x.tolist()]
    total = round(hours * 360_000) if hours else len(values)
    with path.open("w") as fh:
        fh.write(header)
        for start in range(0, total, len(values)):
            n = min(len(values), total - start)
            stamps = (np.arange(start, start + n) / 100).tolist()
            fh.write("".join(f"{t:.2f},{v}\n" for t, v in zip(stamps, values[:n], strict=True)))
    return total


def model_windows(pkg: ModelPackage, csv: Path) -> np.ndarray:
    """The exact encoder inputs replay builds, prepared outside the clock."""
    card = pkg.card
    stream = WindowStream(pkg, card.sample_rate_hz, hop=HOP)
    rec = open_recording(csv, ReadOptions(channels=card.channel_names, devices=card.devices))
    layout = InputLayout(card)
    parts = [layout(b.x) for c in rec.chunks() for b in stream.push(c)]
    return np.concatenate(parts)


def time_raw(pkg: ModelPackage, x: np.ndarray) -> float:
    from fsqd.backends.onnx import open_session

    sess = open_session(pkg.encoder_onnx, None)
    name, out = pkg.card.input.name, [pkg.card.output.name]
    sess.run(out, {name: x[:BATCH]})  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        sess.run(out, {name: x[i : i + BATCH]})
    return time.perf_counter() - t0


# `python -m fsqd replay ...` (``main()`` reads sys.argv, as the console script does), plus
# the process's own peak RSS (VmHWM) on stderr, also when replay ends with os._exit: the
# rusage of a child forked from this (large) process would count the fork's pages too.
CHILD = (
    "import os, sys\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    print('VmHWM', status.split('VmHWM:')[1].split()[0], file=sys.stderr, flush=True)\n"
    "_exit = os._exit\n"
    "def exit_after_peak(code):\n"
    "    peak()\n"
    "    _exit(code)\n"
    "os._exit = exit_after_peak\n"
    "from fsqd.cli import main\n"
    "code = main()\n"
    "peak()\n"
    "sys.exit(code)\n"
)


def run_replay(args: list[str], root: Path = ROOT) -> tuple[float, float, str]:
    """(wall seconds launch to exit, peak RSS in MB, stderr) of ``fsqd replay``."""
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, "-c", CHILD, "replay", *args]
    t0 = time.perf_counter()
    # cwd too: `python -c` puts the working directory first on sys.path.
    proc = subprocess.run(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    err = proc.stderr.decode()
    if proc.returncode != 0:
        raise SystemExit(f"replay failed ({proc.returncode}): {err}")
    peak_kb = float(err.rsplit("VmHWM", 1)[1].split()[0])
    return wall, peak_kb / 1024, err


def hour(args: argparse.Namespace) -> None:
    pkg = load_package(args.model)
    devices = pkg.card.devices
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = Path(tmp) / "hour.csv", Path(tmp) / "codes.jsonl"
        x = simulate(args.minutes * 60, SimConfig(seed=1)).x
        write_csv(csv, x)
        x_windows = model_windows(pkg, csv) if devices == 1 else None
        replay_args = [str(csv), "--hop", str(HOP), "--out", str(out)]
        if devices > 1:
            replay_args += ["--fill", "duplicate"]
            x_windows = _filled_windows(pkg, csv)
        if args.model:
            replay_args += ["--model", str(args.model)]
        assert x_windows is not None
        n = len(x_windows)
        roots = [args.root] if args.vs_root is None else [args.root, args.vs_root]
        raw: list[float] = []
        full: dict[Path, list[float]] = {r: [] for r in roots}
        rss: dict[Path, list[float]] = {r: [] for r in roots}
        for k in range(args.rounds):
            raw.append(time_raw(pkg, x_windows))
            for root in roots if k % 2 == 0 else roots[::-1]:
                wall, peak, _ = run_replay(replay_args, root)
                full[root].append(wall)
                rss[root].append(peak)
                lines = sum(1 for _ in out.open())
                if lines != n:
                    raise SystemExit(f"replay wrote {lines} lines for {n} windows")
    raw_rate = n / min(raw)
    print(
        f"data        {args.minutes:g} min at 100 Hz, hop {HOP}: {n} windows, model "
        f"{pkg.label} ({devices} device(s)), batch {BATCH}, {os.cpu_count()} cores"
    )
    print(
        f"raw infer   {raw_rate:9.0f} windows/s  (best of {args.rounds}: {min(raw):.2f} s; "
        f"all: {_seconds(raw)})"
    )
    for root in roots:
        walls = full[root]
        paired = sorted(r / w for r, w in zip(raw, walls, strict=True))
        print(f"tree        {root}")
        print(
            f"replay      {n / min(walls):9.0f} windows/s  whole process, launch to exit "
            f"(best of {args.rounds}: {min(walls):.2f} s; all: {_seconds(walls)}), "
            f"peak RSS {max(rss[root]):.0f} MB"
        )
        print(
            f"ratio       {min(raw) / min(walls):.2f} of raw inference (best rounds); "
            f"per round: median {statistics.median(paired):.2f}, "
            f"range {paired[0]:.2f}-{paired[-1]:.2f}"
        )
    if args.vs_root is not None:
        pairs = sorted(a / b for a, b in zip(full[args.root], full[args.vs_root], strict=True))
        print(
            f"trees       replay wall of the first / the second, per round: median "
            f"{statistics.median(pairs):.2f}, range {pairs[0]:.2f}-{pairs[-1]:.2f}"
        )


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def compile_tree(root: Path) -> None:
    """Byte-compile ``root``'s fsqd package, as installing it would."""
    if not compileall.compile_dir(root / "fsqd", quiet=1, workers=1):
        raise SystemExit(f"{root}/fsqd: compileall failed")


def _filled_windows(pkg: ModelPackage, csv: Path) -> np.ndarray:
    card = pkg.card
    stream = WindowStream(pkg, card.sample_rate_hz, hop=HOP)
    options = ReadOptions(channels=card.channel_names, devices=card.devices, fill="duplicate")
    rec = open_recording(csv, options)
    layout = InputLayout(card)
    return np.concatenate([layout(b.x) for c in rec.chunks() for b in stream.push(c)])


def day(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = Path(tmp) / "day.csv", Path(tmp) / "codes.jsonl"
        x = simulate(3600, SimConfig(seed=1)).x
        rows = write_csv(csv, x, hours=args.hours)
        size = csv.stat().st_size / 1e6
        walls, rss = [], []
        for _ in range(args.rounds):
            wall, peak, _ = run_replay([str(csv), "--out", str(out)], args.root)
            walls.append(wall)
            rss.append(peak)
        lines = sum(1 for _ in out.open())
    print(
        f"day         {args.hours:g} h at 100 Hz ({rows} rows, {size:.0f} MB CSV), default hop: "
        f"{lines} windows"
    )
    print(
        f"replay      wall {min(walls):.1f} s (all: {', '.join(f'{w:.1f}' for w in walls)}), "
        f"peak RSS {max(rss):.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", type=Path, default=None, help="model package (default: bundled)")
    ap.add_argument("--day", action="store_true", help="a day of data at the default hop")
    ap.add_argument("--hours", type=float, default=24.0, help="with --day: hours of data")
    ap.add_argument(
        "--root", type=Path, default=ROOT, help="source tree to replay with (to compare versions)"
    )
    ap.add_argument(
        "--vs-root", type=Path, default=None, help="with the hour: a second tree, in every round"
    )
    ap.add_argument(
        "--no-compile", action="store_true", help="replay the trees without byte-compiling them"
    )
    args = ap.parse_args()
    if not args.no_compile:
        for root in (args.root, args.vs_root):
            if root is not None:
                compile_tree(root)
    if args.day:
        day(args)
    else:
        hour(args)


if __name__ == "__main__":
    main()

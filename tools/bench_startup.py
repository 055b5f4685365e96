"""Start-up time and peak RSS of ``fsqd run`` as a user starts it, under ``/usr/bin/time -v``.

Runs the command ``--runs`` times and prints each run's wall time, peak RSS and whether
``onnx`` was imported (``python -X importtime`` on one extra run), then min and median.
Start-up is the wall time minus ``--duration``: the run stops ``--duration`` after the
daemon is up, so what is left is interpreter start, imports, model open and shutdown.

    python tools/bench_startup.py --runs 3
    # = /usr/bin/time -v fsqd run --config configs/demo.toml --duration 5s --stdout
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one run of ``cmd`` under /usr/bin/time -v."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", *cmd],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if wall is None or rss is None:
        sys.exit(f"cannot read /usr/bin/time's report:\n{done.stderr[-2000:]}")
    h, m, s = wall.groups()
    return int(h or 0) * 3600 + int(m) * 60 + float(s), int(rss.group(1))


def imports_onnx(cmd: list[str]) -> bool:
    """Does the run import the ``onnx`` package? (``-X importtime`` lists every import.)"""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd],  # the same entry point as the runs
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    return any(line.rstrip().endswith("| onnx") for line in done.stderr.splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--config", default="configs/demo.toml")
    args = ap.parse_args()
    fsqd = str(Path(sys.executable).with_name("fsqd"))
    cmd = [fsqd, "run", "--config", args.config, "--duration", f"{args.duration:g}s", "--stdout"]
    print("command: /usr/bin/time -v " + " ".join(["fsqd", *cmd[1:]]))
    walls, rsss = [], []
    for i in range(args.runs):
        wall, rss = one_run(cmd)
        walls.append(wall)
        rsss.append(rss)
        print(
            f"run {i + 1}: wall {wall:.2f} s (start-up {wall - args.duration:.2f} s), "
            f"peak RSS {rss / 1024:.1f} MiB"
        )
    ups = [w - args.duration for w in walls]
    print(f"start-up  min {min(ups):.2f} s  median {statistics.median(ups):.2f} s")
    print(
        f"peak RSS  min {min(rsss) / 1024:.1f} MiB  median {statistics.median(rsss) / 1024:.1f} MiB"
    )
    print(f"imports onnx: {imports_onnx(cmd)}")


if __name__ == "__main__":
    main()

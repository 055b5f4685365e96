"""Where one `fsqd replay` run spends its time outside inference: start-up, CPU per thread,
and how long each onnxruntime session sat idle between its batches.

Runs the replay in this process (``fsqd.cli.main`` with the arguments given), with
onnxruntime's ``run`` calls and the first hand-over timed; the times are from this script's
start (the interpreter's own start-up, some 20-40 ms, comes before it). CPU per thread is
read from /proc when the encoder closes (Linux only); the parse thread has ended by then
and counts in "other". A session's idle gaps are the times between the end of one of its
runs and the start of its next: what the pipeline failed to keep it busy (or the machine
took the core away: compare with the busy time's CPU).

    PYTHONPATH=$PWD python tools/replay_breakdown.py replay hour.csv --hop 10 --out /tmp/o \\
        --fill duplicate --model PKG
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import itertools  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

import fsqd.backends.inflight as inflight  # noqa: E402
import fsqd.backends.onnx as onnx_backend  # noqa: E402
from fsqd.cli import main  # noqa: E402

IMPORTED = time.perf_counter() - T0
runs: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
marks: dict[str, float] = {}
threads_cpu: dict[str, float] = {}


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread, by its Python name (native threads by their own)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as fh:
            stat = fh.read()
        name = names.get(int(tid)) or "native " + stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def _patch() -> None:
    run = onnx_backend.OnnxEncoder._run
    close = onnx_backend.OnnxEncoder.close
    ahead = inflight.encode_ahead

    def timed_run(self: Any, session: Any, x: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        y = run(self, session, x)
        name = threading.current_thread().name
        runs[name].append((t0 - T0, time.perf_counter() - T0, time.thread_time() - c0))
        return y

    def closing(self: Any) -> None:
        if not threads_cpu:
            threads_cpu.update(_thread_cpu())
        close(self)

    def marked(*args: Any, **kw: Any) -> Any:
        marks.setdefault("first batch handed over", time.perf_counter() - T0)
        for n, out in enumerate(ahead(*args, **kw)):
            if n == 0:
                marks["first result"] = time.perf_counter() - T0
            yield out
        marks["last result"] = time.perf_counter() - T0

    onnx_backend.OnnxEncoder._run = timed_run  # type: ignore[method-assign]
    onnx_backend.OnnxEncoder.close = closing  # type: ignore[method-assign]
    inflight.encode_ahead = marked  # type: ignore[assignment]
    import fsqd.commands.replay as replay

    replay.encode_ahead = marked  # type: ignore[attr-defined]


def _report(wall: float) -> None:
    p = sys.stderr
    print("\n-- breakdown (seconds from this script's start) --", file=p)
    print(f"imports (fsqd.cli, backends)   {IMPORTED:7.3f}", file=p)
    for what, t in marks.items():
        print(f"{what:30s} {t:7.3f}", file=p)
    print(f"replay returned                {wall:7.3f}", file=p)
    sessions = {k: v for k, v in runs.items() if k.startswith("fsqd-onnx")}
    for name, r in sorted(sessions.items()):
        gaps = sorted(b[0] - a[1] for a, b in itertools.pairwise(r))
        busy = sum(e - s for s, e, _ in r)
        cpu = sum(c for _, _, c in r)
        p90, top = (gaps[int(0.9 * len(gaps))], gaps[-1]) if gaps else (0.0, 0.0)
        print(
            f"{name}: {len(r)} runs, busy {busy:.2f} s (cpu {cpu:.2f}), idle gaps "
            f"{sum(gaps):.3f} s (p90 {1e3 * p90:.1f} ms, max {1e3 * top:.1f})",
            file=p,
        )
    total = os.times()
    process = total.user + total.system
    named = {k: v for k, v in threads_cpu.items() if v > 0}
    print(f"cpu: process {process:.2f} s", file=p)
    for name, v in sorted(named.items(), key=lambda kv: -kv[1]):
        print(f"cpu: thread {name:16s} {v:6.2f} s", file=p)
    print(f"cpu: other (ended threads)     {process - sum(named.values()):6.2f} s", file=p)


def entry() -> int:
    _patch()
    code = main(sys.argv[1:])
    _report(time.perf_counter() - T0)
    return code


if __name__ == "__main__":
    sys.exit(entry())

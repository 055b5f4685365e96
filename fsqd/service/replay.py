"""`fsqd replay FILE`: a recorded IMU file through the same stages the live daemon runs.

reader (chunks) -> WindowStream (gaps, resample, normalise, windows) -> CodePipeline
(layout, encoder, FSQ, head) -> JSON lines; a summary with per-stage latencies on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from fsqd.backends.select import open_encoder
from fsqd.console import note
from fsqd.errors import DataError, UsageError
from fsqd.metrics import StageTimer
from fsqd.model.package import load_package
from fsqd.pipeline import CodePipeline, WindowStream, rates_match
from fsqd.prefetch import prefetch
from fsqd.sensors.files import ReadOptions, Recording, open_recording
from fsqd.sinks.jsonl import Output, write_lines
from fsqd.sinks.payload import LineFormatter
from fsqd.stream.chunk import SampleChunk
from fsqd.stream.resample import estimate_rate
from fsqd.stream.windows import WindowBatch

BATCH = 1024  # windows per inference call when replaying as fast as possible


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (v > 0 and math.isfinite(v)):
        raise UsageError(f"--speed must be 'max' or a positive factor, got {text!r}")
    return v


def _scale(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"--scale expects NAME=FACTOR pairs, got {part!r}")
    return out


class _Timed:
    """Iterate a recording's chunks, timing the reads as the 'read' stage."""

    def __init__(self, chunks: Iterator[SampleChunk], timer: StageTimer) -> None:
        self._it, self._timer = chunks, timer
        self.samples = 0

    def __iter__(self) -> Iterator[SampleChunk]:
        return self

    def __next__(self) -> SampleChunk:
        t0 = time.perf_counter_ns()
        chunk = next(self._it)
        self._timer.add("read", time.perf_counter_ns() - t0, len(chunk.t))
        self.samples += len(chunk.t)
        return chunk


def replay(args: argparse.Namespace) -> int:
    speed = _speed(args.speed)
    if not args.max_gap > 1:
        raise UsageError(f"--max-gap must be more than 1 sample period, got {args.max_gap}")
    pkg = load_package(args.model)
    card = pkg.card
    timer = StageTimer()
    encoder = open_encoder(pkg, getattr(args, "backend", "auto"), threads=args.threads)
    pipeline = CodePipeline(pkg, encoder, timer=timer)
    options = ReadOptions(
        channels=card.channel_names,
        devices=card.devices,
        time_column=args.time_column,
        columns=tuple(c.strip() for c in args.columns.split(",")) if args.columns else None,
        rate_hz=args.rate,
        scale=_scale(args.scale),
        fill=args.fill,
        skip_bad_rows=args.skip_bad_rows,
    )
    rec = open_recording(args.file, options)
    chunks = _Timed(iter(rec.chunks()), timer)
    first = next(chunks, None)
    if first is None or len(first.t) == 0:
        raise DataError(f"{args.file}: no samples")
    in_rate = args.rate or (estimate_rate(first.t) if len(first.t) > 1 else card.sample_rate_hz)
    if not rates_match(in_rate, card.sample_rate_hz):
        if args.no_resample:
            raise DataError(
                f"{args.file}: sample rate {in_rate:.4g} Hz is not the model's "
                f"{card.sample_rate_hz:g} Hz (--no-resample)"
            )
        note(f"{args.file}: resampling {in_rate:.4g} Hz -> {card.sample_rate_hz:g} Hz")
    stream = WindowStream(pkg, in_rate, hop=args.hop, max_gap_periods=args.max_gap, timer=timer)
    fmt = LineFormatter(pkg.label, pipeline.labels)
    seen: set[int] = set()
    seq = 0
    wall0 = time.perf_counter()
    t_first = float(first.t[0])
    t_last = t_first

    def emit(out: TextIO, batch: WindowBatch) -> None:
        nonlocal seq
        codes = pipeline.encode_windows(batch)
        with timer.stage("output", len(codes)):
            write_lines(out, fmt(seq, codes, batch.t_start, batch.t_end))
        seen.update(np.unique(codes.index).tolist())
        seq += len(codes)

    def windows() -> Iterator[WindowBatch]:
        nonlocal t_last
        for chunk in _chain(first, chunks):
            t_last = float(chunk.t[-1]) if len(chunk.t) else t_last
            yield from stream.push(chunk)

    with Output(args.out) as out:
        if speed is None:
            # Parse the next chunk while onnxruntime (which releases the GIL) infers this one,
            # in equal-sized batches: onnxruntime re-plans its memory for every new shape.
            pending = _Batcher(BATCH)
            for batch in prefetch(windows(), depth=4):
                for full in pending.add(batch):
                    emit(out, full)
            rest = pending.flush()
            if rest is not None:
                emit(out, rest)
        else:
            for batch in windows():
                for i in range(len(batch)):
                    # Paced: a window is due when its last sample would have arrived.
                    due = wall0 + (float(batch.t_end[i]) - t_first) / speed
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    emit(out, _slice(batch, i, i + 1))
                    out.flush()
    wall = time.perf_counter() - wall0
    if seq == 0:
        note(
            f"{args.file}: no stretch without a gap is as long as one window "
            f"({card.window} samples at {card.sample_rate_hz:g} Hz): no codes"
        )
    _summary(args.file, rec, chunks.samples, seq, len(seen), stream, timer, wall, t_last - t_first)
    return 0


class _Batcher:
    """Regroups window batches of any size into batches of exactly ``size`` windows."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[WindowBatch] = []
        self._n = 0

    def add(self, batch: WindowBatch) -> Iterator[WindowBatch]:
        self._parts.append(batch)
        self._n += len(batch)
        if self._n < self.size:
            return
        whole = _concat(self._parts)
        cut = self._n - self._n % self.size
        for i in range(0, cut, self.size):
            yield _slice(whole, i, i + self.size)
        self._parts = [_slice(whole, cut, self._n)] if cut < self._n else []
        self._n -= cut

    def flush(self) -> WindowBatch | None:
        if not self._n:
            return None
        whole = _concat(self._parts)
        self._parts, self._n = [], 0
        return whole


def _concat(parts: list[WindowBatch]) -> WindowBatch:
    if len(parts) == 1:
        return parts[0]
    return WindowBatch(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.t_start for p in parts]),
        np.concatenate([p.t_end for p in parts]),
    )


def _chain(first: SampleChunk, rest: Iterator[SampleChunk]) -> Iterator[SampleChunk]:
    yield first
    yield from rest


def _slice(b: WindowBatch, i: int, j: int) -> WindowBatch:
    return WindowBatch(b.x[i:j], b.t_start[i:j], b.t_end[i:j])


def _summary(
    path: Path,
    rec: Recording,
    samples: int,
    windows: int,
    distinct: int,
    stream: WindowStream,
    timer: StageTimer,
    wall: float,
    span: float,
) -> None:
    rate = windows / wall if wall > 0 else 0.0
    lines = [
        f"replayed {path}: {samples} samples, {span:.1f} s of data in {wall:.2f} s "
        f"({span / wall if wall > 0 else 0:.0f}x real time)",
        f"windows {windows}, distinct codes {distinct}, gaps {stream.gaps.gaps} "
        f"({stream.gaps.gap_seconds:.2f} s), bad rows skipped {rec.bad_rows}",
        f"throughput {rate:.0f} windows/s, {samples / wall if wall > 0 else 0:.0f} samples/s",
        timer.table(windows),
    ]
    print("\n".join(lines), file=sys.stderr)

"""`fsqd replay FILE`: a recorded IMU file through the same stages the live daemon runs.

reader (chunks) -> WindowStream (gaps, resample, normalise, windows) -> CodePipeline
(layout, encoder, FSQ, head) -> JSON lines; a summary with per-stage latencies on stderr.
``--segments FILE``: the behaviour segments too, from the daemon's tracker
(``fsqd.commands.segments_out``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import numpy as np
import numpy.typing as npt

from fsqd.backends.base import Encoder
from fsqd.backends.inflight import encode_ahead
from fsqd.backends.onnx import MAX_SESSIONS
from fsqd.backends.select import open_encoder
from fsqd.behaviour.tracker import TrackerSettings
from fsqd.chunk import SampleChunk
from fsqd.commands.replay_evaluate import evaluate_replayed, has_label_column
from fsqd.commands.segments_out import SegmentWriter
from fsqd.console import note
from fsqd.errors import DataError, FsqdError, UsageError
from fsqd.metrics import StageTimer
from fsqd.model.card import ModelCard, expected_input_shape
from fsqd.model.package import load_package
from fsqd.outfile import output_target
from fsqd.pipeline import CodePipeline, WindowStream, rates_match
from fsqd.prefetch import prefetch
from fsqd.recordings.base import ReadOptions, Recording
from fsqd.recordings.open import open_recording
from fsqd.sinks.batchlines import BatchLineFormatter
from fsqd.sinks.jsonl import Output, write_lines
from fsqd.stream.plausibility import Finding
from fsqd.stream.timebase import RateEstimate, check_rate, estimate_rate
from fsqd.stream.windows import WindowBatch
from fsqd.types import CodeBatch

BATCH = 256  # windows per inference call when replaying as fast as possible
PREFETCH_DEPTH = 4
# Batches handed to the encoder ahead of the one being read: two per onnxruntime session,
# so a session that finishes one starts its next at once instead of idling while the main
# thread takes the GIL back to finish the last one (FSQ, head, output) and submit another.
IN_FLIGHT = 2 * MAX_SESSIONS
# Encoder-layout batch buffers in rotation: more than can be alive at once (the prefetch
# queue, one waiting to go in, one being filled, the batches in flight, one being read).
POOL = PREFETCH_DEPTH + IN_FLIGHT + 4
RATE_AGREEMENT = 0.02  # --rate and the timestamps' fit may differ by this (clock error)
SPEED_RANGE = (1e-3, 1e6)  # --speed factors that make sense (and do not overflow a sleep)


@dataclass(frozen=True)
class ReplayOptions:
    """``fsqd replay``'s options; the text ones are parsed (and refused) by ``replay``."""

    file: Path  # CSV (with header), .npy or .npz
    model: Path | None = None  # model package (None: bundled)
    out: Path | None = None  # JSON lines here (None: stdout)
    hop: int | None = None  # samples between windows (None: the card's)
    speed: str = "max"  # 'max' (batched, as fast as possible) or a factor of real time
    time_column: str | None = None
    rate: float | None = None  # Hz: files without timestamps; else checked against them
    time_unit: str | None = None  # s, ms, us, ns or iso (None: detected)
    strict: bool = False  # implausible values (wrong units) are errors
    columns: str | None = None  # file columns in the card's channel order, comma-separated
    scale: str | None = None  # per-channel factors, e.g. 'a*=0.00980665', comma-separated
    fill: Literal["duplicate"] | None = None  # device 0 copied to missing devices
    no_resample: bool = False  # refuse files whose rate is not the model's
    skip_bad_rows: bool = False
    max_gap: float = 2.5  # a step over this many sample periods is a gap
    threads: int | None = None  # onnxruntime threads in total (None: usable cores)
    backend: str = "auto"
    segments: Path | None = None  # behaviour segments here (.csv: CSV, else JSON lines)
    evaluate: bool = True  # a labelled CSV: the evaluate report on stderr at the end


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    lo, hi = SPEED_RANGE
    if not (lo <= v <= hi):
        raise UsageError(f"--speed must be 'max' or a factor from {lo:g} to {hi:g}, got {text!r}")
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


def _input_rate(
    args: ReplayOptions, rec: Recording, first: SampleChunk
) -> tuple[float, RateEstimate | None]:
    """The input's rate: fitted on the first chunk's timestamps, or --rate without them.

    With both, they must agree within RATE_AGREEMENT: a disagreement means a wrong unit, a
    wrong --rate or a wrong file, and guessing which would give confident wrong codes.
    """
    where = str(args.file)
    if not rec.timed and args.rate is not None:
        check_rate(float(args.rate), where)
        return float(args.rate), None
    if len(first.t) < 2:
        raise DataError(f"{where}: only one sample in the first block; cannot learn the rate")
    try:
        est = estimate_rate(first.t, args.max_gap)
    except FsqdError as e:
        raise DataError(f"{where}: {e}") from None
    check_rate(est.rate_hz, where)
    if args.rate is not None and abs(args.rate - est.rate_hz) > RATE_AGREEMENT * est.rate_hz:
        raise DataError(
            f"{where}: --rate {args.rate:g} Hz disagrees with the timestamps' {est.rate_hz:.6g} Hz "
            f"({rec.time_unit}); drop --rate, or fix the time unit with --time-unit"
        )
    return est.rate_hz, est


def replay(args: ReplayOptions) -> int:
    speed = _speed(args.speed)
    if not args.max_gap > 1:
        raise UsageError(f"--max-gap must be more than 1 sample period, got {args.max_gap}")
    pkg = load_package(args.model)
    card = pkg.card
    if args.segments is not None:
        if card.head is None:
            raise UsageError(f"--segments: {pkg.label} has no head, so no behaviours")
        output_target(args.segments)  # a directory, say: refused before the replay, not after
    timer = StageTimer()
    options = ReadOptions(
        channels=card.channel_names,
        devices=card.devices,
        time_column=args.time_column,
        columns=tuple(c.strip() for c in args.columns.split(",")) if args.columns else None,
        rate_hz=args.rate,
        scale=_scale(args.scale),
        fill=args.fill,
        skip_bad_rows=args.skip_bad_rows,
        time_unit=args.time_unit,
    )
    rec = open_recording(args.file, options)
    chunks = _Timed(iter(rec.chunks()), timer)
    first = next(chunks, None)
    if first is None or len(first.t) == 0:
        raise DataError(f"{args.file}: no samples")
    in_rate, est = _input_rate(args, rec, first)
    resample = not rates_match(in_rate, card.sample_rate_hz)
    if resample and args.no_resample:
        raise DataError(
            f"{args.file}: sample rate {in_rate:.6g} Hz is not the model's "
            f"{card.sample_rate_hz:g} Hz (--no-resample)"
        )

    def on_finding(finding: Finding) -> None:
        if args.strict:
            raise DataError(f"{args.file}: {finding} (--strict)")
        note(f"{args.file}: warning: {finding}")

    stream = WindowStream(
        pkg,
        in_rate,
        hop=args.hop,
        max_gap_periods=args.max_gap,
        timer=timer,
        # A logger restart with --skip-bad-rows starts a segment; otherwise the reader has
        # already refused it with FILE:LINE.
        on_backwards="segment" if args.skip_bad_rows else "error",
        respace_gap_s=est.gap_s if est is not None and est.bursty else None,
        on_finding=on_finding,
        # As fast as possible, windows are copied once, into encoder-layout batches.
        copy_windows=speed is not None,
    )
    t_first = float(first.t[0])
    t_last = t_first

    def windows() -> Iterator[WindowBatch]:
        nonlocal t_last
        for chunk in _chain(first, chunks):
            t_last = float(chunk.t[-1]) if len(chunk.t) else t_last
            yield from stream.push(chunk)
        yield from stream.flush()

    def batches() -> Iterator[WindowBatch]:
        pool = _LayoutPool(card, BATCH, POOL, timer)
        for batch in windows():
            # Lazily: each full buffer is handed on before the next one is filled.
            yield from pool.add(batch)
        rest = pool.flush()
        if rest is not None:
            yield rest

    # Parsing starts now, in its own thread, while onnxruntime loads and builds its session.
    ahead = prefetch(batches(), depth=PREFETCH_DEPTH) if speed is None else None
    encoder: Encoder | None = None
    try:
        encoder = open_encoder(pkg, args.backend, threads=args.threads)
        pipeline = CodePipeline(pkg, encoder, timer=timer)
        fmt = BatchLineFormatter(pkg.label, pipeline.labels)
        segments = (
            None
            if args.segments is None
            else SegmentWriter(args.segments, card, args.hop or card.hop, TrackerSettings())
        )
        seen: set[int] = set()
        seq = 0
        wall0 = time.perf_counter()

        def emit(out: TextIO, codes: CodeBatch, batch: WindowBatch) -> None:
            nonlocal seq
            with timer.stage("output", len(codes)):
                write_lines(out, fmt(seq, codes, batch.t_start, batch.t_end))
            if segments is not None:
                with timer.stage("behaviour", len(codes)):
                    segments.add(seq, codes, batch.t_start, batch.t_end)
            seen.update(np.unique(codes.index).tolist())
            seq += len(codes)

        with Output(args.out) as out:
            if ahead is not None:
                # Already in the encoder's layout; the next batch is encoded meanwhile.
                for y, batch, infer_ns in encode_ahead(encoder, ahead, _x, IN_FLIGHT):
                    timer.add("infer", infer_ns, len(y))
                    emit(out, pipeline.finish(y), batch)
            elif speed is not None:
                for batch in windows():
                    for i in range(len(batch)):
                        # Paced: a window is due when its last sample would have arrived.
                        due = wall0 + (float(batch.t_end[i]) - t_first) / speed
                        delay = due - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        one = _slice(batch, i, i + 1)
                        emit(out, pipeline.encode_windows(one), one)
                        out.flush()
    finally:
        if ahead is not None:
            ahead.close()
        if encoder is not None:
            encoder.close()  # the NPU's VDevice and worker thread, onnxruntime's sessions
    wall = time.perf_counter() - wall0
    if segments is not None:
        n = segments.write()
        note(f"{args.segments}: {n} behaviour segment(s) ({segments.tracker.kind})")
    if seq == 0:
        note(
            f"{args.file}: no stretch without a gap is as long as one window "
            f"({card.window} samples at {card.sample_rate_hz:g} Hz): no codes"
        )
    timing = _timing_line(rec, in_rate, est, stream, card.sample_rate_hz)
    _summary(
        args.file, rec, chunks.samples, seq, len(seen), stream, timer, wall, t_last - t_first,
        timing,
    )  # fmt: skip
    if args.evaluate and card.head is not None and has_label_column(args.file):
        evaluate_replayed(pkg.path, args.file, options)
    return 0


def _timing_line(
    rec: Recording, in_rate: float, est: RateEstimate | None, stream: WindowStream, model_hz: float
) -> str:
    """What the timestamps said and what was done about them, for the summary."""
    if est is None:
        found = f"rate {in_rate:g} Hz (given with --rate; no time column)"
    else:
        found = f"time unit {rec.time_unit} ({rec.time_unit_reason}); rate {est.describe()}"
    done = []
    if stream.respacer is not None:
        done.append(
            f"bursty timestamps re-spaced evenly at {in_rate:.6g} Hz "
            f"({stream.respacer.anchors} anchor(s) on the real clock)"
        )
    r = stream.resampler
    if r is None:
        done.append(f"matches the model's {model_hz:g} Hz: not resampled")
    else:
        d = r.design
        done.append(
            f"resampling {in_rate:.6g} Hz -> {model_hz:g} Hz, positioned by the timestamps "
            f"(anti-alias low-pass: flat to {d.pass_hz:.3g} Hz, -{d.stop_db:g} dB from "
            f"{d.stop_hz:.3g} Hz, {2 * d.half_taps} taps)"
        )
    return found + ": " + "; ".join(done)


class _LayoutPool:
    """Windows copied once, straight into encoder-layout batches of exactly ``size``.

    Buffers are reused in rotation; ``count`` of them must exceed the batches that can be
    alive at once (the prefetch queue, the one being encoded and the one being filled).
    """

    def __init__(self, card: ModelCard, size: int, count: int, timer: StageTimer) -> None:
        self.size = size
        self.timer = timer
        self.shape = expected_input_shape(card)
        self.split = (card.window, card.devices, len(card.channels))
        # Axis order of the encoder input within the (N, T, D, C) view of a window batch.
        pos = {"N": 0, "T": 1, "D": 2, "C": 3}
        layout = card.input.layout if "D" in card.input.layout else card.input.layout + "D"
        self.perm = tuple(pos[a] for a in layout)
        self._buffers = [np.empty((size, *self.shape), np.float32) for _ in range(count)]
        self._next = 0
        self._fill = 0
        self._t_start: list[npt.NDArray[np.float64]] = []
        self._t_end: list[npt.NDArray[np.float64]] = []

    def add(self, batch: WindowBatch) -> Iterator[WindowBatch]:
        n = len(batch)
        view = batch.x.reshape(n, *self.split).transpose(self.perm).reshape(n, *self.shape)
        a = 0
        while a < n:
            take = min(self.size - self._fill, n - a)
            buf = self._buffers[self._next]
            with self.timer.stage("layout", take):
                np.copyto(buf[self._fill : self._fill + take], view[a : a + take])
            self._t_start.append(batch.t_start[a : a + take])
            self._t_end.append(batch.t_end[a : a + take])
            self._fill += take
            a += take
            if self._fill == self.size:
                yield self._take()

    def flush(self) -> WindowBatch | None:
        return self._take() if self._fill else None

    def _take(self) -> WindowBatch:
        buf = self._buffers[self._next][: self._fill]
        ready = WindowBatch(buf, np.concatenate(self._t_start), np.concatenate(self._t_end))
        self._next = (self._next + 1) % len(self._buffers)
        self._fill = 0
        self._t_start, self._t_end = [], []
        return ready


def _x(batch: WindowBatch) -> npt.NDArray[np.float32]:
    return batch.x


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
    timing: str,
) -> None:
    rate = windows / wall if wall > 0 else 0.0
    g = stream.gaps
    lines = [
        f"replayed {path}: {samples} samples, {span:.1f} s of data in {wall:.2f} s "
        f"({span / wall if wall > 0 else 0:.0f}x real time)",
        timing,
        f"windows {windows}, distinct codes {distinct}, gaps {g.gaps} "
        f"({g.gap_seconds:.2f} s), time going back {g.backwards}, "
        f"bad rows skipped {rec.bad_rows}",
        stream.plausibility.summary(),
        f"throughput {rate:.0f} windows/s, {samples / wall if wall > 0 else 0:.0f} samples/s",
        timer.table(windows),
    ]
    print("\n".join(lines), file=sys.stderr)

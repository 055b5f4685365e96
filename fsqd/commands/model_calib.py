"""`fsqd model calib`: a calibration set for the Hailo Dataflow Compiler from real windows.

The compiler picks each layer's 8-bit range from the calibration set, so the set must hold
what the daemon will feed: windows cut, resampled and normalised by the same ``WindowStream``
the daemon uses, laid out NHWC (the card's N,C,D,T read as NCHW -> N,D,T,C). A HEF calibrated
on random [0, 1] data clips every negative z-score.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fsqd.backends.hailo.network import hef_frame_shape, to_frames
from fsqd.chunk import SampleChunk
from fsqd.errors import DataError, OutputError, UsageError
from fsqd.model.layout import InputLayout
from fsqd.model.package import ModelPackage
from fsqd.outfile import binary_output
from fsqd.pipeline import WindowStream
from fsqd.recordings.base import ReadOptions
from fsqd.recordings.open import open_recording
from fsqd.stream.resample import estimate_rate
from fsqd.units import CHANNELS

SIM_BLOCK_S = 60.0  # simulate a minute at a time: bounded memory for long sets


@dataclass(frozen=True)
class ChannelRange:
    name: str  # e.g. "ax" or "ax_1" for device 1
    min: float
    p01: float
    p99: float
    max: float


@dataclass(frozen=True)
class CalibReport:
    path: Path
    shape: tuple[int, ...]  # (N, D, T, C)
    windows_seen: int
    channels: tuple[ChannelRange, ...]

    def lines(self) -> list[str]:
        n = self.shape[0]
        out = [
            f"wrote {self.path}: {n} windows NHWC {list(self.shape[1:])} float32 "
            f"(of {self.windows_seen} cut), normalised as the daemon normalises",
            f"{'channel':<8} {'min':>9} {'p1':>9} {'p99':>9} {'max':>9}",
        ]
        for r in self.channels:
            out.append(f"{r.name:<8} {r.min:9.3f} {r.p01:9.3f} {r.p99:9.3f} {r.max:9.3f}")
        return out


def _windows_from_chunks(
    package: ModelPackage, chunks: Iterator[SampleChunk], rate_hz: float, hop: int | None
) -> Iterator[npt.NDArray[np.float32]]:
    stream = WindowStream(package, rate_hz, hop=hop)
    for chunk in chunks:
        for batch in stream.push(chunk):
            yield batch.x  # (N, T, D*C) normalised, device-major columns


def _from_recordings(
    package: ModelPackage, files: Sequence[Path], hop: int | None
) -> Iterator[npt.NDArray[np.float32]]:
    card = package.card
    for f in files:
        rec = open_recording(f, ReadOptions(channels=card.channel_names, devices=card.devices))
        chunks = iter(rec.chunks())
        first = next(chunks, None)
        if first is None or len(first.t) < 2:
            raise DataError(f"{f}: fewer than two samples")
        rate = estimate_rate(first.t)

        def again(
            first: SampleChunk = first, rest: Iterator[SampleChunk] = chunks
        ) -> Iterator[SampleChunk]:
            yield first
            yield from rest

        yield from _windows_from_chunks(package, again(), rate, hop)


def _from_simulator(
    package: ModelPackage, minutes: float, hop: int | None, seed: int
) -> Iterator[npt.NDArray[np.float32]]:
    from fsqd.sim.simulator import SimConfig, Simulator

    card = package.card
    if card.channel_names != CHANNELS:
        raise UsageError(
            f"the simulator writes channels {list(CHANNELS)}, the card wants "
            f"{list(card.channel_names)}: use --from with real recordings"
        )
    sim = Simulator(SimConfig(rate_hz=card.sample_rate_hz, devices=card.devices, seed=seed))
    total = round(minutes * 60.0 * card.sample_rate_hz)
    block = round(SIM_BLOCK_S * card.sample_rate_hz)

    def chunks() -> Iterator[SampleChunk]:
        done = 0
        while done < total:
            rec = sim.read(min(block, total - done))
            yield SampleChunk(rec.t, rec.x, new_segment=done == 0)
            done += len(rec.t)

    yield from _windows_from_chunks(package, chunks(), card.sample_rate_hz, hop)


def build_calibration(
    package: ModelPackage,
    out: Path,
    *,
    recordings: Sequence[Path] = (),
    sim_minutes: float | None = None,
    max_windows: int = 1024,
    hop: int | None = None,
    seed: int = 0,
) -> CalibReport:
    """Cut, normalise and lay out windows; keep ``max_windows`` spread evenly; save .npy."""
    if bool(recordings) == (sim_minutes is not None):
        raise UsageError("give recordings with --from, or --sim-minutes, not both")
    if sim_minutes is not None and not sim_minutes > 0:
        raise UsageError(f"--sim-minutes must be > 0, got {sim_minutes}")
    if max_windows < 1:
        raise UsageError(f"--max-windows must be >= 1, got {max_windows}")
    source = (
        _from_recordings(package, recordings, hop)
        if recordings
        else _from_simulator(package, float(sim_minutes or 0), hop, seed)
    )
    hef_frame_shape(package)  # refuses inputs a HEF cannot take, before any work
    parts = list(source)
    seen = sum(len(p) for p in parts)
    if seen == 0:
        raise DataError(
            f"no complete {package.card.window}-sample window in the input: nothing to calibrate on"
        )
    stream_windows = np.concatenate(parts)
    if seen > max_windows:
        keep = np.linspace(0, seen - 1, max_windows).round().astype(np.int64)
        stream_windows = stream_windows[keep]
    frames = to_frames(InputLayout(package.card)(stream_windows))
    with binary_output(out, make_parents=True) as fh:
        try:
            # Through memory (a few MB): numpy's direct path needs a seekable file, and --out
            # may be a pipe. Written where --out says, no .npy suffix added.
            buf = io.BytesIO()
            np.save(buf, frames)
            fh.write(buf.getbuffer())
        except OSError as e:
            why = e.strerror or e
            raise OutputError(f"{out}: cannot write the calibration set: {why}") from None
    return CalibReport(out, tuple(frames.shape), seen, _ranges(package, stream_windows))


def _ranges(
    package: ModelPackage, stream_windows: npt.NDArray[np.float32]
) -> tuple[ChannelRange, ...]:
    """Per channel and device, from the (N, T, D*C) device-major windows."""
    card = package.card
    names = card.channel_names
    out = []
    for col in range(stream_windows.shape[2]):
        dev, ci = divmod(col, len(names))
        v = stream_windows[:, :, col]
        p01, p99 = np.percentile(v, [1, 99])
        label = names[ci] if card.devices == 1 else f"{names[ci]}_{dev}"
        out.append(ChannelRange(label, float(v.min()), float(p01), float(p99), float(v.max())))
    return tuple(out)

"""The stages every front end shares, wired once: samples -> windows -> codes.

``WindowStream`` turns chunks of samples into normalised windows (gap split, resample,
normalise, window); ``CodePipeline`` turns windows into codes (layout, encoder, FSQ,
head). ``fsqd encode`` uses the second, ``fsqd replay`` both, and the live daemon will
feed both from its sensor thread: there is no second copy of any stage.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from fsqd.backends.base import Encoder
from fsqd.backends.onnx import OnnxEncoder
from fsqd.behaviour.sets import prediction_sets, softmax
from fsqd.chunk import SampleChunk
from fsqd.fsq import FSQ
from fsqd.head import Head
from fsqd.metrics import StageTimer
from fsqd.model.layout import InputLayout
from fsqd.model.package import ModelPackage
from fsqd.stream.gaps import Backwards, GapSplitter
from fsqd.stream.normalize import Normalizer
from fsqd.stream.plausibility import Finding, Plausibility
from fsqd.stream.resample import Resampler
from fsqd.stream.respace import Respacer
from fsqd.stream.windows import WindowBatch, Windower
from fsqd.types import CodeBatch

# Rates this close are the same clock read through timestamp jitter, not a resample.
RATE_TOLERANCE = 1e-3
# Live data whose rate is within this share of the model's (104 -> 100 Hz, or a clock a few
# percent off) folds only the sliver between the two Nyquist frequencies: the short kernel
# below is enough, and a long one would hold every window back by K input samples.
LOW_LATENCY_MAX_RATIO = 1.1
LOW_LATENCY_HALF_TAPS = 2  # waits for 2 samples after an output: 10-19 ms at 104 Hz
LOW_LATENCY_STOP_DB = 30.0  # Kaiser shape of the short kernel (flat to 20 Hz within 0.1 dB)
# Closer still (104 -> 100 Hz, 102.3 -> 100 Hz), from a chip whose own low-pass ends below the
# model's Nyquist frequency: nothing is left to fold, and linear interpolation waits for one
# sample past an output instead of two (about 5 ms less at 104 Hz).
LINEAR_MAX_RATIO = 1.05


def rates_match(a: float, b: float) -> bool:
    return abs(a - b) <= RATE_TOLERANCE * b


class WindowStream:
    """Chunks of raw samples in, normalised windows out, stateful across chunks.

    Stages: [re-space a bursty logger's timestamps] -> split at gaps (and, by
    ``on_backwards``, where time goes back) -> [resample onto the card's rate from the real
    timestamps] -> plausibility of the raw values -> normalise -> windows.

    ``in_rate_hz`` is the input's nominal (or fitted) rate; the resampler runs when it is not
    the card's, or always with ``track_clock`` (a live sensor whose oscillator is a few
    percent off still lands on the model's grid). ``copy_windows=False`` hands out windows as
    strided views (see ``Windower``). ``respace_gap_s`` turns on re-spacing for a
    bursty logger (see ``RateEstimate.bursty``/``gap_s``). Plausibility findings go to
    ``on_finding`` (which may raise to stop) and stay in ``plausibility.findings``.
    ``low_latency`` (live data) uses a 4-tap kernel when the two rates are within 10 %:
    the 54-tap one delays every window by ~27 input samples (260 ms at 104 Hz); and linear
    interpolation when they are within 5 % and ``band_limit_hz`` (the -3 dB bandwidth of the
    chip's own low-pass filters, the widest of them) is below the model's Nyquist frequency.
    """

    def __init__(
        self,
        package: ModelPackage,
        in_rate_hz: float,
        *,
        hop: int | None = None,
        max_gap_periods: float = 2.5,
        timer: StageTimer | None = None,
        on_backwards: Backwards = "error",
        respace_gap_s: float | None = None,
        track_clock: bool = False,
        on_finding: Callable[[Finding], None] | None = None,
        copy_windows: bool = True,
        low_latency: bool = False,
        band_limit_hz: float | None = None,
    ) -> None:
        card = package.card
        self.timer = timer or StageTimer()
        self.respacer = None if respace_gap_s is None else Respacer(in_rate_hz, respace_gap_s)
        self.gaps = GapSplitter(in_rate_hz, max_gap_periods, on_backwards)
        self.resampler: Resampler | None = None
        if track_clock or not rates_match(in_rate_hz, card.sample_rate_hz):
            ratio = max(in_rate_hz, card.sample_rate_hz) / min(in_rate_hz, card.sample_rate_hz)
            short = low_latency and ratio <= LOW_LATENCY_MAX_RATIO
            linear = (
                low_latency
                and ratio <= LINEAR_MAX_RATIO
                and band_limit_hz is not None
                and band_limit_hz < card.sample_rate_hz / 2
            )
            self.resampler = Resampler(
                in_rate_hz,
                card.sample_rate_hz,
                max_step_periods=max_gap_periods,
                half_taps=LOW_LATENCY_HALF_TAPS if short else None,
                stop_db=LOW_LATENCY_STOP_DB if short else 60.0,
                kernel="linear" if linear else "sinc",
            )
        mean, std = card.stream_mean_std()
        out_rate = card.sample_rate_hz if self.resampler is not None else in_rate_hz
        self.plausibility = Plausibility(card.channels, card.devices, mean, std, out_rate)
        self._on_finding = on_finding
        self.normalize = Normalizer(mean.tolist(), std.tolist())
        self.windower = Windower(card.window, hop or card.hop, card.stream_width, copy=copy_windows)

    @property
    def look_ahead(self) -> int:
        """Input samples stamped after a window's end that it waits for (the resampler's
        K; 0 without resampling: the window's own last sample completes it)."""
        return 0 if self.resampler is None else self.resampler.design.half_taps

    def push(self, chunk: SampleChunk) -> list[WindowBatch]:
        if self.respacer is not None:
            chunk = self.respacer.push(chunk)
        out: list[WindowBatch] = []
        for piece in self.gaps.split(chunk):
            if self.resampler is None:
                self._window(piece, out)
                continue
            with self.timer.stage("resample"):
                pieces = self.resampler.push(piece)
            for p in pieces:
                self._window(p, out)
        return out

    def flush(self) -> list[WindowBatch]:
        """At the end of the stream: the last resampled samples of the open segment."""
        out: list[WindowBatch] = []
        if self.resampler is not None:
            for p in self.resampler.flush():
                self._window(p, out)
        return out

    def _window(self, piece: SampleChunk, out: list[WindowBatch]) -> None:
        with self.timer.stage("check"):
            findings = self.plausibility.push(piece.x)
        for f in findings:
            if self._on_finding is not None:
                self._on_finding(f)
        with self.timer.stage("normalise"):
            piece = SampleChunk(piece.t, self.normalize(piece.x), piece.new_segment)
        with self.timer.stage("window"):
            batch = self.windower.push(piece)
        if len(batch.x):
            out.append(batch)


class CodePipeline:
    """Windows in, FSQ codes out: layout -> encoder -> FSQ -> head."""

    def __init__(
        self,
        package: ModelPackage,
        encoder: Encoder | None = None,
        *,
        threads: int | None = None,
        timer: StageTimer | None = None,
    ) -> None:
        card = package.card
        self.package = package
        self.card = card
        self.timer = timer or StageTimer()
        self.layout = InputLayout(card)
        self.encoder: Encoder = encoder or OnnxEncoder(package, threads)
        self.fsq = FSQ(card.levels)
        # The head is a few small matrix products: one thread beats a pool's hand-offs.
        self.head = Head(package) if card.head is not None else None
        self.labels = card.head.labels if card.head is not None else None
        cal = card.calibration
        self.temperature = cal.temperature if cal is not None else 1.0
        self.bias = cal.bias if cal is not None else None
        self.conformal = cal.conformal if cal is not None else None
        # Decide once which FSQ stage the encoder hands over.
        self._to_bounded: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]] = (
            self.fsq.bound if card.output.stage == "projection" else _identity
        )

    def encode_windows(self, batch: WindowBatch) -> CodeBatch:
        """Stream windows (N, T, D*C) -> codes."""
        with self.timer.stage("layout", len(batch.x)):
            x = self.layout(batch.x)
        return self.encode(x)

    def encode(self, x: npt.NDArray[np.float32]) -> CodeBatch:
        """Model-layout input (N, *card input shape), already normalised -> codes."""
        with self.timer.stage("infer", len(x)):
            y = self.encoder(x)
        return self.finish(y)

    def finish(self, y: npt.NDArray[np.float32]) -> CodeBatch:
        """The encoder's output (N, FSQ dim) -> codes: FSQ and the head."""
        n = len(y)
        with self.timer.stage("fsq", n):
            digits, codes = self.fsq.digits_and_codes_from_bounded(self._to_bounded(y))
            index = self.fsq.digits_to_indices(digits)
        if self.head is None:
            return CodeBatch(index, digits, codes, None, None)
        with self.timer.stage("head", n):
            # Calibrated: the card's temperature divides the logits and its bias is added
            # (1 and none without calibration).
            probs = softmax(self.head.logits(codes), self.temperature, self.bias)
            label_id = np.argmax(probs, axis=1)
            p = probs[np.arange(n), label_id].astype(np.float32)
            sets = None if self.conformal is None else prediction_sets(probs, self.conformal)
        return CodeBatch(index, digits, codes, label_id, p, probs, sets)


def _identity(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return a

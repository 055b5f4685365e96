"""Labelled recordings -> windows with the head's logits, codes and the true label.

The windows are cut exactly as ``fsqd replay`` and the daemon cut them: the same
``WindowStream`` (re-spacing of bursty loggers, gap split at 2.5 sample periods,
resampling onto the card's rate, normalisation) at the card's hop, then the same
``CodePipeline`` (layout, encoder, FSQ). A window's label is the label of the sample at its
end (its last sample, or the last input sample at or before it after resampling): the
daemon publishes a window when its last sample arrives, so that is the behaviour "now",
and the behaviour states are judged against the same instant. Windows that straddle a
change of behaviour are kept: they are part of what the daemon sees.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fsqd.backends.onnx import OnnxEncoder
from fsqd.chunk import SampleChunk
from fsqd.console import note
from fsqd.errors import DataError, FsqdError, ModelError, NoInputError, UsageError
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline, WindowStream
from fsqd.recordings.base import ReadOptions
from fsqd.recordings.labels import read_labels
from fsqd.recordings.open import open_recording
from fsqd.safefile import regular_file
from fsqd.stream.timebase import check_rate, estimate_rate
from fsqd.stream.windows import WindowBatch

MAX_GAP_PERIODS = 2.5  # as `fsqd replay` and the daemon: a longer step is a gap
BATCH = 1024  # windows per encoder call
BLOCK_S = 60.0  # fit/held-out blocks: far longer than a behaviour bout (seconds)
HOLDOUT_EVERY = 3  # every third block is held out


@dataclass(frozen=True)
class LabelledWindows:
    """Every window of the recordings at the card's hop, in time order per file."""

    logits: npt.NDArray[np.float64]  # (N, K) the head's raw logits
    labels: npt.NDArray[np.int64]  # (N,) true label, index into the head's labels
    codes: npt.NDArray[np.int64]  # (N,) FSQ code index
    t_end: npt.NDArray[np.float64]  # (N,) time of each window's last sample
    file: npt.NDArray[np.int64]  # (N,) which recording
    label_names: tuple[str, ...]  # the head's labels
    hop_s: float  # seconds between consecutive windows
    window_s: float
    files: tuple[Path, ...]
    sha256: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def stride(self) -> int:
        """Windows to step so that no two kept windows share a sample: near-independent."""
        return max(1, math.ceil(self.window_s / self.hop_s - 1e-9))

    def take(self, keep: npt.NDArray[np.int64]) -> LabelledWindows:
        return LabelledWindows(
            self.logits[keep], self.labels[keep], self.codes[keep], self.t_end[keep],
            self.file[keep], self.label_names, self.hop_s, self.window_s, self.files,
            self.sha256,
        )  # fmt: skip


def strided(data: LabelledWindows) -> npt.NDArray[np.int64]:
    """Indices of every ``stride``-th window of each recording, from its first."""
    keep = [np.flatnonzero(data.file == f)[:: data.stride] for f in range(len(data.files))]
    return np.concatenate(keep).astype(np.int64)


def stretches(data: LabelledWindows) -> list[npt.NDArray[np.int64]]:
    """Indices of each gap-free stretch: a new one at every file and every time gap (more
    than 1.5 hops between consecutive windows), where the daemon starts a new segment."""
    idx = np.arange(len(data), dtype=np.int64)
    if len(idx) == 0:
        return []
    cut = (np.diff(data.file) != 0) | (np.diff(data.t_end) > 1.5 * data.hop_s)
    return np.split(idx, np.flatnonzero(cut) + 1)


def split_blocks(
    data: LabelledWindows, block_s: float = BLOCK_S, every: int = HOLDOUT_EVERY
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(fit, held-out) indices of the strided windows, by time blocks of ``block_s``.

    Each recording's windows go into consecutive blocks of ``block_s``; every ``every``-th
    block (the third, sixth, ...) is held out, so both parts span the whole recording and
    no held-out window is a near neighbour of many fit windows.
    """
    fit, held = [], []
    for f in range(len(data.files)):
        mine = np.flatnonzero(data.file == f)[:: data.stride]
        if len(mine) == 0:
            continue
        block = ((data.t_end[mine] - data.t_end[mine[0]]) // block_s).astype(np.int64)
        out = block % every == every - 1
        fit.append(mine[~out])
        held.append(mine[out])
    return np.concatenate(fit).astype(np.int64), np.concatenate(held).astype(np.int64)


def head_labels(package: ModelPackage) -> tuple[str, ...]:
    if package.card.head is None:
        raise ModelError(f"{package.path}: the model has no head: there are no labels to calibrate")
    return package.card.head.labels


def open_labelled(
    package: Path, files: Sequence[Path], *, plots: bool = False, read: ReadOptions | None = None
) -> tuple[ModelPackage, tuple[str, ...], LabelledWindows]:
    """The package, its head's labels and the labelled windows of ``files``, after the
    checks that need no work (data given, matplotlib there when plots are asked for)."""
    if not files:
        raise UsageError("give labelled recordings with --data")
    if plots:
        from fsqd.commands.calibration_plots import require_matplotlib

        require_matplotlib()
    pkg = load_package(package)
    return pkg, head_labels(pkg), load_labelled(pkg, files, read)


def load_labelled(
    package: ModelPackage, files: Sequence[Path], read: ReadOptions | None = None
) -> LabelledWindows:
    """Cut, encode and label every window of ``files`` (labelled CSV recordings).

    ``read``: how to read them (columns, scale, time unit, rate), as ``fsqd replay`` was
    told; by default the card's channels in the file's own units and timestamps.
    """
    for f in files:  # before hashing or reading any: a FIFO would block, /dev/zero never end
        regular_file(f, what="a labelled recording")
    names = head_labels(package)
    card = package.card
    encoder = OnnxEncoder(package, None)
    pipeline = CodePipeline(package, encoder)
    logits, labels, codes, t_end, which, digests = [], [], [], [], [], []
    try:
        for i, f in enumerate(files):
            digests.append(_sha256(f))
            lg, cd, te, lb = _one_file(package, pipeline, f, names, read)
            if len(te) == 0:
                raise DataError(
                    f"{f}: no stretch without a gap is as long as one window "
                    f"({card.window} samples at {card.sample_rate_hz:g} Hz)"
                )
            logits.append(lg)
            codes.append(cd)
            t_end.append(te)
            labels.append(lb)
            which.append(np.full(len(te), i, np.int64))
    finally:
        encoder.close()
    return LabelledWindows(
        logits=np.concatenate(logits),
        labels=np.concatenate(labels),
        codes=np.concatenate(codes),
        t_end=np.concatenate(t_end),
        file=np.concatenate(which),
        label_names=names,
        hop_s=card.hop / card.sample_rate_hz,
        window_s=card.window / card.sample_rate_hz,
        files=tuple(files),
        sha256=tuple(digests),
    )


def _one_file(
    package: ModelPackage,
    pipeline: CodePipeline,
    path: Path,
    names: tuple[str, ...],
    read: ReadOptions | None,
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
]:
    card = package.card
    file_names, row_ids = read_labels(path)
    unknown = [n for n in file_names if n not in names]
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not the head's labels ({', '.join(names)})")
    to_head = np.asarray([names.index(n) for n in file_names], np.int64)
    rec = open_recording(
        path, read or ReadOptions(channels=card.channel_names, devices=card.devices)
    )
    chunks = iter(rec.chunks())
    first = next(chunks, None)
    if first is None or len(first.t) < 2:
        raise DataError(f"{path}: fewer than two samples")
    try:
        est = estimate_rate(first.t, MAX_GAP_PERIODS)
    except FsqdError as e:
        raise DataError(f"{path}: {e}") from None
    check_rate(est.rate_hz, str(path))
    stream = WindowStream(
        package,
        est.rate_hz,
        max_gap_periods=MAX_GAP_PERIODS,
        respace_gap_s=est.gap_s if est.bursty else None,
        on_finding=lambda finding: note(f"{path}: warning: {finding}"),
    )
    times: list[npt.NDArray[np.float64]] = []
    logits: list[npt.NDArray[np.float64]] = []
    codes: list[npt.NDArray[np.int64]] = []
    t_end: list[npt.NDArray[np.float64]] = []

    def chain() -> Iterator[SampleChunk]:
        yield first
        yield from chunks

    def encode(batches: list[npt.NDArray[np.float32]], ends: list[npt.NDArray[np.float64]]) -> None:
        x = np.concatenate(batches)
        te = np.concatenate(ends)
        out = pipeline.encode_windows(WindowBatch(x, te, te))
        assert pipeline.head is not None
        logits.append(pipeline.head.logits(out.codes).astype(np.float64))
        codes.append(out.index)
        t_end.append(te)

    pending: list[npt.NDArray[np.float32]] = []
    ends: list[npt.NDArray[np.float64]] = []
    for chunk in chain():
        times.append(np.asarray(chunk.t, np.float64))
        for b in stream.push(chunk):
            pending.append(b.x.copy())
            ends.append(b.t_end.copy())
        if sum(len(p) for p in pending) >= BATCH:
            encode(pending, ends)
            pending, ends = [], []
    for b in stream.flush():
        pending.append(b.x.copy())
        ends.append(b.t_end.copy())
    if pending:
        encode(pending, ends)
    t_all = np.concatenate(times)
    if len(t_all) != len(row_ids):
        raise DataError(f"{path}: {len(row_ids)} labelled rows but {len(t_all)} samples were read")
    if not t_end:
        return np.empty((0, len(names))), np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)
    te_all = np.concatenate(t_end)
    # The label of the last input sample at or before each window's end.
    at = np.clip(np.searchsorted(t_all, te_all + 1e-9, side="right") - 1, 0, len(t_all) - 1)
    return np.concatenate(logits), np.concatenate(codes), te_all, to_head[row_ids[at]]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except OSError as e:
        raise NoInputError(f"{path}: cannot read: {e.strerror or e}") from None
    return h.hexdigest()


__all__ = [
    "LabelledWindows",
    "head_labels",
    "load_labelled",
    "open_labelled",
    "split_blocks",
    "stretches",
    "strided",
]

"""A semi-Markov behaviour model learned from per-window labels: bouts, transitions, durations.

A labelled recording, cut into windows every ``step_s`` seconds, is a label per window; a
run of equal labels is a bout. Bouts give the model the card stores
(``fsqd.model.calibration.SemiMarkovSpec``):

- transitions: which behaviour follows which, counted between consecutive bouts (never a
  bout to itself: the diagonal is zero), with additive smoothing so a pair never seen in
  the data stays possible;
- durations: per behaviour, a histogram of bout lengths in bins of ``step_s``, lightly
  smoothed, up to a quantile of the observed lengths; beyond it an exponential tail whose
  mean is the mean excess of the bouts that lasted longer (its maximum-likelihood value);
- prior: the share of windows per behaviour (emissions are posterior / prior);
- initial: the same share, smoothed: a recording (or the daemon) starts in the middle of a
  bout, so the first window's behaviour is distributed as the time spent in each.

A recording split at gaps is a list of sequences: no bout spans two of them. The first and
last bout of each sequence are cut short by its ends (censored); their lengths are only
used for a behaviour that has no complete bout.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError
from fsqd.model.calibration import DurationModel, SemiMarkovSpec

__all__ = ["Bout", "bouts", "fit_durations", "fit_semi_markov"]

TRANSITION_ALPHA = 0.5  # additive smoothing of the transition counts (Jeffreys)
SHARE_ALPHA = 0.5  # additive smoothing of the window shares
TAIL_QUANTILE = 0.9  # the histogram covers bouts up to this quantile; the rest is the tail
SMOOTH_WEIGHTS = (0.25, 0.5, 0.25)  # a three-bin kernel over the histogram's counts

Labels = Sequence[int] | npt.NDArray[np.integer]


class Bout(NamedTuple):
    """A run of one label: its length in windows, and whether an end of the data cut it."""

    label: int
    length: int
    censored: bool


def _segments(window_labels: Labels | Sequence[Labels]) -> list[npt.NDArray[np.int64]]:
    """One sequence, or a list of them, as 1-D int arrays."""
    if isinstance(window_labels, np.ndarray):
        if window_labels.ndim != 1:
            raise DataError(f"window labels must be 1-D, got shape {window_labels.shape}")
        return [window_labels.astype(np.int64)]
    items = list(window_labels)
    if items and all(isinstance(v, int | np.integer) for v in items):
        return [np.asarray(items, np.int64)]
    out = []
    for seg in items:
        arr = np.asarray(seg)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise DataError("window labels must be integer sequences (one per segment)")
        out.append(arr.astype(np.int64))
    return out


def bouts(labels: npt.NDArray[np.int64]) -> list[Bout]:
    """The runs of one segment, first and last marked censored."""
    if not len(labels):
        return []
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    last = len(starts) - 1
    return [
        Bout(int(labels[s]), int(e - s), i == 0 or i == last)
        for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True))
    ]


def fit_durations(lengths: npt.NDArray[np.int64], step_s: float) -> DurationModel:
    """Bout lengths (in windows of ``step_s``) -> a smoothed histogram with an exponential tail.

    Bin ``i`` of the model holds durations in ``(i * step_s, (i + 1) * step_s]``, so a bout
    of ``n`` windows (``n * step_s`` seconds) lands in bin ``n - 1``.
    """
    if not len(lengths):
        raise DataError("no bouts to fit a duration model to")
    cut = max(1, int(np.ceil(np.quantile(lengths, TAIL_QUANTILE))))
    body, tail = lengths[lengths <= cut], lengths[lengths > cut]
    counts = np.bincount(body - 1, minlength=cut).astype(np.float64)
    if cut >= 3:
        # Smooth inside the body only; mass pushed past either end is folded back.
        padded = np.convolve(counts, SMOOTH_WEIGHTS, mode="full")
        padded[1] += padded[0]
        padded[-2] += padded[-1]
        counts = padded[1:-1]
    tail_mass = len(tail) / len(lengths)
    pmf = counts / counts.sum() * (1.0 - tail_mass)
    # Mean excess beyond the body's end; with no bout beyond it, the tail carries no mass
    # and its mean is a placeholder of one bin (a mean must be > 0).
    excess = float((tail - cut).mean()) * step_s if len(tail) else step_s
    return DurationModel(
        bin_s=step_s,
        pmf=tuple(float(p) for p in pmf),
        tail_mass=float(tail_mass),
        tail_mean_s=max(excess, step_s / 2),
    )


def fit_semi_markov(
    window_labels: Labels | Sequence[Labels], step_s: float, n_labels: int
) -> SemiMarkovSpec:
    """The semi-Markov model of ``window_labels`` (one sequence, or one per gap-free segment).

    ``step_s``: seconds between consecutive windows; ``n_labels``: the head's label count
    (every label gets a model, seen or not). Raises ``DataError`` when a label is out of
    range or there is no window at all.
    """
    if not step_s > 0:
        raise DataError(f"step_s must be > 0, got {step_s}")
    if n_labels < 1:
        raise DataError(f"n_labels must be >= 1, got {n_labels}")
    segments = [s for s in _segments(window_labels) if len(s)]
    if not segments:
        raise DataError("no labelled windows to fit a semi-Markov model to")
    everything = np.concatenate(segments)
    if everything.min() < 0 or everything.max() >= n_labels:
        raise DataError(
            f"window labels must be in [0, {n_labels}), got {everything.min()}..{everything.max()}"
        )
    k = n_labels
    windows = np.bincount(everything, minlength=k).astype(np.float64)
    trans = np.zeros((k, k))
    complete: list[list[int]] = [[] for _ in range(k)]
    censored: list[list[int]] = [[] for _ in range(k)]
    for seg in segments:
        runs = bouts(seg)
        for a, b in itertools.pairwise(runs):
            trans[a.label, b.label] += 1
        for r in runs:
            (censored if r.censored else complete)[r.label].append(r.length)

    trans += TRANSITION_ALPHA
    np.fill_diagonal(trans, 0.0)
    rows = trans.sum(axis=1, keepdims=True)
    trans = np.divide(trans, rows, out=np.zeros_like(trans), where=rows > 0)

    all_lengths = np.array([n for per in (*complete, *censored) for n in per], np.int64)
    durations = []
    for j in range(k):
        lengths = np.array(complete[j] or censored[j], np.int64)
        if not len(lengths):
            # Never seen: as long as an average bout of any behaviour, memoryless.
            mean_s = float(all_lengths.mean()) * step_s
            durations.append(DurationModel(step_s, (), 1.0, mean_s))
        else:
            durations.append(fit_durations(lengths, step_s))

    share = (windows + SHARE_ALPHA) / (windows.sum() + SHARE_ALPHA * k)
    return SemiMarkovSpec(
        initial=_tuple(share),
        transitions=tuple(_tuple(row) for row in trans),
        durations=tuple(durations),
        prior=_tuple(share),
    )


def _tuple(a: npt.NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(float(v) for v in a)

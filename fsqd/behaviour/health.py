"""Code-usage health: is the encoder still using its codebook the way it did on the
calibration data?

Three numbers, from the codes alone (no labels):

- **perplexity** per stats period: ``exp(H)`` of the period's code histogram (natural
  log), the effective number of codes in use. A collapsed encoder (a stuck sensor, a
  model fed the wrong units) drops towards 1.
- **unseen share** per stats period: the share of windows whose code never occurs in
  the card's reference distribution (``CodeReference``).
- **drift**: the Jensen-Shannon divergence (base 2, in [0, 1]) between the reference
  distribution and the codes of the last ``drift_windows`` windows. No smoothing is
  needed for codes the reference never saw (or reference codes the window lacks): the
  mixture ``M = (P + Q) / 2`` is positive wherever either is, and a code with share
  ``q`` in one distribution and 0 in the other adds exactly ``q / 2`` bits. A window made
  only of unseen codes scores 1.

Cost: per window, a few dictionary updates (``observe``); the divergence is computed
per check, every ``drift_windows // 2`` windows once the sliding window is full, over
the union of the reference's and the window's codes. Drift is *sustained* after
``SUSTAIN_CHECKS`` (3) consecutive checks above the threshold and clears after as many
below: the first and third of three consecutive checks look at disjoint windows, so a
burst of unusual behaviour inside one drift window does not raise it, and a divergence
hovering at the threshold does not make the flag flap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.model.calibration import CodeReference

__all__ = [
    "SUSTAIN_CHECKS",
    "CodeHealth",
    "DriftChange",
    "PeriodHealth",
    "jensen_shannon",
    "perplexity",
]

# Consecutive checks above (below) the threshold before drift is raised (cleared).
SUSTAIN_CHECKS = 3
# Checks per drift window: each window of codes is looked at this many times.
CHECKS_PER_WINDOW = 2


def perplexity(counts: Iterable[int]) -> float | None:
    """``exp`` of the entropy (nats) of a histogram; None for an empty one."""
    c = np.fromiter((n for n in counts if n > 0), np.float64)
    total = c.sum()
    if total <= 0:
        return None
    p = c / total
    return float(math.exp(-float(np.sum(p * np.log(p)))))


def jensen_shannon(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Jensen-Shannon divergence in bits between two histograms on the same support
    (each normalised here; zeros allowed on either side, no smoothing)."""
    a = np.asarray(p, np.float64)
    b = np.asarray(q, np.float64)
    a = a / a.sum()
    b = b / b.sum()
    m = 0.5 * (a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ka = np.where(a > 0, a * np.log2(a / m), 0.0)
        kb = np.where(b > 0, b * np.log2(b / m), 0.0)
    return 0.5 * float(ka.sum() + kb.sum())


@dataclass(frozen=True)
class PeriodHealth:
    """One stats period. Without a reference, ``unseen_share``/``jsd``/``drift`` are None."""

    windows: int  # windows coded in the period
    codes_used: int  # distinct codes among them
    perplexity: float | None  # None: no window in the period
    unseen_share: float | None
    jsd: float | None  # the last check's divergence (None: no check yet)
    drift: bool | None  # sustained drift, as of the last check
    checks: int  # checks made in the period
    threshold: float | None = None  # the drift threshold in force
    drift_windows: int | None = None  # windows the divergence is taken over

    def as_dict(self) -> dict[str, float | int | bool | None]:
        """The ``health`` object of the stats message."""
        return {
            "windows": self.windows,
            "codes_used": self.codes_used,
            "perplexity": _round(self.perplexity),
            "unseen_share": _round(self.unseen_share),
            "jsd": _round(self.jsd),
            "drift": self.drift,
            "checks": self.checks,
            "drift_threshold": self.threshold,
            "drift_windows": self.drift_windows,
        }


@dataclass(frozen=True)
class DriftChange:
    """Drift became sustained (``drift``) or cleared, at the check that decided it."""

    drift: bool
    jsd: float
    threshold: float
    windows: int  # windows in the divergence


class CodeHealth:
    """Counts codes as they come; reports per period and raises/clears drift per check.

    ``threshold``/``windows`` override the reference's ``drift_threshold``/
    ``drift_windows``. Without a reference only perplexity is measured.
    """

    def __init__(
        self,
        reference: CodeReference | None,
        *,
        threshold: float | None = None,
        windows: int | None = None,
        sustain: int = SUSTAIN_CHECKS,
    ) -> None:
        self.reference = reference
        self._period: dict[int, int] = {}
        self._period_windows = 0
        self._period_unseen = 0
        self._period_checks = 0
        self.jsd: float | None = None
        self.drift: bool | None = None
        if reference is None:
            self.threshold = math.nan
            self.windows = 0
            return
        self.threshold = reference.drift_threshold if threshold is None else threshold
        self.windows = reference.drift_windows if windows is None else windows
        self.sustain = sustain
        self.check_every = max(1, self.windows // CHECKS_PER_WINDOW)
        self.drift = False
        self._known = frozenset(reference.codes)
        self._ref_codes = np.asarray(reference.codes, np.int64)
        self._ref_p = np.asarray(reference.counts, np.float64)
        self._ref_p /= self._ref_p.sum()
        self._ring = [0] * self.windows  # the last `windows` codes, oldest at _pos once full
        self._pos = 0
        self._filled = 0
        self._counts: dict[int, int] = {}  # code -> count in the ring
        self._since_check = 0
        self._above = 0
        self._below = 0

    def observe(self, codes: Iterable[int]) -> list[DriftChange]:
        """Count a batch of codes (in window order); the drift changes it caused."""
        period = self._period
        if self.reference is None:
            n = 0
            for c in codes:
                period[c] = period.get(c, 0) + 1
                n += 1
            self._period_windows += n
            return []
        changes: list[DriftChange] = []
        known, ring, counts, size = self._known, self._ring, self._counts, self.windows
        for c in codes:
            period[c] = period.get(c, 0) + 1
            self._period_windows += 1
            if c not in known:
                self._period_unseen += 1
            if self._filled == size:
                old = ring[self._pos]
                left = counts[old] - 1
                if left:
                    counts[old] = left
                else:
                    del counts[old]
            else:
                self._filled += 1
            ring[self._pos] = c
            self._pos = (self._pos + 1) % size
            counts[c] = counts.get(c, 0) + 1
            self._since_check += 1
            if self._filled == size and self._since_check >= self.check_every:
                change = self._check()
                if change is not None:
                    changes.append(change)
        return changes

    def _check(self) -> DriftChange | None:
        self._since_check = 0
        self._period_checks += 1
        jsd = self.window_jsd()
        self.jsd = jsd
        if jsd > self.threshold:
            self._above += 1
            self._below = 0
        else:
            self._below += 1
            self._above = 0
        if not self.drift and self._above >= self.sustain:
            self.drift = True
        elif self.drift and self._below >= self.sustain:
            self.drift = False
        else:
            return None
        return DriftChange(bool(self.drift), jsd, self.threshold, self._filled)

    def window_jsd(self) -> float:
        """The divergence between the reference and the codes in the sliding window now."""
        win_codes = np.fromiter(self._counts.keys(), np.int64, len(self._counts))
        win_n = np.fromiter(self._counts.values(), np.float64, len(self._counts))
        support = np.union1d(self._ref_codes, win_codes)
        p = np.zeros(len(support))
        q = np.zeros(len(support))
        p[np.searchsorted(support, self._ref_codes)] = self._ref_p
        q[np.searchsorted(support, win_codes)] = win_n
        return jensen_shannon(p, q)

    def roll(self) -> PeriodHealth:
        """The period's numbers; the next period starts empty (the drift window goes on)."""
        n = self._period_windows
        has_ref = self.reference is not None
        out = PeriodHealth(
            windows=n,
            codes_used=len(self._period),
            perplexity=perplexity(self._period.values()),
            unseen_share=(self._period_unseen / n if n else None) if has_ref else None,
            jsd=self.jsd,
            drift=self.drift,
            checks=self._period_checks,
            threshold=self.threshold if has_ref else None,
            drift_windows=self.windows if has_ref else None,
        )
        self._period = {}
        self._period_windows = self._period_unseen = self._period_checks = 0
        return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)

"""The code distribution on the calibration data: the reference for code-usage health.

The drift threshold follows one rule: cut every recording's windows (all of them, at the
card's hop, as the daemon sees them) into blocks of ``drift_windows`` consecutive windows,
half-overlapping, and take the Jensen-Shannon divergence (base 2) of each block's code
histogram from the reference; the threshold is ``DRIFT_MARGIN`` times the 99th percentile
of those divergences (at most 1). Usage drifting further than that is further than the
calibration data ever drifted within itself over the same span.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.health import jensen_shannon, perplexity
from fsqd.errors import DataError
from fsqd.model.calibration import CodeReference

DRIFT_WINDOWS = 600  # 5 minutes at a 0.5 s hop
DRIFT_MARGIN = 1.25
DRIFT_PERCENTILE = 99.0


def code_reference(
    codes: npt.NDArray[np.int64],
    file: npt.NDArray[np.int64],
    codebook: int,
    drift_windows: int = DRIFT_WINDOWS,
) -> CodeReference:
    """The reference from every window's code; ``file`` marks which recording each is from,
    so that no block spans two recordings. ``drift_windows`` shrinks to the longest
    recording when that is shorter."""
    if len(codes) == 0:
        raise DataError("no windows for the code reference")
    full = np.bincount(codes, minlength=codebook).astype(np.float64)
    lengths = np.bincount(file)
    span = int(min(drift_windows, lengths.max()))
    step = max(1, span // 2)
    divergences = []
    for f in np.flatnonzero(lengths >= span):
        mine = codes[file == f]
        for start in range(0, len(mine) - span + 1, step):
            block = np.bincount(mine[start : start + span], minlength=codebook)
            divergences.append(jensen_shannon(block, full))
    threshold = DRIFT_MARGIN * float(np.percentile(divergences, DRIFT_PERCENTILE))
    seen = np.flatnonzero(full)
    return CodeReference(
        codes=tuple(int(c) for c in seen),
        counts=tuple(int(full[c]) for c in seen),
        perplexity=perplexity(full.astype(np.int64)) or 1.0,
        # A threshold of 0 (every block identical) would flag any change at all.
        drift_threshold=min(1.0, max(threshold, 1e-3)),
        drift_windows=span,
    )


__all__ = ["DRIFT_WINDOWS", "code_reference"]

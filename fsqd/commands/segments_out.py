"""``fsqd replay --segments FILE``: the behaviour segments of a replay, as CSV or JSON lines.

The same tracker as the live daemon (``fsqd.behaviour.tracker``), fed the replay's windows
in order with their recorded times: a gap in the file ends a segment, as in the daemon.
``.csv`` gets a header and one row per segment; any other name JSON lines with the keys of
the ``events`` payload (without ``v`` and ``run``) and ``windows``. Written through
``fsqd.outfile``: a regular file only once complete, a FIFO or device in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.tracker import BehaviourTracker, FinishedSegment, TrackerSettings
from fsqd.model.card import ModelCard
from fsqd.outfile import text_output
from fsqd.types import CodeBatch

__all__ = ["SegmentWriter"]

CSV_HEADER = "behaviour,start,end,duration_s,confidence,windows\n"


class SegmentWriter:
    """Collects a replay's segments; ``write()`` puts them in the file at the end."""

    def __init__(self, path: Path, card: ModelCard, hop: int, settings: TrackerSettings) -> None:
        assert card.head is not None
        cal = card.calibration
        sm = cal.semi_markov if cal is not None else None
        self.path = path
        self.tracker = BehaviourTracker(card.head.labels, sm, hop / card.sample_rate_hz, settings)
        self.segments: list[FinishedSegment] = []

    def add(
        self,
        seq0: int,
        codes: CodeBatch,
        t_start: npt.NDArray[np.float64],
        t_end: npt.NDArray[np.float64],
    ) -> None:
        if codes.probs is None:
            return
        starts, ends = t_start.tolist(), t_end.tolist()
        for i, p in enumerate(codes.probs):
            self.segments += self.tracker.push(seq0 + i, starts[i], ends[i], p).segments

    def write(self) -> int:
        """The last segment ends with the file; returns how many were written."""
        self.segments += self.tracker.end().segments
        csv = self.path.suffix.lower() == ".csv"
        with text_output(self.path) as out:
            if csv:
                out.write(CSV_HEADER)
            for s in self.segments:
                if csv:
                    out.write(
                        f"{s.behaviour},{s.start:.3f},{s.end:.3f},{s.duration_s:.3f},"
                        f"{s.confidence:.4f},{s.windows}\n"
                    )
                else:
                    row = {
                        "type": "segment",
                        "behaviour": s.behaviour,
                        "start": round(s.start, 3),
                        "end": round(s.end, 3),
                        "duration_s": round(s.duration_s, 3),
                        "confidence": round(s.confidence, 4),
                        "windows": s.windows,
                    }
                    out.write(json.dumps(row, separators=(",", ":")) + "\n")
        return len(self.segments)

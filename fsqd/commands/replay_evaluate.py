"""After ``fsqd replay`` of a labelled CSV: how the model did, as ``fsqd model evaluate``.

A recording with a ``label`` column (``fsqd simulate`` writes one) says what the animal
was doing, so replay ends with the evaluate report on stderr: accuracy, confusion,
calibration, conformal coverage and the behaviour states against the truth. It is a second
pass over the file at the card's hop, read with the replay's options (columns, scale, time
unit, rate), its windows cut as calibration cuts them; ``--no-evaluate`` skips it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fsqd.console import note
from fsqd.errors import FsqdError
from fsqd.recordings.base import ReadOptions
from fsqd.recordings.labels import LABEL_COLUMN, NOT_CSV


def has_label_column(path: Path) -> bool:
    """A CSV whose header names a ``label`` column (read from the first line only)."""
    if path.suffix.lower() in NOT_CSV or not path.is_file():
        return False
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            head = fh.readline(65536)
    except (OSError, UnicodeDecodeError):
        return False
    delimiter = max((",", ";", "\t"), key=head.count)
    return LABEL_COLUMN in (h.strip().strip('"').strip().lower() for h in head.split(delimiter))


def evaluate_replayed(package: Path, file: Path, read: ReadOptions) -> bool:
    """Print the evaluate report of ``file`` on stderr, read as the replay read it (``read``:
    its columns, scale, time unit, rate); a file that cannot be evaluated (labels that are
    not the head's, say) is one line, not an error: the replay itself went well. Returns
    whether a report was printed."""
    # Here, not at the top: every replay imports this module, few replay a labelled file
    # (the evaluation and its imports: tens of milliseconds of every start-up).
    from fsqd.commands.model_evaluate import EvaluateOptions, evaluate, render

    try:
        report = evaluate(EvaluateOptions(package, (file,), read=read))
    except FsqdError as e:
        note(f"{file}: labelled, but not evaluated: {e}")
        return False
    print("\n".join(render(report)), file=sys.stderr)
    return True


__all__ = ["evaluate_replayed", "has_label_column"]

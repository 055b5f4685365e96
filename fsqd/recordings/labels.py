"""The label column of a labelled CSV recording (``fsqd simulate`` writes one): one per row.

The samples themselves come from ``CsvRecording``; this reads only the label of each data
row, in file order, so that row k's label belongs to sample k. Only CSV files carry labels:
``.fsqr`` recordings (``fsqd record``) and arrays have no place for one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fsqd.errors import DataError, NoInputError
from fsqd.recordings.base import shown_names

LABEL_COLUMN = "label"
NOT_CSV = (".fsqr", ".npy", ".npz")


def read_labels(
    path: Path, column: str = LABEL_COLUMN
) -> tuple[tuple[str, ...], npt.NDArray[np.int32]]:
    """(names, ids): the distinct labels in order of first appearance, and each row's id.

    Blank lines are skipped, as the sample readers skip them; a row without a label is
    an error naming its line.
    """
    if path.suffix.lower() in NOT_CSV:
        raise DataError(f"{path}: only CSV recordings carry a {column!r} column")
    names: dict[str, int] = {}
    ids: list[int] = []
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            head = fh.readline()
            delimiter = max((",", ";", "\t"), key=head.count)
            header = [h.strip().strip('"').strip().lower() for h in head.split(delimiter)]
            if column.lower() not in header:
                raise DataError(
                    f"{path}:1: no column {column!r} (the behaviour label); the file has "
                    f"columns: {shown_names(header)}"
                )
            col = header.index(column.lower())
            for line_no, row in enumerate(csv.reader(fh, delimiter=delimiter), start=2):
                if not row or not any(f.strip() for f in row):
                    continue
                name = row[col].strip() if len(row) > col else ""
                if not name:
                    raise DataError(f"{path}:{line_no}: no {column!r} value")
                ids.append(names.setdefault(name, len(names)))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (is this a CSV file?)") from None
    except OSError as e:
        raise NoInputError(f"{path}: cannot read: {e.strerror or e}") from None
    return tuple(names), np.asarray(ids, np.int32)


__all__ = ["LABEL_COLUMN", "read_labels"]

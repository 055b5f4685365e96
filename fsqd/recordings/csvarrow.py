"""pyarrow's streaming CSV parser: the CSV reader's fast path (the ``csv`` extra).

``float_blocks`` turns the chosen columns of a plain file into float64 blocks of a fixed
number of rows. Anything pyarrow cannot take as plain numbers (a malformed block, an
empty field) raises ``ArrowFallback``: the line-by-line reader continues from the first
row not handed out, so a bad row is still named as FILE:LINE.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class ArrowFallback(Exception):
    """pyarrow cannot take this block: the line-by-line reader continues from it."""


def pyarrow_csv() -> Any:
    """(pyarrow, pyarrow.csv), or None when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pc
    except ImportError:
        return None
    return pa, pc


def open_reader(path: Path, delimiter: str, columns: list[int]) -> Any:
    """A streaming reader of ``columns`` (indices) as float64, the header skipped; None
    when pyarrow refuses the file at once (the line-by-line reader then names why)."""
    pa, pc = pyarrow_csv()
    cols = [f"f{i}" for i in columns]
    try:
        return pc.open_csv(
            path,
            read_options=pc.ReadOptions(
                block_size=1 << 20, skip_rows=1, autogenerate_column_names=True,
                use_threads=False,
            ),
            parse_options=pc.ParseOptions(
                delimiter=delimiter, ignore_empty_lines=False, newlines_in_values=False
            ),
            convert_options=pc.ConvertOptions(
                include_columns=cols, column_types=dict.fromkeys(cols, pa.float64())
            ),
        )  # fmt: skip
    except (pa.ArrowException, OSError):
        return None  # e.g. the first block is malformed: the classic reader names it


def float_blocks(reader: Any, width: int, rows_per_block: int) -> Iterator[F64]:
    """(rows_per_block, width) float64 blocks from ``reader``, the last one shorter;
    ``ArrowFallback`` at the first batch with an error or an empty field."""
    pa, _ = pyarrow_csv()
    parts: list[F64] = []
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowException as e:
            raise ArrowFallback from e
        if batch.num_rows == 0:
            continue
        if any(c.null_count for c in batch.columns):
            raise ArrowFallback
        block = np.empty((batch.num_rows, width), np.float64)
        for j, c in enumerate(batch.columns):
            data = c.buffers()[1]
            block[:, j] = np.frombuffer(data, np.float64, count=len(c), offset=8 * c.offset)
        parts.append(block)
        rows += len(block)
        while rows >= rows_per_block:
            whole = np.concatenate(parts)
            yield whole[:rows_per_block]
            parts, rows = [whole[rows_per_block:]], rows - rows_per_block
    if rows:
        yield np.concatenate(parts)


__all__ = ["ArrowFallback", "float_blocks", "open_reader", "pyarrow_csv"]

"""The simulator's samples as CSV: ``t``, the channel columns and the behaviour label.

The files are what ``fsqd replay`` reads and what ``fsqd simulate`` writes; values have
9 significant digits (float32 exact), so a CSV read back equals the samples written.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TextIO

import numpy as np

from fsqd.sim.simulator import NOISE_BLOCK, LabelledSamples, Simulator
from fsqd.units import CHANNELS, column_names

CSV_CHUNK = NOISE_BLOCK  # samples per CSV write: larger chunks only fragment the heap


def csv_header(devices: int, *, label_column: bool = True) -> str:
    names = column_names(CHANNELS, devices)
    return ",".join(["t", *names, *(["label"] if label_column else [])]) + "\n"


def csv_rows(rec: LabelledSamples, *, iso_time: bool = False, label_column: bool = True) -> str:
    """The CSV rows of ``rec`` (no header): 9 significant digits, float32 exact."""
    buf = io.StringIO()
    np.savetxt(buf, rec.x, fmt="%.9g", delimiter=",")
    rows = buf.getvalue().splitlines()
    if iso_time:
        stamps = np.datetime_as_string(
            np.round(rec.t * 1e6).astype("int64").astype("datetime64[us]"), unit="us"
        )
        times = [f"{s}Z" for s in stamps.tolist()]
    else:
        times = [f"{v:.6f}" for v in rec.t.tolist()]
    if label_column:
        names = [rec.behaviours[i] for i in rec.labels.tolist()]
        return "".join(f"{a},{b},{c}\n" for a, b, c in zip(times, rows, names, strict=True))
    return "".join(f"{a},{b}\n" for a, b in zip(times, rows, strict=True))


def write_csv(
    rec: LabelledSamples, path: str | Path, *, iso_time: bool = False, label_column: bool = True
) -> None:
    """Header ``t,ax,...,mz[,label]``; values with 9 significant digits (float32 exact)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        fh.write(csv_header(rec.x.shape[1] // len(CHANNELS), label_column=label_column))
        fh.write(csv_rows(rec, iso_time=iso_time, label_column=label_column))


def stream_csv(
    sim: Simulator,
    samples: int,
    fh: TextIO,
    *,
    iso_time: bool = False,
    label_column: bool = True,
    chunk: int = CSV_CHUNK,
) -> None:
    """Write the next ``samples`` of ``sim`` as CSV, ``chunk`` samples at a time: memory
    stays bounded by the chunk, and the bytes equal ``write_csv`` of one big read."""
    fh.write(csv_header(sim.config.devices, label_column=label_column))
    done = 0
    while done < samples:
        rec = sim.read(min(chunk, samples - done))
        fh.write(csv_rows(rec, iso_time=iso_time, label_column=label_column))
        done += len(rec.t)


__all__ = ["CSV_CHUNK", "csv_header", "csv_rows", "stream_csv", "write_csv"]

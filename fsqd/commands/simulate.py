"""`fsqd simulate`: write a simulated IMU recording to CSV (demo data, test data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fsqd.console import note
from fsqd.errors import OutputError
from fsqd.outfile import text_output


@dataclass(frozen=True)
class SimulateOptions:
    out: Path  # the CSV file to write
    duration_s: float = 600.0
    rate_hz: float = 100.0
    devices: int = 1  # IMUs on the body
    seed: int = 0
    mean_bout_s: float = 8.0  # mean behaviour bout
    start: float = 0.0  # the first timestamp, UNIX seconds (or seconds from 0)
    iso_time: bool = False  # ISO-8601 UTC timestamps
    labels: bool = True  # the behaviour column


def simulate(opts: SimulateOptions) -> int:
    """Stream the recording to CSV chunk by chunk: a day at 100 Hz never sits in memory."""
    from fsqd.sim.csvout import stream_csv
    from fsqd.sim.simulator import SimConfig, Simulator

    seconds = opts.duration_s
    config = SimConfig(
        rate_hz=opts.rate_hz,
        devices=opts.devices,
        mean_bout_s=opts.mean_bout_s,
        seed=opts.seed,
        start_time=opts.start,
    )
    sim = Simulator(config)
    samples = round(seconds * config.rate_hz)
    out = Path(opts.out)
    with text_output(out, make_parents=True) as fh:
        try:
            stream_csv(sim, samples, fh, iso_time=opts.iso_time, label_column=opts.labels)
        except OSError as e:
            raise OutputError(f"{out}: cannot write: {e.strerror or e}") from None
    note(f"wrote {out}: {samples} samples, {seconds:g} s at {opts.rate_hz:g} Hz")
    return 0


__all__ = ["SimulateOptions", "simulate"]

"""`fsqd simulate`: write a simulated IMU recording to CSV (demo data, test data)."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

from fsqd.console import note
from fsqd.errors import OutputError, UsageError
from fsqd.outfile import text_output
from fsqd.sensors.files import iso_to_epoch

MAX_SECONDS = 24 * 3600
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|m|min|s)?\s*$")


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise UsageError(f"duration must look like 90s, 10m or 1h, got {text!r}")
    value = float(m.group(1)) * {"h": 3600, "m": 60, "min": 60}.get(m.group(2) or "s", 1)
    if not 0 < value <= MAX_SECONDS:
        raise UsageError(f"duration must be between 0 and 24 h, got {text!r}")
    return value


def parse_start(text: str) -> float:
    """'0' (relative seconds), 'now', or an ISO-8601 time -> seconds."""
    if text == "now":
        return dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return iso_to_epoch(text)
    except ValueError:
        raise UsageError(f"--start must be seconds, 'now' or ISO-8601, got {text!r}") from None


def simulate_to_file(args: argparse.Namespace) -> int:
    """Stream the recording to CSV chunk by chunk: a day at 100 Hz never sits in memory."""
    from fsqd.sensors.sim import SimConfig, Simulator, stream_csv

    seconds = parse_duration(args.duration)
    config = SimConfig(
        rate_hz=args.rate,
        devices=args.devices,
        mean_bout_s=args.mean_bout,
        seed=args.seed,
        start_time=parse_start(args.start),
    )
    sim = Simulator(config)
    samples = round(seconds * config.rate_hz)
    out = Path(args.out)
    with text_output(out, make_parents=True) as fh:
        try:
            stream_csv(sim, samples, fh, iso_time=args.iso_time, label_column=not args.no_labels)
        except OSError as e:
            raise OutputError(f"{out}: cannot write: {e.strerror or e}") from None
    note(f"wrote {out}: {samples} samples, {seconds:g} s at {args.rate:g} Hz")
    return 0

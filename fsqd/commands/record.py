"""`fsqd record`: raw samples from the configured sensors to a file, until told to stop.

The acquisition thread fills the ring; this loop wakes when samples land, writes them
(native ``.fsqr`` blocks or CSV), and on a terminal keeps one status line up to date.
Ctrl-C (or SIGTERM) ends the recording cleanly: the thread stops, what is left in the
ring is written, the file is flushed and closed.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from fsqd.chunk import SampleChunk
from fsqd.clock import Clock
from fsqd.console import note
from fsqd.errors import NoInputError, UsageError
from fsqd.imu.acquire.acquisition import Acquisition, SensorStatus, open_acquisition
from fsqd.imu.acquire.config import read_sensor_file
from fsqd.outfile import output_target
from fsqd.recordings.fsqr import SUFFIX
from fsqd.recordings.writers import CsvWriter, NativeWriter, recording_header

STATUS_EVERY_S = 0.5
GIVE_UP_S = 3.0  # a wrong chip (WHO_AM_I) that never produced a sample ends the run


def pick_format(out: Path, fmt: str | None) -> str:
    fmt = fmt or ("csv" if out.suffix.lower() == ".csv" else "native")
    if fmt == "native" and out.suffix.lower() != SUFFIX:
        raise UsageError(
            f"native recordings are named *{SUFFIX} (so fsqd replay knows them): {out}"
        )
    if fmt not in ("native", "csv"):
        raise UsageError(f"--format must be native or csv, got {fmt!r}")
    return fmt


def status_line(elapsed: float, status: list[SensorStatus]) -> str:
    first = status[0]
    gaps = sum(max(0, s.segments - 1) for s in status)
    lost = sum(s.lost for s in status)
    states = " ".join(f"{s.name}:{s.state}" for s in status)
    return (
        f"{elapsed:7.1f} s  {first.samples} samples  {first.rate_hz:.2f} Hz  "
        f"gaps {gaps}  lost {lost}  {states}"
    )


@contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM (systemd, `kill`) end the recording by setting ``stop``.

    The handler only sets a flag the loop reads between waits: an exception raised at an
    arbitrary point could land inside a lock-holding call (a threading.Event's wait, the
    ring's read) and leave the acquisition thread blocked for ever at stop. A second
    signal raises KeyboardInterrupt: whoever insists gets out. SIGINT that was ignored
    when we started (a background job) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()  # safe: this thread never holds stop's lock (the loop only calls is_set)

    sigs = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        sigs.append(signal.SIGINT)
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def record(
    config: Path,
    out: Path,
    *,
    duration_s: float | None = None,
    fmt: str | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    tty: TextIO | None = None,
) -> list[SensorStatus]:
    """Record until ``duration_s`` passes, ``stop`` is set, or Ctrl-C; returns the status."""
    fmt = pick_format(out, fmt)
    sensors = read_sensor_file(config)
    acq = open_acquisition(sensors, len(sensors), clock=clock)
    header = recording_header(
        acq.devices,
        acq.nominal_rate_hz,
        [{"name": s.name, "driver": s.driver, "bus": s.bus, "address": s.address} for s in sensors],
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )

    def open_writer() -> NativeWriter | CsvWriter:
        return NativeWriter(out, header) if fmt == "native" else CsvWriter(out, header)

    # A file is created (or appended to) with the first samples: a sensor that never
    # delivers (a wrong chip) leaves no header-only file, nor a new session in an old
    # one. A FIFO or a device is opened now, as before: nothing is left behind there,
    # and a FIFO waits for its reader before the acquisition starts.
    writer: NativeWriter | CsvWriter | None = open_writer() if output_target(out).special else None

    tried = False  # opened once at most: a refusal (other channels) is not retried at stop

    def write(chunk: SampleChunk) -> None:
        nonlocal writer, tried
        if writer is None:
            if not len(chunk) or tried:
                return
            tried = True
            writer = open_writer()
        writer.write(chunk)

    woke = threading.Event()
    stop = stop or threading.Event()
    now = acq.clock.now  # the acquisition's clock: a manual one in tests
    start = now()
    shown = 0.0
    try:
        with _signals_stop(stop):
            acq.start(woke.set)
            try:
                while not stop.is_set():
                    woke.wait(0.25)  # bounded: a signal sets ``stop`` without waking us
                    woke.clear()
                    for chunk in acq.read():
                        write(chunk)
                    elapsed = now() - start
                    if tty is not None and elapsed - shown >= STATUS_EVERY_S:
                        shown = elapsed
                        tty.write("\r" + status_line(elapsed, acq.status()) + "\x1b[K")
                        tty.flush()
                    _check_alive(acq, elapsed)
                    if duration_s is not None and elapsed >= duration_s:
                        break
            except KeyboardInterrupt:
                pass  # a second Ctrl-C, or one outside the main thread's handler
    finally:
        acq.stop()
        try:
            # After a failed write (a full disk) nothing more is written: the file ends at
            # its last whole block or line, and that error is the one reported.
            if writer is None or not writer.failed:
                for chunk in acq.read():
                    write(chunk)
        finally:
            status = acq.status()
            if writer is not None:
                writer.close([asdict(s) for s in status])
            if tty is not None:
                tty.write("\n")
    return status


def _check_alive(acq: Acquisition, elapsed: float) -> None:
    if elapsed < GIVE_UP_S:
        return
    for r in acq.readers:
        if r.chip_id_error and r.samples == 0:
            raise NoInputError(f"sensor {r.name!r}: {r.message}")


@dataclass(frozen=True)
class RecordOptions:
    config: Path  # a TOML file with [[sensor]] tables
    out: Path  # FILE.fsqr (native) or FILE.csv
    duration_s: float | None = None  # None: until Ctrl-C or SIGTERM
    format: str | None = None  # "native" or "csv" (None: from the suffix of ``out``)


def record_to_file(opts: RecordOptions) -> int:
    """``fsqd record``: record, then one line on what was recorded."""
    tty = sys.stderr if sys.stderr.isatty() else None
    out = opts.out
    status = record(opts.config, out, duration_s=opts.duration_s, fmt=opts.format, tty=tty)
    samples = status[0].samples
    gaps = sum(max(0, s.segments - 1) for s in status)
    lost = sum(s.lost for s in status)
    if samples == 0:
        why = "; ".join(f"{s.name}: {s.message or s.state}" for s in status)
        raise NoInputError(f"no samples recorded ({why})")
    note(f"recorded {samples} samples to {out} ({gaps} gaps, {lost} samples lost)")
    return 0


__all__ = ["RecordOptions", "pick_format", "record", "record_to_file", "status_line"]

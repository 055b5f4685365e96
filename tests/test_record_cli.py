"""`fsqd record`: emulated sensors to CSV / .fsqr, replayed by `fsqd replay`."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RunCli
from waiting import wait_until

from fsqd.clock import ManualClock
from fsqd.commands.record import _signals_stop, record
from fsqd.errors import NoInputError, OutputError
from fsqd.imu.drivers.lsm6dsox import internal_rate_hz
from fsqd.recordings import ReadOptions, open_recording
from fsqd.recordings.fsqr import KIND_SAMPLES, KIND_STATUS, scan
from fsqd.recordings.writers import NativeWriter
from fsqd.sim import SimConfig, Simulator, write_csv
from fsqd.testing import PacedClock
from fsqd.units import CHANNELS

OSC = 0.015
CONFIG = f"""
[model]            # other tables belong to the daemon's config: record ignores them
path = "elsewhere"

[[sensor]]
name = "collar"
driver = "lsm6dsox"
bus = "emulated"
address = 0x6a
rate_hz = 104
accel_range_g = 16
gyro_range_dps = 2000
[sensor.emulated]
seed = 4
oscillator_error = {OSC}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "fsqd.toml"
    p.write_text(CONFIG)
    return p


def codes(out: str) -> list[tuple[float, int]]:
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(r["t_start"], r["code"]) for r in rows]


def test_recorded_csv_replays_to_the_simulators_codes(
    run_cli: RunCli, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "rec.csv"
    status = record(config, csv, duration_s=60.0, clock=PacedClock(40))
    capsys.readouterr()
    assert status[0].lost == 0 and status[0].segments == 1
    code, out_rec, err = run_cli("replay", csv)
    assert code == 0, err
    # The simulator's own samples at the same times: sample k of the chip was taken at
    # t0 + k / true_rate, with the animal's signal at exactly that time.
    t = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=0)
    true_rate = internal_rate_hz(4) * (1 + OSC)
    assert np.abs(np.diff(t) - 1 / true_rate).max() < 5e-5
    sim = Simulator(SimConfig(rate_hz=true_rate, seed=4, start_time=float(t[0])))
    truth = sim.read(len(t))
    assert np.abs(truth.t - t).max() < 1e-3
    ref = tmp_path / "sim.csv"
    write_csv(truth, ref, label_column=False)
    code, out_sim, err = run_cli("replay", ref)
    assert code == 0, err
    got, want = codes(out_rec), codes(out_sim)
    assert len(got) == len(want) >= 100
    assert all(abs(a[0] - b[0]) < 1e-3 for a, b in zip(got, want, strict=True))
    same = sum(a[1] == b[1] for a, b in zip(got, want, strict=True))
    # Quantisation (int16 at 16 g / 2000 dps) and a different magnetometer chip (its own
    # noise, interpolated) move a few windows across an FSQ boundary; no more.
    assert same / len(got) >= 0.9, f"{same}/{len(got)} codes equal"


def test_native_recording_replays_and_keeps_the_status(
    run_cli: RunCli, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec.fsqr"
    record(config, out, duration_s=10.0, clock=PacedClock(20))
    capsys.readouterr()  # the acquisition's log lines
    rec = open_recording(out, ReadOptions(channels=CHANNELS))
    n = sum(len(c) for c in rec.chunks())
    assert n > 1000  # at least the 10 s asked for (a manual clock may run past it)
    blocks = list(scan(out.open("rb"), out))
    assert blocks[-1].kind == KIND_STATUS
    status = json.loads(blocks[-1].body)
    assert status[0]["name"] == "collar" and status[0]["samples"] == n
    code, stdout, err = run_cli("replay", out)
    assert code == 0, err
    assert len(codes(stdout)) >= 15


def test_status_line_on_a_terminal(config: Path, tmp_path: Path) -> None:
    tty = io.StringIO()
    record(config, tmp_path / "r.csv", duration_s=3.0, clock=PacedClock(3), tty=tty)
    text = tty.getvalue()
    assert text.count("\r") >= 2 and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "samples" in last and "Hz" in last and "collar:ok" in last and "gaps 0" in last


def test_usage_and_config_errors_are_one_line_with_sysexits(
    run_cli: RunCli, config: Path, tmp_path: Path
) -> None:
    code, _, err = run_cli(
        "record", "--config", config, "--out", tmp_path / "x.bin", "--duration", "1s"
    )
    assert code == 64 and "named *.fsqr" in err
    code, _, err = run_cli(
        "record", "--config", tmp_path / "none.toml", "--out", tmp_path / "a.csv"
    )
    assert code == 78 and "no such config file" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace("address = 0x6a", "adress = 0x6a"))
    code, _, err = run_cli("record", "--config", bad, "--out", tmp_path / "a.csv")
    assert code == 78 and "adress: unknown key (did you mean 'address'?)" in err
    assert len(err.strip().splitlines()) == 1


# `python -m fsqd` as a terminal's foreground job starts it: SIGINT at its default. A test
# runner started in the background (`cmd &` in a script, nohup) passes SIGINT on ignored,
# and Python keeps it ignored: Ctrl-C would never arrive.
AS_FOREGROUND_JOB = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('fsqd', run_name='__main__', alter_sys=True)",
]


def samples_on_disk(path: Path) -> int:
    """The samples in the whole blocks a recording has written so far."""
    if not path.exists() or path.stat().st_size < 6:
        return 0
    with path.open("rb") as fh:
        blocks = [b for b in scan(fh, path) if b.kind == KIND_SAMPLES]
    return sum(struct.unpack_from("<BI", b.body)[1] for b in blocks)


def test_ctrl_c_ends_a_recording_cleanly(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.fsqr"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [*AS_FOREGROUND_JOB, "record", "--config", str(config), "--out", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Ctrl-C once more than 100 samples are on disk (whole, synced blocks).
    wait_until(lambda: samples_on_disk(out) > 100, what="100 samples recorded")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "recorded" in err and "Traceback" not in err
    blocks = list(scan(out.open("rb"), out))
    assert blocks[-1].kind == KIND_STATUS  # flushed and closed, not cut off
    rec = open_recording(out, ReadOptions(channels=CHANNELS))
    assert sum(len(c) for c in rec.chunks()) > 100


def test_a_signal_ends_the_recording_through_the_stop_flag(config: Path, tmp_path: Path) -> None:
    """SIGTERM sets the stop flag the loop reads; it never raises inside the loop, where an
    exception could land in a lock-holding call and hang the acquisition thread at stop."""
    out = tmp_path / "r.fsqr"
    stop = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def signal_when_recording() -> None:
        wait_until(lambda: samples_on_disk(out) > 20, what="20 samples recorded")
        signal.pthread_kill(main, signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    sender = threading.Thread(target=signal_when_recording)
    sender.start()
    status = record(config, out, duration_s=120.0, stop=stop)
    sender.join()
    assert stop.is_set()  # ended by the flag, not by the duration
    assert status[0].samples > 20
    assert list(scan(out.open("rb"), out))[-1].kind == KIND_STATUS
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_a_second_signal_gets_out_and_an_ignored_ctrl_c_stays_ignored() -> None:
    stop = threading.Event()
    with _signals_stop(stop):
        signal.raise_signal(signal.SIGINT)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)  # whoever insists gets out
    stop.clear()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts background jobs
    try:
        with _signals_stop(stop):
            signal.raise_signal(signal.SIGINT)
            assert not stop.is_set()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_wrong_chip_ends_the_recording_with_what_was_found(config: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.fsqr"
    record(config, old, duration_s=2.0, clock=PacedClock(20))
    before = old.read_bytes()
    config.write_text(CONFIG + "who_am_i = 0x69\n")
    with pytest.raises(NoInputError, match=r"'collar': .*reads 0x69, expected 0x6C"):
        record(config, tmp_path / "x.csv", duration_s=30.0, clock=ManualClock())
    # No samples, no file: neither a header-only CSV nor a new session in an old recording.
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(NoInputError, match="reads 0x69"):
        record(config, old, duration_s=30.0, clock=ManualClock())
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsqd.toml", "old.fsqr"]


SECOND = """
[[sensor]]
name = "back"
driver = "lsm6dsox"
bus = "emulated"
address = 0x6b
mag_address = 0x1e
rate_hz = 104
"""


def test_an_append_of_other_channels_is_refused_once(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.fsqr"
    record(config, old, duration_s=2.0, clock=PacedClock(20))
    before = old.read_bytes()
    opened = []

    class Counted(NativeWriter):
        def __init__(self, *args: Any, **kw: Any) -> None:
            opened.append(1)
            super().__init__(*args, **kw)

    monkeypatch.setattr("fsqd.commands.record.NativeWriter", Counted)
    config.write_text(CONFIG + SECOND)  # ax_0..mz_1, where the file has ax..mz
    with pytest.raises(OutputError, match="cannot append: it records channels"):
        record(config, old, duration_s=30.0, clock=PacedClock(20))
    assert old.read_bytes() == before
    assert len(opened) == 1  # refused at the first samples, not tried again at the end

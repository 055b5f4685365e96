"""`fsqd replay` on recordings shaped like the ones people have: odd rates, ms/us/ns clocks,
jitter, bursts, wrong units, restarts. Each is either right, corrected with a note, or refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import RunCli

from fsqd.sim import SimConfig, simulate

SECONDS = 20.0
HEADER = "timestamp,ax,ay,az,gx,gy,gz,mx,my,mz\n"
EPOCH = 1_795_341_600.0  # 2026-11-22T10:00:00Z


def write(path: Path, stamps: list[str], x: np.ndarray) -> Path:
    with path.open("w") as fh:
        fh.write(HEADER)
        body = np.char.add(np.asarray(stamps, dtype=str), ",")
        values = [",".join(f"{v:.5g}" for v in row) for row in x]
        fh.write("".join(f"{s}{v}\n" for s, v in zip(body, values, strict=True)))
    return path


def signal(rate: float, n: int | None = None) -> np.ndarray:
    x = simulate(SECONDS, SimConfig(seed=int(rate * 10) % 997, rate_hz=rate)).x
    return x if n is None else np.resize(x, (n, x.shape[1]))


def ms_clock(rate: float) -> tuple[list[str], np.ndarray]:
    """A chip at ``rate`` logged with a millisecond clock: integer ms, steps like 9,10,10."""
    x = signal(rate)
    t = np.floor(np.arange(len(x)) * 1000 / rate).astype(np.int64)
    return [str(v) for v in t], x


def phone() -> tuple[list[str], np.ndarray]:
    """A phone logger: independent jittery steps averaging 1 / 95.6 s, ms resolution."""
    steps = np.random.default_rng(7).gamma(8.0, 1.0, int(SECONDS * 95.6) - 1)
    steps *= (1 / 95.6) / steps.mean()  # averaging exactly 95.6 Hz
    t = np.round(np.concatenate([[0.0], np.cumsum(steps)]) * 1000).astype(np.int64)
    assert (np.diff(t) > 0).all()
    return [str(v) for v in t], signal(95.6, len(t))


def bursty() -> tuple[list[str], np.ndarray]:
    """5 samples per 50 ms, stamped 0.1 ms apart, as UNIX epoch microseconds."""
    x = signal(100.0)
    i = np.arange(len(x))
    t = int(EPOCH * 1e6) + (i // 5) * 50_000 + (i % 5) * 100
    return [str(v) for v in t], x


def scaled(factor: float) -> Callable[[], tuple[list[str], np.ndarray]]:
    def make() -> tuple[list[str], np.ndarray]:
        x = signal(100.0)
        t = (EPOCH + np.arange(len(x)) / 100) * factor
        return [str(round(v)) if factor > 1 else f"{v:.2f}" for v in t], x

    return make


def relative_ns() -> tuple[list[str], np.ndarray]:
    x = signal(100.0)
    return [str(i * 10_000_000) for i in range(len(x))], x


def iso() -> tuple[list[str], np.ndarray]:
    x = signal(100.0)
    start = dt.datetime.fromtimestamp(EPOCH, dt.UTC)
    stamps = [(start + dt.timedelta(milliseconds=10 * i)).isoformat() for i in range(len(x))]
    return [s.replace("+00:00", "Z") for s in stamps], x


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[list[str], np.ndarray]]
    unit: str
    rate: float  # what the fit must find, within 0.5 %
    action: str  # what the summary must say was done


CASES = [
    Case("104 Hz, ms clock", lambda: ms_clock(104.0), "ms", 104.0, "resampling 104"),
    Case("208 Hz, ms clock", lambda: ms_clock(208.0), "ms", 208.0, "resampling 208"),
    Case("416 Hz, ms clock", lambda: ms_clock(416.0), "ms", 416.0, "resampling 416"),
    Case("833 Hz, ms clock", lambda: ms_clock(833.0), "ms", 833.0, "resampling 833"),
    Case("64 Hz, 15/16 ms steps", lambda: ms_clock(64.0), "ms", 64.0, "resampling 64"),
    Case("phone, 95.6 Hz jittery", phone, "ms", 95.6, "resampling 95."),
    Case("bursty, 5 per 50 ms, epoch us", bursty, "us", 100.0, "re-spaced evenly at 100"),
    Case("100 Hz, epoch s", scaled(1.0), "s", 100.0, "not resampled"),
    Case("100 Hz, epoch ms", scaled(1e3), "ms", 100.0, "not resampled"),
    Case("100 Hz, epoch us", scaled(1e6), "us", 100.0, "not resampled"),
    Case("100 Hz, epoch ns", scaled(1e9), "ns", 100.0, "not resampled"),
    Case("100 Hz, relative ns", relative_ns, "ns", 100.0, "not resampled"),
    Case("100 Hz, ISO-8601", iso, "iso", 100.0, "not resampled"),
]


def codes(out: str) -> list[dict[str, float]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_world_timestamps(run_cli: RunCli, tmp_path: Path, case: Case) -> None:
    stamps, x = case.make()
    path = write(tmp_path / "rec.csv", stamps, x)
    code, out, err = run_cli("replay", path, "--hop", "50")
    assert code == 0, err
    assert f"time unit {case.unit} " in err
    rate = float(re.search(r"; rate ([0-9.]+) Hz", err).group(1))  # type: ignore[union-attr]
    assert rate == pytest.approx(case.rate, rel=0.005)
    assert case.action in err and "step jitter" in err
    rows = codes(out)
    span = rows[-1]["t_end"] - rows[0]["t_start"]
    # Windows are 100 samples at 100 Hz however the file was timed: 0.99 s long, on the grid.
    assert all(r["t_end"] - r["t_start"] == pytest.approx(0.99, rel=1e-3) for r in rows)
    assert len(rows) == pytest.approx(SECONDS * 100 / 50 - 1, abs=2)
    assert span == pytest.approx(SECONDS - 1, abs=1.0)
    assert "warning" not in err  # the values are in the card's units


def test_rate_given_with_timestamps_must_agree(run_cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path / "rec.csv", *ms_clock(104.0))
    code, out, err = run_cli("replay", path, "--rate", "100")
    assert (code, out) == (65, "") and err.count("\n") == 1
    assert "--rate 100 Hz disagrees with the timestamps' 104.00" in err
    code, _, err = run_cli("replay", path, "--rate", "104")
    assert code == 0 and "resampling 104" in err


def test_implausible_rates_are_refused_without_allocating(run_cli: RunCli, tmp_path: Path) -> None:
    stamps, x = scaled(1e6)()
    path = write(tmp_path / "rec.csv", stamps, x)
    # Epoch microseconds read as seconds: 1e-4 Hz (it used to build a grid of ~24 GB).
    code, _, err = run_cli("replay", path, "--time-unit", "s")
    assert code == 65 and "sample rate 0.0001 Hz is implausible" in err
    code, _, err = run_cli("replay", path, "--time-unit", "ns")
    assert code == 65 and "sample rate 100000 Hz is implausible" in err


def test_milli_g_warns_with_the_fix_and_strict_refuses(run_cli: RunCli, tmp_path: Path) -> None:
    stamps, x = scaled(1.0)()
    x = x.copy()
    x[:, :3] *= 1000 / 9.80665
    path = write(tmp_path / "mg.csv", stamps, x)
    code, out, err = run_cli("replay", path)
    assert code == 0 and out
    assert "warning: ax..az look like milli-g" in err and "--scale 'a*=0.00980665'" in err
    assert "|a| median (g) 1.0" in err or "|a| median (g) 9" in err or "ax..az" in err
    code, out, err = run_cli("replay", path, "--strict")
    assert (code, out) == (65, "") and err.count("\n") == 1 and "(--strict)" in err
    code, out, err = run_cli("replay", path, "--scale", "a*=0.00980665", "--strict")
    assert code == 0 and "warning" not in err


def test_deg_per_second_warns_with_the_fix(run_cli: RunCli, tmp_path: Path) -> None:
    stamps, x = scaled(1.0)()
    x = x.copy()
    x[:, 3:6] *= 180 / np.pi
    code, _, err = run_cli("replay", write(tmp_path / "deg.csv", stamps, x))
    assert code == 0 and "warning: gx..gz look like deg/s" in err
    assert "--scale 'g*=0.0174533'" in err


def test_a_logger_restart(run_cli: RunCli, tmp_path: Path) -> None:
    stamps, x = ms_clock(100.0)
    half = len(stamps) // 2
    restarted = stamps[:half] + stamps[: len(stamps) - half]  # the clock starts again at 0
    path = write(tmp_path / "restart.csv", restarted, x)
    code, out, err = run_cli("replay", path)
    assert (code, out) == (65, "")
    assert f"{path}:{half + 2}: timestamp 0.0 is not after the previous one" in err
    code, out, err = run_cli("replay", path, "--skip-bad-rows", "--hop", "50")
    assert code == 0 and "time going back 1" in err and "bad rows skipped 0" in err
    assert len(codes(out)) == 2 * ((half - 100) // 50 + 1)  # both halves, not the first only


def test_float32_overflow_names_file_and_line(run_cli: RunCli, tmp_path: Path) -> None:
    stamps, x = scaled(1.0)()
    x = x.astype(np.float64)
    x[123, 4] = 1e39
    code, out, err = run_cli("replay", write(tmp_path / "big.csv", stamps, x))
    assert (code, out) == (65, "")
    assert "big.csv:125: value 1e+39 in column 'gy' does not fit float32" in err


def test_out_naming_a_directory_and_absurd_speed_are_one_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = write(tmp_path / "rec.csv", *scaled(1.0)())
    code, out, err = run_cli("replay", path, "--out", tmp_path)
    assert (code, out) == (
        74,
        "",
    ) and err == f"fsqd: error: {tmp_path}: is a directory; --out takes a file name\n"
    for speed in ("1e-300", "1e300", "0", "-1", "nan", "inf"):
        code, out, err = run_cli("replay", path, "--speed", speed)
        assert (code, out) == (64, "") and "--speed must be 'max' or a factor" in err, speed

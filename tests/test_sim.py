"""The IMU simulator: determinism, streaming, physics, labels and CSV output."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fsqd.errors import UsageError
from fsqd.sim import LabelledSamples, SimConfig, Simulator, simulate, stream_csv, write_csv
from fsqd.units import BEHAVIOURS, CHANNELS


@pytest.fixture(scope="module")
def rec_10min() -> LabelledSamples:
    return simulate(600, SimConfig(seed=3))


def by(rec: LabelledSamples, name: str) -> np.ndarray:
    return rec.x[rec.labels == BEHAVIOURS.index(name)]


def test_deterministic_for_a_seed() -> None:
    a, b = simulate(30, SimConfig(seed=1)), simulate(30, SimConfig(seed=1))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, simulate(30, SimConfig(seed=2)).x)


def test_streaming_equals_batch() -> None:
    cfg = SimConfig(seed=5, devices=2)
    whole = simulate(120, cfg)
    sim = Simulator(cfg)
    parts = [sim.read(1), sim.read(37), sim.read(5000), sim.read(len(whole.t) - 5038)]
    np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), whole.x)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), whole.labels)


def test_physics_per_behaviour(rec_10min: LabelledSamples) -> None:
    assert set(np.unique(rec_10min.labels)) == set(range(len(BEHAVIOURS)))
    rest, shake, turn = by(rec_10min, "rest"), by(rec_10min, "shake"), by(rec_10min, "turn")
    assert np.linalg.norm(rest[:, :3], axis=1).mean() == pytest.approx(9.81, abs=0.1)
    assert rest[:, 3:6].std() < 0.05 < 1.0 < shake[:, 3:6].std()
    mag = np.linalg.norm(rec_10min.x[:, 6:9], axis=1)
    assert 40 < mag.mean() < 56 and mag.std() < 5.0  # hard iron shifts it, rotation does not
    # Turning bouts spin about the vertical far more than walking ones.
    walk = by(rec_10min, "walk")
    assert np.abs(turn[:, 5]).mean() > 3 * np.abs(walk[:, 5]).mean()


@pytest.mark.parametrize(("name", "band"), [("walk", (1.4, 2.3)), ("trot", (2.7, 3.7))])
def test_gait_frequency(name: str, band: tuple[float, float]) -> None:
    rec = simulate(900, SimConfig(seed=4, behaviours=(name, "rest")))
    x = rec.x[rec.labels == BEHAVIOURS.index(name)][:1024, 2]  # vertical acceleration
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    peak = np.fft.rfftfreq(len(x), 1 / 100)[spectrum.argmax()]
    assert band[0] <= peak <= band[1]


def test_any_rate_sees_the_same_behaviours_at_the_same_times() -> None:
    a = simulate(120, SimConfig(seed=6, rate_hz=50))
    b = simulate(120, SimConfig(seed=6, rate_hz=200))
    np.testing.assert_array_equal(a.labels, b.labels[::4])
    assert np.diff(b.t) == pytest.approx(np.full(len(b.t) - 1, 0.005))


def test_devices_are_correlated_but_differ() -> None:
    rec = simulate(60, SimConfig(seed=7, devices=2))
    g0 = np.linalg.norm(rec.x[:, 3:6], axis=1)
    g1 = np.linalg.norm(rec.x[:, 12:15], axis=1)
    assert not np.allclose(rec.x[:, :9], rec.x[:, 9:])
    assert np.corrcoef(g0, g1)[0, 1] > 0.9  # one body, two mountings
    assert rec.column_names()[9] == "ax_1"


def test_csv_output(tmp_path: Path) -> None:
    rec = simulate(2, SimConfig(seed=8, start_time=1.7e9))
    write_csv(rec, tmp_path / "a.csv", iso_time=True)
    with (tmp_path / "a.csv").open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["t", *CHANNELS, "label"]
    assert table[1][0].endswith("Z") and table[1][-1] in BEHAVIOURS
    np.testing.assert_array_equal(np.array(table[1][1:10], np.float32), rec.x[0])


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        Simulator(SimConfig(rate_hz=0))
    with pytest.raises(UsageError, match="unknown behaviours"):
        Simulator(SimConfig(behaviours=("fly",)))


def test_one_sample_reads_across_many_bouts_equal_one_read() -> None:
    cfg = SimConfig(seed=9, rate_hz=20, mean_bout_s=0.5)
    whole = simulate(200, cfg)
    sim = Simulator(cfg)
    parts = [sim.read(1) for _ in range(len(whole.t))]
    np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), whole.x)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), whole.labels)
    assert len(np.unique(whole.labels)) == len(BEHAVIOURS)


def test_memory_does_not_grow_with_time() -> None:
    """A simulator read for hours keeps only the bouts it still needs."""
    sim = Simulator(SimConfig(seed=10, rate_hz=10, mean_bout_s=2.0))
    held = []
    for _ in range(60):
        sim.read(6000)  # 10 minutes
        held.append(sim.bouts_held)
    assert sim.samples_read == 360_000
    assert max(held) <= 5  # ~5400 bouts went by


def test_streamed_csv_equals_one_batch_write(tmp_path: Path) -> None:
    cfg = SimConfig(seed=12, devices=2, start_time=1.7e9)
    write_csv(simulate(30, cfg), tmp_path / "batch.csv", iso_time=True)
    with (tmp_path / "stream.csv").open("w", newline="") as fh:
        stream_csv(Simulator(cfg), 3000, fh, iso_time=True, chunk=777)
    assert (tmp_path / "stream.csv").read_bytes() == (tmp_path / "batch.csv").read_bytes()


def test_cli_simulate_streams_the_csv(tmp_path: Path) -> None:
    from fsqd.cli import main

    out = tmp_path / "sim.csv"
    assert main(["simulate", "--out", str(out), "--duration", "3m", "--seed", "4"]) == 0
    write_csv(simulate(180, SimConfig(seed=4)), tmp_path / "ref.csv")
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["simulate", "--out", str(blocked / "x.csv"), "--duration", "1s"]) == 74

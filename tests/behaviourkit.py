"""Simulated windows with their true behaviour, and a card that carries a semi-Markov model.

Until a card is calibrated from labelled data, the tests and the benchmark give the bundled
model a semi-Markov model fitted (``fit_semi_markov``) to the simulator's labels on seeds
they never evaluate on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.behaviour.semimarkov_fit import fit_semi_markov
from fsqd.chunk import SampleChunk
from fsqd.model.calibration import Calibration
from fsqd.model.package import ModelPackage, load_package
from fsqd.pipeline import CodePipeline
from fsqd.sim.simulator import SimConfig, simulate
from fsqd.stream.windows import Windower

FIT_SEEDS = (9001, 9002, 9003, 9004)  # never used to evaluate


@dataclass(frozen=True)
class SimWindows:
    t_start: npt.NDArray[np.float64]
    t_end: npt.NDArray[np.float64]
    truth: npt.NDArray[np.int64]  # the behaviour at each window's centre sample
    logits: npt.NDArray[np.float32] | None


def sim_windows(
    package: ModelPackage, seed: int, seconds: float, *, logits: bool = True, start: float = 0.0
) -> SimWindows:
    card = package.card
    s = simulate(seconds, SimConfig(rate_hz=card.sample_rate_hz, seed=seed, start_time=start))
    mean, std = card.stream_mean_std()
    x = ((s.x - mean) / std).astype(np.float32)
    w = Windower(card.window, card.hop, card.stream_width).push(SampleChunk(s.t, x, True))
    centre = np.arange(len(w.t_start)) * card.hop + card.window // 2
    out = None
    if logits:
        pipe = CodePipeline(package, threads=1)
        assert pipe.head is not None
        out = pipe.head.logits(pipe.encode_windows(w).codes)
    return SimWindows(w.t_start, w.t_end, s.labels[centre].astype(np.int64), out)


def step_s(package: ModelPackage) -> float:
    return package.card.hop / package.card.sample_rate_hz


def with_semi_markov(
    package: ModelPackage | None = None, seeds: tuple[int, ...] = FIT_SEEDS, seconds: float = 1800
) -> ModelPackage:
    """The package with a semi-Markov model fitted to simulated labels of ``seeds``."""
    package = package or load_package()
    card = package.card
    assert card.head is not None
    labels = [sim_windows(package, s, seconds, logits=False).truth for s in seeds]
    spec = fit_semi_markov(labels, step_s(package), len(card.head.labels))
    cal = dataclasses.replace(card.calibration or Calibration(), semi_markov=spec)
    return dataclasses.replace(package, card=dataclasses.replace(card, calibration=cal))

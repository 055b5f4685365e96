"""A physically plausible 9-axis IMU on a moving animal, with labelled behaviours.

The body's orientation is a ZYX Euler triple (yaw psi, pitch theta, roll phi), each a
smooth function of time within a behaviour bout: a base posture, a drift rate and a few
sinusoids (gait sway, breathing, a shake). From it, with exact derivatives:

- gyroscope = body angular rate from the Euler rates (rad/s),
- accelerometer = R^T (0, 0, g) + gait acceleration in the body frame (m/s^2, gravity in),
- magnetometer = R^T B_earth (48 uT, inclination 65 deg) + hard-iron offset (uT),

then per device a fixed mounting rotation, biases and white noise. Bouts follow a Markov
chain with exponential lengths. The signal is defined in continuous time, so any sample
rate sees the same behaviours at the same times, and noise is drawn in fixed blocks of
sample indices, so streaming reads equal one batch read for the same seed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.errors import UsageError
from fsqd.units import BEHAVIOURS, CHANNELS, G, column_names

EARTH_UT = 48.0
INCLINATION = np.deg2rad(65.0)
NOISE = {"acc": 0.03, "gyro": 0.005, "mag": 0.4}  # white noise RMS per axis
NOISE_BLOCK = 4096  # samples per independently seeded noise block
_HARMONICS = 3  # sinusoids per angle / acceleration axis


@dataclass(frozen=True)
class SimConfig:
    rate_hz: float = 100.0
    devices: int = 1
    mean_bout_s: float = 8.0
    behaviours: tuple[str, ...] = BEHAVIOURS
    seed: int = 0
    start_time: float = 0.0  # time of sample 0 (UNIX epoch seconds, or 0 for relative)


@dataclass(frozen=True)
class LabelledSamples:
    """Samples from the simulator with the behaviour each was drawn in."""

    t: npt.NDArray[np.float64]  # (n,)
    x: npt.NDArray[np.float32]  # (n, 9 * devices), device-major
    labels: npt.NDArray[np.int16]  # (n,) index into behaviours
    behaviours: tuple[str, ...] = BEHAVIOURS

    def column_names(self) -> list[str]:
        return column_names(CHANNELS, self.x.shape[1] // len(CHANNELS))


@dataclass
class _Bout:
    label: int
    start: float  # seconds since sample 0
    end: float
    # angles: rows psi, theta, phi; base value, drift rate, and harmonics (amp, freq, phase)
    base: npt.NDArray[np.float64]
    rate: npt.NDArray[np.float64]
    ang_h: npt.NDArray[np.float64]  # (3, H, 3)
    acc_h: npt.NDArray[np.float64]  # (3, H, 3) body-frame acceleration harmonics

    def angles_at(self, tau: float) -> npt.NDArray[np.float64]:
        amp, freq, ph = self.ang_h[..., 0], self.ang_h[..., 1], self.ang_h[..., 2]
        wave = (amp * np.sin(2 * np.pi * freq * tau + ph)).sum(1)
        out: npt.NDArray[np.float64] = self.base + self.rate * tau + wave
        return out


def _sines(
    rng: np.random.Generator, amps: list[float], freqs: list[float]
) -> npt.NDArray[np.float64]:
    """(H, 3) rows of (amp, freq, phase); amps/freqs of fewer than H terms are zero-padded."""
    out = np.zeros((_HARMONICS, 3))
    for i, (a, f) in enumerate(zip(amps, freqs, strict=True)):
        out[i] = (a, f, rng.uniform(0, 2 * np.pi))
    return out


def _bout_shape(
    name: str, rng: np.random.Generator
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]:
    """(posture, rates, angle harmonics, acceleration harmonics) for one bout."""
    u = rng.uniform
    posture = np.array([0.0, u(-0.15, 0.15), u(-0.15, 0.15)])  # psi set by continuity
    rate = np.zeros(3)
    ang = np.zeros((3, _HARMONICS, 3))
    acc = np.zeros((3, _HARMONICS, 3))
    if name == "rest":
        posture[1:] = u(-0.4, 0.4), u(-0.6, 0.6)  # lying or sitting tilt
        breath = u(0.2, 0.4)
        ang[1] = _sines(rng, [u(0.005, 0.015)], [breath])
        acc[2] = _sines(rng, [u(0.02, 0.06)], [breath])
    elif name in ("walk", "trot", "turn"):
        f = u(1.5, 2.2) if name != "trot" else u(2.8, 3.6)
        a = u(1.5, 3.0) if name != "trot" else u(4.0, 8.0)
        if name == "turn":
            rate[0] = rng.choice([-1.0, 1.0]) * u(0.6, 1.5)
            posture[2] += -0.1 * np.sign(rate[0])  # lean into the turn
            a *= 0.6
        else:
            rate[0] = u(-0.05, 0.05)  # heading drifts
        sway = 0.06 if name != "trot" else 0.12
        ang[1] = _sines(rng, [u(0.5, 1.0) * sway / 2], [f])
        ang[2] = _sines(rng, [u(0.5, 1.0) * sway], [f / 2])
        acc[2] = _sines(rng, [a, a * u(0.1, 0.3)], [f, 2 * f])  # vertical bounce
        acc[0] = _sines(rng, [a * u(0.3, 0.5)], [f])  # surge
        acc[1] = _sines(rng, [a * u(0.1, 0.3)], [f / 2])  # lateral sway
    elif name == "shake":
        f = u(4.0, 6.0)
        ang[2] = _sines(rng, [u(0.3, 0.6), u(0.03, 0.08)], [f, 2 * f])  # body roll
        ang[0] = _sines(rng, [u(0.05, 0.15)], [f])
        acc[1] = _sines(rng, [u(5.0, 12.0)], [f])  # lateral whip
        acc[2] = _sines(rng, [u(1.0, 3.0)], [2 * f])
    else:
        raise UsageError(f"unknown behaviour {name!r}; known: {', '.join(BEHAVIOURS)}")
    return posture, rate, ang, acc


def _sum_sines(
    h: npt.NDArray[np.float64], tau: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Value and time derivative of sum_i a_i sin(2 pi f_i tau + p_i) for each of 3 rows."""
    amp, freq, ph = h[..., 0:1], h[..., 1:2], h[..., 2:3]  # (3, H, 1)
    arg = 2 * np.pi * freq * tau[None, None, :] + ph
    value = (amp * np.sin(arg)).sum(axis=1)
    deriv = (amp * 2 * np.pi * freq * np.cos(arg)).sum(axis=1)
    return value, deriv  # (3, n)


def _rotate_to_body(
    v: npt.NDArray[np.float64],
    psi: npt.NDArray[np.float64],
    theta: npt.NDArray[np.float64],
    phi: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """R^T v for R = Rz(psi) Ry(theta) Rx(phi); v is (3,) or (3, n)."""
    x, y, z = (np.broadcast_to(c, psi.shape) for c in v)
    cz, sz = np.cos(psi), np.sin(psi)
    x, y = cz * x + sz * y, -sz * x + cz * y
    cy, sy = np.cos(theta), np.sin(theta)
    x, z = cy * x - sy * z, sy * x + cy * z
    cx, sx = np.cos(phi), np.sin(phi)
    y, z = cx * y + sx * z, -sx * y + cx * z
    return np.stack([x, y, z])


def _random_rotation(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 2] *= -1
    return q


@dataclass
class _Device:
    mount: npt.NDArray[np.float64]  # sensor axes in body axes (rows)
    acc_bias: npt.NDArray[np.float64]
    gyro_bias: npt.NDArray[np.float64]
    hard_iron: npt.NDArray[np.float64]


class Simulator:
    """Streaming simulator: ``read(n)`` returns the next n samples, seamlessly."""

    def __init__(self, config: SimConfig = SimConfig()) -> None:
        if not config.rate_hz > 0:
            raise UsageError(f"sample rate must be > 0, got {config.rate_hz}")
        if config.devices < 1:
            raise UsageError(f"devices must be >= 1, got {config.devices}")
        if not config.mean_bout_s > 0:
            raise UsageError(f"mean bout length must be > 0, got {config.mean_bout_s}")
        unknown = [b for b in config.behaviours if b not in BEHAVIOURS]
        if unknown or not config.behaviours:
            raise UsageError(f"unknown behaviours {unknown}; known: {', '.join(BEHAVIOURS)}")
        self.config = config
        self._bout_rng = np.random.default_rng([config.seed, 1])
        dev_rng = np.random.default_rng([config.seed, 2])
        self._devices = [
            _Device(
                mount=np.eye(3) if d == 0 else _random_rotation(dev_rng),
                acc_bias=dev_rng.normal(0, 0.05, 3),
                gyro_bias=dev_rng.normal(0, 0.01, 3),
                hard_iron=dev_rng.normal(0, 5.0, 3),
            )
            for d in range(config.devices)
        ]
        self._labels = [BEHAVIOURS.index(b) for b in config.behaviours]
        # Only the bouts from the next sample on are kept (plus the last one, which the
        # next bout continues from), so memory and per-read cost do not grow with time.
        self._bouts: deque[_Bout] = deque()
        self._k = 0
        # The noise block last drawn per device: small reads reuse it instead of redrawing.
        self._noise_cache: dict[int, tuple[int, npt.NDArray[np.float64]]] = {}

    @property
    def samples_read(self) -> int:
        return self._k

    @property
    def bouts_held(self) -> int:
        """Bouts kept in memory: a handful, however long the simulator has run."""
        return len(self._bouts)

    def _extend_bouts(self, until: float) -> None:
        rng = self._bout_rng
        while not self._bouts or self._bouts[-1].end <= until:
            prev = self._bouts[-1] if self._bouts else None
            choices = [b for b in self._labels if prev is None or b != prev.label] or self._labels
            label = int(rng.choice(choices))
            name = BEHAVIOURS[label]
            mean = min(2.0, self.config.mean_bout_s) if name == "shake" else self.config.mean_bout_s
            length = max(1.0 if name == "shake" else 2.0, rng.exponential(mean))
            start = 0.0 if prev is None else prev.end
            posture, rate, ang, acc = _bout_shape(name, rng)
            # Heading continues from where the previous bout left it.
            posture[0] = 0.0 if prev is None else float(prev.angles_at(prev.end - prev.start)[0])
            self._bouts.append(_Bout(label, start, start + length, posture, rate, ang, acc))

    def _drop_bouts_before(self, tau: float) -> None:
        while len(self._bouts) > 1 and self._bouts[0].end <= tau:
            self._bouts.popleft()

    def read(self, n: int) -> LabelledSamples:
        if n < 0:
            raise UsageError(f"cannot read {n} samples")
        cfg = self.config
        k = np.arange(self._k, self._k + n)
        self._k += n
        tau = k / cfg.rate_hz
        self._extend_bouts(float(tau[-1]) if n else 0.0)
        angles = np.zeros((3, n))
        rates = np.zeros((3, n))
        lin = np.zeros((3, n))
        labels = np.zeros(n, np.int16)
        # tau is sorted and bouts tile time, so each bout owns one contiguous slice:
        # sample j belongs to bout i when start_i <= tau_j < start_(i+1).
        bouts = list(self._bouts)
        edges = np.searchsorted(tau, [b.start for b in bouts[1:]], side="left").tolist()
        for bout, lo, hi in zip(bouts, [0, *edges], [*edges, n], strict=True):
            if lo == hi:
                continue
            local = tau[lo:hi] - bout.start
            v, dv = _sum_sines(bout.ang_h, local)
            angles[:, lo:hi] = bout.base[:, None] + bout.rate[:, None] * local + v
            rates[:, lo:hi] = bout.rate[:, None] + dv
            lin[:, lo:hi] = _sum_sines(bout.acc_h, local)[0]
            labels[lo:hi] = bout.label
        self._drop_bouts_before(self._k / cfg.rate_hz)
        psi, theta, phi = angles
        dpsi, dtheta, dphi = rates
        # Body angular rate from ZYX Euler rates.
        gyro = np.stack([
            dphi - dpsi * np.sin(theta),
            dtheta * np.cos(phi) + dpsi * np.cos(theta) * np.sin(phi),
            -dtheta * np.sin(phi) + dpsi * np.cos(theta) * np.cos(phi),
        ])  # fmt: skip
        acc = _rotate_to_body(np.array([0.0, 0.0, G]), psi, theta, phi) + lin
        b_earth = EARTH_UT * np.array([np.cos(INCLINATION), 0.0, -np.sin(INCLINATION)])
        mag = _rotate_to_body(b_earth, psi, theta, phi)
        cols = []
        for d, dev in enumerate(self._devices):
            noise = self._noise(k, d)
            m = dev.mount.T
            cols += [
                (m @ acc).T + dev.acc_bias + NOISE["acc"] * noise[:, 0:3],
                (m @ gyro).T + dev.gyro_bias + NOISE["gyro"] * noise[:, 3:6],
                (m @ mag).T + dev.hard_iron + NOISE["mag"] * noise[:, 6:9],
            ]
        x = (
            np.concatenate(cols, axis=1).astype(np.float32)
            if n
            else np.zeros((0, 9 * cfg.devices), np.float32)
        )
        return LabelledSamples(cfg.start_time + tau, x, labels, BEHAVIOURS)

    def _noise_block(self, device: int, block: int) -> npt.NDArray[np.float64]:
        cached = self._noise_cache.get(device)
        if cached is not None and cached[0] == block:
            return cached[1]
        rng = np.random.default_rng([self.config.seed, 3, device, block])
        z = rng.standard_normal((NOISE_BLOCK, 9))
        self._noise_cache[device] = (block, z)
        return z

    def _noise(self, k: npt.NDArray[np.int64], device: int) -> npt.NDArray[np.float64]:
        """Standard normal noise for sample indices k, drawn per fixed block of indices."""
        out = np.empty((len(k), 9))
        if not len(k):
            return out
        k0 = int(k[0])  # k is a contiguous run of indices
        for block in range(k0 // NOISE_BLOCK, int(k[-1]) // NOISE_BLOCK + 1):
            z = self._noise_block(device, block)
            lo, hi = block * NOISE_BLOCK, (block + 1) * NOISE_BLOCK
            a, b = max(lo, k0), min(hi, k0 + len(k))
            out[a - k0 : b - k0] = z[a - lo : b - lo]
        return out


def simulate(duration_s: float, config: SimConfig = SimConfig()) -> LabelledSamples:
    if not duration_s >= 0:
        raise UsageError(f"duration must be >= 0, got {duration_s}")
    return Simulator(config).read(round(duration_s * config.rate_hz))


__all__ = ["NOISE", "NOISE_BLOCK", "LabelledSamples", "SimConfig", "Simulator", "simulate"]

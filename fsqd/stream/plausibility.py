"""Are these numbers in the units the model was trained on? A check on the raw sample stream.

A recording in milli-g, g, deg/s or raw int16 counts runs through a model trained on m/s^2
and rad/s without any error and gives confident nonsense. This stage looks at a block of
samples at the start and then periodically (by sample count, so it is chunk-invariant):
the accelerometer's median magnitude against gravity, the gyro's range and spread, the
magnetometer's field strength against the Earth's, and the share of values far outside the
card's training statistics. A problem is reported once per channel group, with the
likely cause and the ``--scale`` that fixes it. The numbers stay available for a summary
(replay) or a stats payload (the daemon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fsqd.units import Channel, G

# One g, in each accelerometer unit a card may declare.
ACCEL_UNITS = {"m/s^2": G, "m/s2": G, "m/s²": G, "g": 1.0, "mg": 1000.0}
# Full scale of a typical gyro (±2000 deg/s) in each gyro unit.
GYRO_FULL_SCALE = {"rad/s": math.radians(2000), "deg/s": 2000.0, "dps": 2000.0}
# A typical Earth field (about 50 uT) in each magnetometer unit.
MAG_EARTH = {"uT": 50.0, "µT": 50.0, "ut": 50.0, "gauss": 0.5, "G": 0.5, "mG": 500.0, "nT": 5e4}
NOT_PHYSICAL = 1e6  # no IMU unit makes readings this large
FAR_SD = 8.0  # a normalised value beyond this many sd is far outside training data
FAR_SHARE = 0.05  # warn when more of a group's values than this are far outside

# What a wrong accelerometer unit looks like: name, 1 g in it, integer-valued only.
ACCEL_SUSPECTS = (
    ("milli-g", 1000.0, False),
    ("g", 1.0, False),
    ("m/s^2", G, False),
    ("raw int16 counts (±2 g)", 16384.0, True),
    ("raw int16 counts (±4 g)", 8192.0, True),
    ("raw int16 counts (±8 g)", 4096.0, True),
    ("raw int16 counts (±16 g)", 2048.0, True),
)
MAG_SUSPECTS = (("uT", 50.0), ("gauss", 0.5), ("milligauss", 500.0), ("nT", 5e4))


@dataclass(frozen=True)
class Finding:
    group: str  # e.g. "ax..az" or "ax..az (device 1)"
    kind: str  # e.g. "accel-unit", "gyro-unit", "mag-unit", "far", "not-physical"
    message: str  # one line: numbers, likely cause, fix

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Group:
    name: str
    sensor: str  # accel | gyro | mag | other
    unit: str
    columns: tuple[int, ...]  # stream columns
    patterns: tuple[str, ...]  # --scale patterns naming these channels


def _groups(channels: Sequence[Channel], devices: int) -> list[_Group]:
    kinds: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(channels):
        sensor = (
            "accel"
            if c.unit in ACCEL_UNITS
            else "gyro"
            if c.unit in GYRO_FULL_SCALE
            else "mag"
            if c.unit in MAG_EARTH
            else "other"
        )
        kinds.setdefault((sensor, c.unit), []).append(i)
    out = []
    width = len(channels)
    for d in range(devices):
        for (sensor, unit), idx in kinds.items():
            names = [channels[i].name for i in idx]
            prefix = _common_prefix(names)
            patterns = (f"{prefix}*",) if prefix else tuple(names)
            name = f"{names[0]}..{names[-1]}" if len(names) > 1 else names[0]
            if devices > 1:
                name += f" (device {d})"
            cols = tuple(d * width + i for i in idx)
            out.append(_Group(name, sensor, unit, cols, patterns))
    return out


def _common_prefix(names: Sequence[str]) -> str:
    """The leading characters all names share ("a" for ax, ay, az)."""
    first = names[0]
    n = 0
    while n < len(first) and all(len(m) > n and m[n] == first[n] for m in names):
        n += 1
    return first[:n]


def _scale(g: _Group, factor: float) -> str:
    """The --scale argument that multiplies this group's channels by ``factor``."""
    return "--scale '" + ",".join(f"{p}={factor:.6g}" for p in g.patterns) + "'"


def _nearest_unit(
    magnitude: float, suspects: Sequence[tuple[str, float]], within: float
) -> tuple[str, float] | None:
    """The (name, typical magnitude) of the suspect unit nearest ``magnitude`` on a log
    scale, or None when even that one is off by more than a factor of ``within``."""
    off = [abs(math.log(max(magnitude, 1e-12) / typical)) for _, typical in suspects]
    best = min(range(len(suspects)), key=off.__getitem__)
    return suspects[best] if off[best] <= math.log(within) else None


class Plausibility:
    """Checks blocks of ``block_s`` seconds: the first at once, then one every ``every_s``."""

    def __init__(
        self,
        channels: Sequence[Channel],
        devices: int,
        mean: npt.ArrayLike,
        std: npt.ArrayLike,
        rate_hz: float,
        *,
        block_s: float = 2.0,
        every_s: float = 60.0,
    ) -> None:
        self.groups = _groups(channels, devices)
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        self.block = max(2, round(block_s * rate_hz))
        self.every = max(self.block, round(every_s * rate_hz))
        self.findings: list[Finding] = []
        self.checks = 0  # blocks checked
        self.numbers: dict[str, float] = {}  # latest measurements, by "<group> <what>"
        # The same, machine-readable: group -> {accel_median_g | gyro_p99 | mag_median |
        # far_pct: value} (gyro and magnetometer in the card's units).
        self.by_group: dict[str, dict[str, float]] = {}
        self._seen: set[str] = set()  # groups already warned about
        self._index = 0  # stream samples seen
        self._parts: list[npt.NDArray[np.float32]] = []

    def push(self, x: npt.NDArray[np.floating]) -> list[Finding]:
        """Feed raw samples (n, stream width); returns findings not reported before."""
        new: list[Finding] = []
        start = self._index
        self._index += len(x)
        pos = start
        while pos < self._index:
            phase = pos % self.every
            if phase < self.block:
                take = min(self.block - phase, self._index - pos)
                self._parts.append(np.asarray(x[pos - start : pos - start + take], np.float32))
                pos += take
                if phase + take == self.block:
                    new += self._check(np.concatenate(self._parts))
                    self._parts = []
            else:
                pos += self.every - phase
        return new

    def summary(self) -> str:
        parts = [f"{k} {v:.3g}" for k, v in self.numbers.items()]
        found = f"; {len(self.findings)} warning(s)" if self.findings else ""
        return f"plausibility ({self.checks} block(s)): " + (", ".join(parts) or "-") + found

    def stats(self) -> dict[str, object]:
        """For a stats payload: blocks checked, warnings, the latest numbers by group."""
        return {
            "checks": self.checks,
            "warnings": len(self.findings),
            "groups": {k: dict(v) for k, v in self.by_group.items()},
        }

    def _note(self, g: _Group, key: str, label: str, value: float) -> None:
        self.numbers[f"{g.name} {label}"] = value
        self.by_group.setdefault(g.name, {})[key] = value

    # -- checks --

    def _check(self, x: npt.NDArray[np.float32]) -> list[Finding]:
        self.checks += 1
        a = x.astype(np.float64)
        found: list[Finding] = []
        for g in self.groups:
            v = a[:, list(g.columns)]
            biggest = float(np.abs(v).max())
            if biggest > NOT_PHYSICAL:
                found.append(
                    Finding(
                        g.name,
                        "not-physical",
                        f"{g.name}: values up to {biggest:.3g} are not physical in any unit (a "
                        "fill value, an overflow or a broken sensor): remove those rows or fix "
                        "the column",
                    )
                )
                continue
            unit = None
            if g.sensor == "accel" and len(g.columns) == 3:
                unit = self._accel(g, v)
            elif g.sensor == "gyro":
                unit = self._gyro(g, v)
            elif g.sensor == "mag" and len(g.columns) == 3:
                unit = self._mag(g, v)
            if unit is not None:
                found.append(unit)
                continue
            far = self._far(g, v)
            if far is not None:
                found.append(far)
        # Once per group: its first finding names the likely cause; later ones would be
        # the same cause seen through another check.
        fresh = [f for f in found if f.group not in self._seen]
        self._seen.update(f.group for f in fresh)
        self.findings += fresh
        return fresh

    def _accel(self, g: _Group, v: npt.NDArray[np.float64]) -> Finding | None:
        one_g = ACCEL_UNITS[g.unit]
        med = float(np.median(np.sqrt((v**2).sum(axis=1))))
        self._note(g, "accel_median_g", "|a| median (g)", med / one_g)
        if 0.6 <= med / one_g <= 1.6:
            return None
        integers = bool(np.all(v == np.round(v)))
        candidates = [(name, g_in) for name, g_in, ints in ACCEL_SUSPECTS if integers or not ints]
        near = _nearest_unit(med, candidates, 1.6)
        if near is None:
            why = "gravity removed (linear acceleration)?" if med < 0.6 * one_g else "unknown unit"
            return Finding(
                g.name,
                "accel-unit",
                f"{g.name}: median |a| {med:.4g} {g.unit} is not 1 g ({one_g:.5g} {g.unit}): "
                f"{why} the model expects {g.unit} with gravity",
            )
        name, g_in_it = near
        return Finding(
            g.name,
            "accel-unit",
            f"{g.name} look like {name} (median |a| {med:.4g} where 1 g is {one_g:.5g} "
            f"{g.unit}): {_scale(g, one_g / g_in_it)}",
        )

    def _gyro(self, g: _Group, v: npt.NDArray[np.float64]) -> Finding | None:
        full = GYRO_FULL_SCALE[g.unit]
        p99 = float(np.quantile(np.abs(v), 0.99))
        spread = float(np.median(v.std(axis=0) / self.std[list(g.columns)]))
        self._note(g, "gyro_p99", f"|w| p99 ({g.unit})", p99)
        deg = math.pi / 180 if g.unit == "rad/s" else 1.0
        # deg/s read as rad/s: beyond a gyro's range but within 2000 deg/s, or 57x the
        # training data's spread (which also catches a calm recording).
        if g.unit == "rad/s" and (1.2 * full < p99 <= 2400 or 25 <= spread <= 130):
            return Finding(
                g.name,
                "gyro-unit",
                f"{g.name} look like deg/s (99th percentile |w| {p99:.4g}, spread "
                f"{spread:.0f}x the training data's; rad/s full scale is {full:.3g}): "
                f"{_scale(g, math.pi / 180)}",
            )
        if p99 > 1.2 * full:
            counts = bool(np.all(v == np.round(v)))
            cause = (
                "raw int16 counts? the factor depends on the full-scale range, e.g. ±2000 "
                f"deg/s: {_scale(g, 2000 / 32768 * deg)}"
                if counts
                else "an unknown unit"
            )
            return Finding(
                g.name,
                "gyro-unit",
                f"{g.name}: 99th percentile |w| {p99:.4g} {g.unit} is beyond any gyro's "
                f"range ({full:.3g} {g.unit}): {cause}",
            )
        return None

    def _mag(self, g: _Group, v: npt.NDArray[np.float64]) -> Finding | None:
        earth = MAG_EARTH[g.unit]
        med = float(np.median(np.sqrt((v**2).sum(axis=1))))
        self._note(g, "mag_median", f"|m| median ({g.unit})", med)
        if 0.3 * earth <= med <= 2.5 * earth:  # 15..125 uT: the Earth plus hard iron
            return None
        near = _nearest_unit(med, MAG_SUSPECTS, 2.5)
        if near is None:
            return Finding(
                g.name,
                "mag-unit",
                f"{g.name}: median |m| {med:.4g} {g.unit} is not an Earth field "
                f"(about {earth:g} {g.unit}): an uncalibrated or disturbed magnetometer?",
            )
        name, typical = near
        return Finding(
            g.name,
            "mag-unit",
            f"{g.name} look like {name} (median |m| {med:.4g} where the Earth's field is "
            f"about {earth:g} {g.unit}): {_scale(g, earth / typical)}",
        )

    def _far(self, g: _Group, v: npt.NDArray[np.float64]) -> Finding | None:
        cols = list(g.columns)
        z = (v - self.mean[cols]) / self.std[cols]
        share = float((np.abs(z) > FAR_SD).mean())
        self._note(g, "far_pct", f"beyond {FAR_SD:g} sd (%)", 100 * share)
        if share <= FAR_SHARE:
            return None
        return Finding(
            g.name,
            "far",
            f"{g.name}: {100 * share:.0f}% of values lie beyond {FAR_SD:g} sd of the model's "
            "training statistics: wrong units, wrong column order, or a different placement "
            "(check --columns and --scale)",
        )

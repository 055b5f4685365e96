"""Payloads, built once per window / period: JSON lines (replay) and the daemon's messages.

Replay's lines: keys, in order: ``seq``, ``t_start``/``t_end`` (when windows have times), ``code``,
``digits``, ``label``/``p`` (when the model has a head), ``model``. Lines are built
with f-strings from pre-escaped pieces: json.dumps per window costs more than the
encoder's own inference on small models.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd import __version__
from fsqd.metrics import Period, encode
from fsqd.model.card import ModelCard
from fsqd.pipeline import CodeBatch


class LineFormatter:
    def __init__(self, model_tag: str, labels: tuple[str, ...] | None) -> None:
        self._model = json.dumps(model_tag)
        self._labels = [json.dumps(s) for s in labels] if labels is not None else None

    def __call__(
        self,
        seq0: int,
        batch: CodeBatch,
        t_start: npt.NDArray[np.float64] | None = None,
        t_end: npt.NDArray[np.float64] | None = None,
    ) -> str:
        lines = self.lines(seq0, batch, t_start, t_end)
        return "\n".join(lines) + "\n" if lines else ""

    def lines(
        self,
        seq0: int,
        batch: CodeBatch,
        t_start: npt.NDArray[np.float64] | None = None,
        t_end: npt.NDArray[np.float64] | None = None,
    ) -> list[str]:
        """One JSON object per window, without line ends."""
        n = len(batch)
        if n == 0:
            return []
        seqs = range(seq0, seq0 + n)
        codes = batch.index.tolist()
        digits = ["[" + ",".join(map(str, d)) + "]" for d in batch.digits.tolist()]
        heads = [""] * n
        if self._labels is not None and batch.label_id is not None and batch.p is not None:
            labels = self._labels
            heads = [
                f',"label":{labels[i]},"p":{p:.4f}'
                for i, p in zip(batch.label_id.tolist(), batch.p.tolist(), strict=True)
            ]
        tail = f',"model":{self._model}}}'
        if t_start is None or t_end is None:
            lines = [
                f'{{"seq":{s},"code":{c},"digits":{d}{h}{tail}'
                for s, c, d, h in zip(seqs, codes, digits, heads, strict=True)
            ]
        else:
            lines = [
                f'{{"seq":{s},"t_start":{a:.6f},"t_end":{b:.6f},"code":{c},"digits":{d}{h}{tail}'
                for s, a, b, c, d, h in zip(
                    seqs, t_start.tolist(), t_end.tolist(), codes, digits, heads, strict=True
                )
            ]
        return lines


# -- the daemon's MQTT payloads (codes, stats, info): built once, sent by every sink --

PAYLOAD_VERSION = 1


class CodeMessages:
    """One ``codes`` payload per window: replay's fields plus run, clock and latency.

    ``t_start``/``t_end`` are UNIX epoch seconds under the current wall-clock mapping;
    ``seq`` counts windows within the run ``run``; ``latency_ms`` is the time from the
    window's last sample to when the payload was built (window assembly + inference).
    """

    def __init__(self, run: str, model_tag: str, labels: tuple[str, ...] | None) -> None:
        self._lines = LineFormatter(model_tag, labels)
        self._run = json.dumps(run)

    def __call__(
        self,
        seq0: int,
        batch: CodeBatch,
        t_start: npt.NDArray[np.float64],
        t_end: npt.NDArray[np.float64],
        latency_s: npt.NDArray[np.float64],
        clock_synced: bool | None,
    ) -> list[bytes]:
        synced = "null" if clock_synced is None else ("true" if clock_synced else "false")
        head = f'{{"v":{PAYLOAD_VERSION},"run":{self._run},'
        tails = [
            f',"clock_synced":{synced},"latency_ms":{1000 * lat:.3f}}}'
            for lat in latency_s.tolist()
        ]
        lines = self._lines.lines(seq0, batch, t_start, t_end)
        # Each line is '{"seq":...,"model":"..."}': splice the run in front, the rest behind.
        return [
            (head + line[1:-1] + tail).encode() for line, tail in zip(lines, tails, strict=True)
        ]


def stats_payload(
    *,
    run: str,
    node_id: str,
    t: float,
    interval_s: float,
    uptime_s: float,
    backend: str,
    clock_synced: bool | None,
    period: Period,
    counters: dict[str, int | float],
    sensors: list[dict[str, Any]],
    plausibility: dict[str, Any] | None = None,
    encoder: dict[str, Any] | None = None,
) -> bytes:
    """The retained ``stats`` message: per-stage latency, counters, mergeable histograms."""
    e2e = period.histograms.get("e2e")
    e2e_total = period.cumulative_histograms.get("e2e")
    body = {
        "v": PAYLOAD_VERSION,
        "run": run,
        "node": node_id,
        "t": round(t, 3),
        "interval_s": interval_s,
        "uptime_s": round(uptime_s, 1),
        "backend": backend,
        "clock_synced": clock_synced,
        "latency_us": {k: s.as_dict() for k, s in period.stages.items()},
        "latency_us_total": {k: s.as_dict() for k, s in period.cumulative.items()},
        "counters": counters,
        "sensors": sensors,
        "plausibility": _finite(plausibility or {"checks": 0, "warnings": 0, "groups": {}}),
        "encoder": _finite(encoder or {"backend": backend}),
        "hdr": {
            "unit": "us",
            "e2e": None if e2e is None else encode(e2e),
            "e2e_total": None if e2e_total is None else encode(e2e_total),
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def info_payload(
    *,
    run: str,
    node_id: str,
    backend: str,
    card: ModelCard,
    model_tag: str,
    config_hash: str,
    hop: int,
    started: float,
    encoder: dict[str, Any] | None = None,
) -> bytes:
    """The retained ``info`` message: versions, backend, model summary, config hash."""
    body = {
        "v": PAYLOAD_VERSION,
        "run": run,
        "node": node_id,
        "started": round(started, 3),
        "versions": library_versions(),
        "backend": backend,
        "model": {
            "tag": model_tag,
            "name": card.name,
            "version": card.version,
            "sample_rate_hz": card.sample_rate_hz,
            "window": card.window,
            "hop": hop,
            "devices": card.devices,
            "levels": list(card.levels),
            "codebook_size": card.codebook_size,
            "labels": list(card.head.labels) if card.head is not None else None,
        },
        "config_hash": config_hash,
        "encoder": _finite(encoder or {"backend": backend}),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: such numbers (a share not measured yet) become null."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


_LIBRARIES = ("numpy", "onnxruntime", "hdrhistogram", "structlog", "aiomqtt", "paho-mqtt")


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"fsqd": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    # HailoRT is not on PyPI; its wheel, when installed, names itself "hailort".
    with contextlib.suppress(metadata.PackageNotFoundError):
        out["hailort"] = metadata.version("hailort")
    return out


_TIMES = re.compile(rb'"t_start":(-?[0-9.]+),"t_end":(-?[0-9.]+)')


def shift_code_times(payload: bytes, step_s: float) -> bytes:
    """A ``codes`` payload with ``t_start``/``t_end`` moved by a wall-clock step.

    For codes built before the step but not yet delivered (a spool): after the step
    their times are re-mapped like every unsent window. Only the two fields change.
    """

    def shift(m: re.Match[bytes]) -> bytes:
        a, b = float(m.group(1)) + step_s, float(m.group(2)) + step_s
        return f'"t_start":{a:.6f},"t_end":{b:.6f}'.encode()

    return _TIMES.sub(shift, payload, count=1)

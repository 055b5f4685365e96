"""Payloads, built once per window / period: the daemon's codes, stats and info messages.

A code message is replay's JSON line (``fsqd.sinks.batchlines``) with the run spliced in
front and the clock and latency behind.
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
from fsqd.sinks.batchlines import BatchLineFormatter
from fsqd.types import CodeBatch

# -- the daemon's MQTT payloads (codes, stats, info): built once, sent by every sink --

PAYLOAD_VERSION = 1


class CodeMessages:
    """One ``codes`` payload per window: replay's fields plus run, clock and latency.

    ``t_start``/``t_end`` are UNIX epoch seconds under the current wall-clock mapping;
    ``seq`` counts windows within the run ``run``; ``latency_ms`` is the time from the
    window's last sample to when the payload was built (window assembly + inference).
    """

    def __init__(self, run: str, model_tag: str, labels: tuple[str, ...] | None) -> None:
        self._lines = BatchLineFormatter(model_tag, labels)
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
        lines = self._lines(seq0, batch, t_start, t_end).splitlines()
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
    health: dict[str, Any] | None = None,
) -> bytes:
    """The retained ``stats`` message: per-stage latency, counters, mergeable histograms,
    code-usage health (``fsqd.behaviour.health.PeriodHealth.as_dict``)."""
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
        "health": _finite(health or NO_HEALTH),
        "hdr": {
            "unit": "us",
            "e2e": None if e2e is None else encode(e2e),
            "e2e_total": None if e2e_total is None else encode(e2e_total),
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


# A period before any window was counted (and the shape of the stats' "health" object).
NO_HEALTH: dict[str, Any] = {
    "windows": 0,
    "codes_used": 0,
    "perplexity": None,
    "unseen_share": None,
    "jsd": None,
    "drift": None,
    "checks": 0,
    "drift_threshold": None,
    "drift_windows": None,
}


def health_payload(
    *,
    drift: bool | None,
    jsd: float | None,
    perplexity: float | None,
    unseen_share: float | None,
    since: float,
    sensors: str,
) -> bytes:
    """The retained ``health`` message, sent when drift or the sensors' state changes.

    ``since``: UNIX time the drift state began (the run's start until it first changes);
    ``sensors``: the worst sensor state (ok < degraded < lost).
    """
    body = {
        "v": PAYLOAD_VERSION,
        "drift": drift,
        "jsd": jsd,
        "perplexity": perplexity,
        "unseen_share": unseen_share,
        "since": round(since, 3),
        "sensors": sensors,
    }
    return json.dumps(_finite(body), separators=(",", ":")).encode()


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


# The runtime libraries whose version matters in a field report (the histograms are fsqd's own).
_LIBRARIES = ("numpy", "onnxruntime", "structlog", "aiomqtt", "paho-mqtt")


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


def state_payload(
    *,
    run: str,
    seq: int,
    behaviour: str,
    since: float,
    confidence: float,
    conformal_set: tuple[str, ...] | None,
) -> bytes:
    """The retained ``state`` message: the current behaviour segment (UNIX times)."""
    body: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "run": run,
        "seq": seq,
        "behaviour": behaviour,
        "since": round(since, 3),
        "confidence": round(min(max(confidence, 0.0), 1.0), 4),
    }
    if conformal_set is not None:
        body["set"] = list(conformal_set)
    return json.dumps(body, separators=(",", ":")).encode()


def event_payload(
    *, run: str, behaviour: str, start: float, end: float, confidence: float
) -> bytes:
    """An ``events`` message: one finished behaviour segment (UNIX times)."""
    body = {
        "v": PAYLOAD_VERSION,
        "run": run,
        "type": "segment",
        "behaviour": behaviour,
        "start": round(start, 3),
        "end": round(end, 3),
        "duration_s": round(end - start, 3),
        "confidence": round(min(max(confidence, 0.0), 1.0), 4),
    }
    return json.dumps(body, separators=(",", ":")).encode()

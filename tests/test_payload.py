"""Payloads built once per window/period: codes, stats, info."""

from __future__ import annotations

import json

import numpy as np

from fsqd import __version__
from fsqd.metrics import StageTimer, decode_histogram
from fsqd.model.package import load_package
from fsqd.sinks.batchlines import BatchLineFormatter
from fsqd.sinks.payload import (
    CodeMessages,
    info_payload,
    shift_code_times,
    stats_payload,
)
from fsqd.types import CodeBatch


def batch(n: int) -> CodeBatch:
    return CodeBatch(
        index=np.arange(n, dtype=np.int64) * 7,
        digits=np.tile(np.arange(5, dtype=np.int64), (n, 1)),
        codes=np.zeros((n, 5), np.float32),
        label_id=np.arange(n, dtype=np.int64) % 2,
        p=np.full(n, 0.75, np.float32),
    )


def test_code_messages_are_replay_lines_plus_run_clock_and_latency() -> None:
    labels = ("rest", 'say "hi"')
    t_start = np.array([1_790_000_000.0, 1_790_000_000.1])
    t_end = t_start + 0.99
    msgs = CodeMessages("abc123", "m@1", labels)(
        41, batch(2), t_start, t_end, np.array([0.0123, 0.5]), True
    )
    replay = BatchLineFormatter("m@1", labels)(41, batch(2), t_start, t_end).splitlines()
    assert len(msgs) == 2
    for raw, line in zip(msgs, replay, strict=True):
        m = json.loads(raw)
        r = json.loads(line)
        assert {k: m[k] for k in r} == r  # every replay field, same values
        assert set(m) - set(r) == {"v", "run", "clock_synced", "latency_ms"}
    first, second = (json.loads(x) for x in msgs)
    assert first["run"] == "abc123" and first["seq"] == 41 and second["seq"] == 42
    assert first["t_end"] == 1_790_000_000.99
    assert first["latency_ms"] == 12.3 and second["latency_ms"] == 500.0
    assert first["clock_synced"] is True
    assert second["label"] == 'say "hi"'


def test_clock_synced_unknown_is_null() -> None:
    (raw,) = CodeMessages("r", "m", None)(0, batch(1), np.zeros(1), np.ones(1), np.zeros(1), None)
    m = json.loads(raw)
    assert m["clock_synced"] is None and "label" not in m


def test_stats_payload() -> None:
    timer = StageTimer()
    for us in range(1000, 3000):
        timer.add("e2e", us * 1000)
    timer.add("infer", 4_000_000)
    raw = stats_payload(
        run="r",
        node_id="n1",
        t=1_790_000_000.0,
        interval_s=60.0,
        uptime_s=120.0,
        backend="onnx",
        clock_synced=False,
        period=timer.roll(),
        counters={"samples": 12000, "dropped": 0},
        sensors=[{"name": "imu0", "state": "ok"}],
    )
    s = json.loads(raw)
    assert s["node"] == "n1" and s["backend"] == "onnx" and s["clock_synced"] is False
    e2e = s["latency_us"]["e2e"]
    assert e2e["count"] == 2000 and set(e2e) == {
        "count",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "out_of_range",
    }
    assert s["latency_us_total"]["infer"]["count"] == 1
    assert s["counters"]["samples"] == 12000
    assert s["sensors"][0]["state"] == "ok"
    h = decode_histogram(s["hdr"]["e2e"])
    assert h.get_total_count() == 2000


def test_info_payload() -> None:
    pkg = load_package()
    i = json.loads(
        info_payload(
            run="r",
            node_id="n1",
            backend="onnx",
            card=pkg.card,
            model_tag=pkg.label,
            config_hash="0123456789abcdef",
            hop=10,
            started=1_790_000_000.0,
        )
    )
    assert i["versions"]["fsqd"] == __version__
    assert i["versions"]["numpy"] == np.__version__
    # The histograms are fsqd's own: the hdrh package the tests compare against is not reported.
    assert "hdrhistogram" not in i["versions"]
    assert i["model"]["tag"] == pkg.label and i["model"]["hop"] == 10
    assert i["model"]["levels"] == list(pkg.card.levels)
    assert i["config_hash"] == "0123456789abcdef"


def test_shift_code_times_moves_only_the_times() -> None:
    (raw,) = CodeMessages("r", "m", ("a", "b"))(
        7, batch(1), np.array([100.25]), np.array([101.24]), np.array([0.001]), False
    )
    shifted = json.loads(shift_code_times(raw, 1_790_000_000.5))
    m = json.loads(raw)
    assert shifted["t_start"] == 1_790_000_100.75
    assert shifted["t_end"] == 1_790_000_101.74
    assert {k: v for k, v in shifted.items() if not k.startswith("t_")} == {
        k: v for k, v in m.items() if not k.startswith("t_")
    }
    back = json.loads(shift_code_times(shift_code_times(raw, -3600.0), 3600.0))
    assert back == m

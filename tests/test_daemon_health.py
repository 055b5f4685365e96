"""Code-usage health in the running daemon: stats, the drift warning, the retained health
message, and the sensors' state in it."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import structlog
from waiting import until

from fsqd.config import Config, load_config
from fsqd.daemon import Daemon
from fsqd.daemon.telemetry import worst_sensor_state
from fsqd.imu.acquire.acquisition import SensorState, SensorStatus
from fsqd.model.package import bundled_model_path
from fsqd.sinks.jsonl import JsonLinesSink
from fsqd.sinks.schemas import load as load_schema
from fsqd.testing import SimulatedAcquisition

SENSOR = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'


def package_with_reference(tmp_path: Path, reference: dict[str, Any] | None) -> Path:
    """The bundled package, copied, with a code reference in its card's calibration."""
    pkg = tmp_path / "pkg"
    shutil.copytree(bundled_model_path(), pkg)
    card = json.loads((pkg / "model.json").read_text())
    if reference is not None:
        card["calibration"] = {"temperature": 1.0, "code_reference": reference}
    elif "calibration" in card:
        card["calibration"].pop("code_reference", None)
    (pkg / "model.json").write_text(json.dumps(card))
    return pkg


def make_config(tmp_path: Path, pkg: Path, extra: str = "") -> Config:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f"[model]\npath = '{pkg}'\n[window]\nhop = 10\n[stats]\ninterval_s = 1\n{extra}\n{SENSOR}"
    )
    return load_config(cfg)


class SwitchableSim(SimulatedAcquisition):
    """The simulator, whose reported state a test sets."""

    state = SensorState.OK

    def status(self) -> list[SensorStatus]:
        return [dataclasses.replace(s, state=self.state) for s in super().status()]


def meta_messages(meta: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in meta.getvalue().splitlines()]


def test_drift_is_warned_about_published_and_in_stats(tmp_path: Path) -> None:
    """A reference the simulator's codes never match (code 4799 only): every check scores 1
    bit; drift is sustained at the third check, warned about once, and published."""
    ref = {
        "codes": [4799],
        "counts": [10],
        "perplexity": 1.0,
        "drift_threshold": 0.3,
        "drift_windows": 10,
    }
    config = make_config(tmp_path, package_with_reference(tmp_path, ref))
    out, meta = io.StringIO(), io.StringIO()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(out, meta=meta)],
        duration_s=4.0,
        handle_signals=False,
    )
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(daemon.run()) == 0
    codes = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(c["code"] != 4799 for c in codes)
    warned = [e for e in logs if e["event"] == "code usage drifted from the model's reference"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    assert warned[0]["jsd"] == 1.0 and warned[0]["threshold"] == 0.3
    assert warned[0]["windows"] == 10 and warned[0]["checks"] == 3
    msgs = meta_messages(meta)
    health = [m for m in msgs if "sensors" in m and "drift" in m]
    stats = [m for m in msgs if "counters" in m]
    for m in health:
        jsonschema.validate(m, load_schema("health"))
    for m in stats:
        jsonschema.validate(m["health"], load_schema("stats")["properties"]["health"])
    # At start (no drift yet), then when drift became sustained.
    assert [m["drift"] for m in health] == [False, True]
    assert health[0]["jsd"] is None and health[1]["jsd"] == 1.0
    assert health[1]["since"] > health[0]["since"] and health[1]["sensors"] == "ok"
    last = stats[-1]["health"]
    assert last["drift"] is True and last["jsd"] == 1.0 and last["unseen_share"] == 1.0
    assert last["drift_threshold"] == 0.3 and last["drift_windows"] == 10
    assert sum(s["health"]["windows"] for s in stats) == len(codes)
    assert all(s["health"]["perplexity"] >= 1 for s in stats if s["health"]["windows"])
    summary = [e for e in logs if e["event"] == "summary"][-1]
    assert summary["drift"] is True and summary["jsd"] == 1.0


def test_config_overrides_the_cards_threshold(tmp_path: Path) -> None:
    ref = {"codes": [4799], "counts": [1], "perplexity": 1.0, "drift_threshold": 0.3,
           "drift_windows": 10}  # fmt: skip
    pkg = package_with_reference(tmp_path, ref)
    config = make_config(tmp_path, pkg, "[health]\ndrift_threshold = 1.0\ndrift_windows = 4\n")
    meta = io.StringIO()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(io.StringIO(), meta=meta)],
        duration_s=2.5,
        handle_signals=False,
    )
    assert asyncio.run(daemon.run()) == 0
    stats = [m for m in meta_messages(meta) if "counters" in m]
    last = stats[-1]["health"]
    # jsd 1.0 is not above a threshold of 1.0: never drift.
    assert last["jsd"] == 1.0 and last["drift"] is False
    assert last["drift_threshold"] == 1.0 and last["drift_windows"] == 4


def test_without_reference_only_perplexity_and_a_lost_sensor_is_published(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, package_with_reference(tmp_path, None))
    meta = io.StringIO()
    acq = SwitchableSim(chunk=2)
    daemon = Daemon(
        config,
        acquisition=acq,
        sinks=[JsonLinesSink(io.StringIO(), meta=meta)],
        duration_s=120.0,  # a bound only: the test stops it
        handle_signals=False,
    )

    def sensors_seen() -> list[str]:
        return [m["sensors"] for m in meta_messages(meta) if "sensors" in m and "drift" in m]

    async def main() -> None:
        task = asyncio.create_task(daemon.run())
        await until(lambda: daemon.counters.windows >= 5 and sensors_seen() == ["ok"])
        acq.state = SensorState.LOST
        await until(lambda: sensors_seen() == ["ok", "lost"])
        acq.state = SensorState.OK
        await until(lambda: sensors_seen() == ["ok", "lost", "ok"])
        daemon.stop()
        await task

    asyncio.run(main())
    msgs = meta_messages(meta)
    health = [m for m in msgs if "sensors" in m and "drift" in m]
    for m in health:
        jsonschema.validate(m, load_schema("health"))
        assert m["drift"] is None and m["jsd"] is None and m["unseen_share"] is None
    assert [m["sensors"] for m in health] == ["ok", "lost", "ok"]
    stats = [m["health"] for m in msgs if "counters" in m]
    assert stats[-1]["perplexity"] is not None and stats[-1]["jsd"] is None


def test_worst_sensor_state() -> None:
    def st(state: str) -> dict[str, str]:
        return {"name": "s", "state": state}  # what plain() makes of a status

    assert worst_sensor_state([]) == "ok"
    assert worst_sensor_state([st("ok"), st("degraded")]) == "degraded"
    assert worst_sensor_state([st("lost"), st("degraded")]) == "lost"
    assert worst_sensor_state([st("weird")]) == "degraded"

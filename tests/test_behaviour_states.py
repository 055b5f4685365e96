"""The behaviour state and events from the daemon to a real Mosquitto: retained state,
published on change or a material confidence move; events for finished segments; a gap
and a lost sensor end a segment."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import structlog
from behaviourkit import with_semi_markov
from mosquitto import Collector, Mosquitto

from fsqd.config import load_config
from fsqd.config.behaviour import BehaviourConfig
from fsqd.config.mqtt import MqttSettings
from fsqd.daemon import Daemon, open_sinks
from fsqd.daemon.states import BehaviourStates
from fsqd.imu.acquire.acquisition import SensorState, SensorStatus
from fsqd.model.calibration import ConformalSpec
from fsqd.model.card import ModelCard
from fsqd.model.package import bundled_model_path, load_package
from fsqd.sinks.mqtt import sink as sink_mod
from fsqd.sinks.mqtt.sink import MqttSink
from fsqd.sinks.schemas import load as load_schema
from fsqd.testing import SimulatedAcquisition
from fsqd.types import CodeBatch

STEP = 0.5
UNIX = 1_700_000_000.0  # stream time 0 in UNIX time


def hysteresis_card() -> ModelCard:
    """The bundled card without its semi-Markov model: the states fall back to the argmax
    with a minimum dwell, whose decisions a test can spell out window by window."""
    card = load_package().card
    assert card.calibration is not None
    return dataclasses.replace(
        card, calibration=dataclasses.replace(card.calibration, semi_markov=None)
    )


def sensor_status(state: SensorState) -> SensorStatus:
    (s,) = SimulatedAcquisition().status()
    return dataclasses.replace(s, name="imu0", driver="lsm6dsox", state=state)


def batch(rows: list[list[float]], sets: list[list[bool]] | None = None) -> CodeBatch:
    n = len(rows)
    probs = np.array(rows, np.float64)
    return CodeBatch(
        np.zeros(n, np.int64),
        np.zeros((n, 5), np.int64),
        np.zeros((n, 5), np.float32),
        probs.argmax(1),
        probs.max(1).astype(np.float32),
        probs,
        None if sets is None else np.array(sets, bool),
    )


def rest(p: float) -> list[float]:
    return [p, 1 - p, 0.0, 0.0, 0.0]


def walk(p: float) -> list[float]:
    return [1 - p, p, 0.0, 0.0, 0.0]


def validate(name: str, raw: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw)
    jsonschema.Draft202012Validator(load_schema(name)).validate(doc)
    return doc


def test_state_and_events_through_a_real_broker(broker: Mosquitto, tmp_path: Path) -> None:
    settings = MqttSettings(host=broker.host, port=broker.port, node_id="n1")
    card = hysteresis_card()  # no semi-Markov model: the argmax with a minimum dwell
    status = [sensor_status(SensorState.OK)]

    async def main() -> tuple[dict[str, list[bytes]], list[tuple[str, bytes, bool]]]:
        async with Collector(broker, "fsqd/n1/state", "fsqd/n1/events") as c:
            sink = MqttSink(settings, tmp_path / "spool.db")
            task = asyncio.create_task(sink.run())
            states = BehaviourStates(
                card,
                STEP,
                BehaviourConfig(lag_s=0.0, min_dwell_s=0.5, confidence_step=0.1),
                run="r1",
                sinks=[sink],
                correction=lambda: UNIX,
            )
            seq = 0

            def feed(rows: list[list[float]], t0: float, sets: Any = None) -> None:
                nonlocal seq
                t = t0 + STEP * np.arange(len(rows))
                states.windows(seq, batch(rows, sets), t, t + 1.0)
                seq += len(rows)

            def n_states() -> int:
                return len(c.payloads("fsqd/n1/state"))

            async def published(n: int) -> None:
                # Retained, latest wins: states queued faster than the broker takes them
                # collapse into the newest, so each step waits for its message.
                await c.wait_for(lambda c: n_states() == n, 10)

            member = [[True, True, False, False, False]] * 4
            feed([rest(0.9)] * 4, 0.0, member)  # state: rest (with its set)
            await published(1)
            feed([rest(0.85)], 2.0)  # moved 0.05: nothing
            feed([rest(0.7)], 2.5)  # moved 0.2: state again
            await published(2)
            feed([walk(0.8)] * 3, 3.0)  # state: walk; event: rest
            await published(3)
            feed([walk(0.8)] * 2, 10.0)  # a gap: event walk, state walk (new since)
            await published(4)
            status[0] = sensor_status(SensorState.LOST)
            states.check_sensors(status)  # lost: event walk
            states.check_sensors(status)  # nothing open: nothing more
            feed([walk(0.9)] * 2, 20.0)  # back: state walk, a new segment
            await published(5)
            await c.wait_for(lambda c: len(c.payloads("fsqd/n1/events")) == 3, 10)
            await sink.aclose(5)
            await task
            got = {t: c.payloads(t) for t in ("fsqd/n1/state", "fsqd/n1/events")}
        # A subscriber arriving later gets the newest state, retained; no event.
        async with Collector(broker, "fsqd/n1/state", "fsqd/n1/events") as late:
            await late.settle()  # every retained message has come
            return got, late.messages

    got, late = asyncio.run(main())
    st = [validate("state", raw) for raw in got["fsqd/n1/state"]]
    ev = [validate("events", raw) for raw in got["fsqd/n1/events"]]
    assert [(s["behaviour"], s["since"] - UNIX, s["confidence"]) for s in st] == [
        ("rest", 0.25, 0.9),
        ("rest", 0.25, 0.7),
        ("walk", 2.25 + 1.0, 0.8),
        ("walk", 10.25, 0.8),
        ("walk", 20.25, 0.9),
    ]
    assert st[0]["set"] == ["rest", "walk"] and "set" not in st[1]
    assert [s["seq"] for s in st] == [0, 5, 6, 9, 11]
    assert [(e["behaviour"], e["start"] - UNIX, e["end"] - UNIX) for e in ev] == [
        ("rest", 0.25, 3.25),
        ("walk", 3.25, 4.75),  # the gap ended it at its last window
        ("walk", 10.25, 11.25),  # the lost sensor ended it
    ]
    assert ev[0]["duration_s"] == 3.0 and ev[0]["confidence"] == round(
        (0.9 * 4 + 0.85 + 0.7) / 6, 4
    )
    (topic, payload, retained), *_ = late
    assert (topic, retained) == ("fsqd/n1/state", True) and json.loads(payload) == st[-1]
    assert len(late) == 1


class GapAndLoss(SimulatedAcquisition):
    """The simulator in real time; from ``at`` the sensor is lost for ``for_s`` seconds: no
    samples and no wake-ups (as a real acquisition with nothing to hand over), the status
    says "lost", and the stream resumes after a gap."""

    def __init__(self, at: float, for_s: float) -> None:
        super().__init__(chunk=2)
        self.at, self.for_s = at, for_s
        self.t0: float | None = None
        self.lost = False
        self.resumed_at: float | None = None  # monotonic time of the first chunk after
        self.first_t: float | None = None

    def start(self, wake: Callable[[], None]) -> None:
        def quiet_while_lost() -> None:
            if self.t0 is None or not self._away(time.monotonic() - self.t0):
                wake()

        self.t0 = time.monotonic()
        super().start(quiet_while_lost)

    def _away(self, since: float) -> bool:
        return self.at <= since < self.at + self.for_s

    def read(self) -> list[Any]:
        out = []
        for c in super().read():
            if self.first_t is None:
                self.first_t = float(c.t[0])
            # By sample time: what was sampled while away never reaches the daemon.
            was, self.lost = self.lost, self._away(float(c.t[0]) - self.first_t)
            if was and not self.lost:
                self.resumed_at = time.monotonic()
            if not self.lost:
                out.append(c)
        return out

    def status(self) -> list[SensorStatus]:
        assert self.t0 is not None
        state = SensorState.LOST if self._away(time.monotonic() - self.t0) else SensorState.OK
        return [dataclasses.replace(s, state=state) for s in super().status()]


def test_the_daemon_publishes_calibrated_codes_states_and_segments(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """The daemon on a card with a semi-Markov model and conformal sets; the sensor is lost
    for a while in the middle."""
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f'[window]\nhop = 10\n[behaviour]\nlag_s = 0.2\n[service]\nnode_id = "e2e"\n'
        f'state_dir = "state"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        "[homeassistant]\nenabled = false\n"
        '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
    )
    config = load_config(cfg)
    pkg = with_semi_markov(seconds=600)
    card = pkg.card
    assert card.calibration is not None
    cal = dataclasses.replace(
        card.calibration, temperature=2.0, conformal=ConformalSpec("lac", 0.9, 0.95)
    )
    pkg = dataclasses.replace(pkg, card=dataclasses.replace(card, calibration=cal))
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, package=pkg))
    acq = GapAndLoss(at=1.6, for_s=0.8)

    first_event_at: list[float] = []

    async def main() -> dict[str, list[bytes]]:
        async with Collector(broker, "fsqd/e2e/#") as c:

            async def watch() -> None:
                while not c.payloads("fsqd/e2e/events"):
                    await asyncio.sleep(0.01)
                first_event_at.append(time.monotonic())

            watcher = asyncio.create_task(watch())
            sinks = open_sinks(config, stdout=False, out=io.StringIO())
            daemon = Daemon(config, acquisition=acq, sinks=sinks, handle_signals=False)

            async def stop_after_a_state_past_the_gap() -> None:
                # Stop once the segment after the gap has its state (its first window
                # decided, lag_s later), however late a loaded machine brings it.
                deadline = time.monotonic() + 30.0
                gap_from: float | None = None  # the last window's end before the gap
                while time.monotonic() < deadline:
                    if gap_from is None and acq.resumed_at is not None:
                        codes = c.payloads("fsqd/e2e/codes")
                        gap_from = max(json.loads(m)["t_end"] for m in codes)
                    states = [json.loads(m) for m in c.payloads("fsqd/e2e/state")]
                    if gap_from is not None and any(m["since"] > gap_from for m in states):
                        break
                    await asyncio.sleep(0.01)
                daemon.stop("test")

            stopper = asyncio.create_task(stop_after_a_state_past_the_gap())
            assert await daemon.run() == 0
            await stopper
            await c.wait_for(lambda c: c.payloads("fsqd/e2e/status")[-1:] == [b"offline"])
            await watcher
            return {t: c.payloads(t) for t in {t for t, _, _ in c.messages}}

    got = asyncio.run(main())
    codes = [validate("codes", raw) for raw in got["fsqd/e2e/codes"]]
    # Temperature 2 flattens the head's softmax: every p is below the raw one's (~1).
    assert codes and all(0.2 < m["p"] < 0.9 for m in codes)
    assert all(m["label"] in m["set"] for m in codes)
    states = [validate("state", raw) for raw in got["fsqd/e2e/state"]]
    events = [validate("events", raw) for raw in got["fsqd/e2e/events"]]
    assert states and events
    starts = np.array([m["t_start"] for m in codes])
    ends = np.array([m["t_end"] for m in codes])
    (cut,) = np.flatnonzero(np.diff(starts) > 0.15) + 1  # the gap, between windows
    centre = (starts + ends) / 2
    # The loss ends the segment at its last window; the next state starts after the gap.
    assert any(abs(e["end"] - (centre[cut - 1] + 0.05)) < 0.01 for e in events), events
    assert any(abs(s["since"] - (centre[cut] - 0.05)) < 0.01 for s in states), states
    # "lost" ended it at once: its event came while the sensor was still away (a gap
    # alone is only seen with the first window after it, a second later).
    assert acq.resumed_at is not None and first_event_at
    assert first_event_at[0] < acq.resumed_at, (first_event_at, acq.resumed_at)
    # Every window is in exactly one finished segment (the run's end closes the last).
    assert sum(round(e["duration_s"] / 0.1) for e in events) == len(codes)


def test_sighup_applies_behaviour_settings_and_keeps_the_open_segment(tmp_path: Path) -> None:
    from fsqd.sinks.jsonl import JsonLinesSink

    cfg = tmp_path / "fsqd.toml"
    sensor = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
    # The argmax with a minimum dwell (a package whose card has no semi-Markov model).
    pkg = tmp_path / "pkg"
    shutil.copytree(bundled_model_path(), pkg)
    (pkg / "model.json").write_text(hysteresis_card().to_json())
    sensor = f"[model]\npath = '{pkg}'\n" + sensor
    cfg.write_text("[behaviour]\nlag_s = 0\nmin_dwell_s = 0.5\n" + sensor)
    meta = io.StringIO()
    daemon = Daemon(
        load_config(cfg),
        acquisition=SimulatedAcquisition(),
        sinks=[JsonLinesSink(io.StringIO(), meta=meta)],
        handle_signals=False,
    )
    states = daemon.states
    assert states is not None
    tracker = states.tracker
    t = 0.5 * np.arange(4)
    with structlog.testing.capture_logs() as logs:
        states.windows(0, batch([rest(0.9)] * 4), t, t + 1)
        states.windows(4, batch([rest(0.7)]), t[-1:] + 0.5, t[-1:] + 1.5)  # confidence only
        states.windows(5, batch([walk(0.8)]), t[-1:] + 1.0, t[-1:] + 2.0)
    assert [(e["event"], e["behaviour"], e["seq"]) for e in logs] == [
        ("behaviour", "rest", 0),
        ("behaviour", "walk", 5),
    ]
    states.end()
    meta.truncate(0)
    meta.seek(0)
    t = 0.5 * np.arange(4)
    states.windows(0, batch([rest(0.9)] * 4), t, t + 1)
    cfg.write_text("[behaviour]\nlag_s = 0\nmin_dwell_s = 0.5\nconfidence_step = 0.5\n" + sensor)
    daemon.reload()
    assert daemon.states is states and states.tracker is tracker
    assert tracker.settings.confidence_step == 0.5
    assert daemon.config.behaviour.confidence_step == 0.5
    t = 2.0 + 0.5 * np.arange(4)
    states.windows(4, batch([rest(0.6)] * 4), t, t + 1)  # moved 0.3 < 0.5: no new state
    states.end()
    lines = [json.loads(line) for line in meta.getvalue().splitlines()]
    published = [m for m in lines if "since" in m]
    (segment,) = [m for m in lines if m.get("type") == "segment"]
    assert len(published) == 1
    assert segment["duration_s"] == 4.0 and segment["start"] == published[0]["since"]


def test_events_wait_for_the_broker_newest_kept_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mosquitto import mosquitto_missing

    if reason := mosquitto_missing():
        pytest.skip(reason)
    monkeypatch.setattr(sink_mod, "EVENTS_KEPT", 5)
    broker = Mosquitto(tmp_path / "b")  # port chosen, not started yet
    settings = MqttSettings(
        host=broker.host, port=broker.port, node_id="n1", reconnect_min_s=0.1, reconnect_max_s=0.3
    )

    async def main() -> list[bytes]:
        sink = MqttSink(settings, tmp_path / "spool.db")
        for i in range(8):  # no broker yet: they wait in memory
            sink.publish_event(b'{"i":%d}' % i)
        broker.start()
        try:
            async with Collector(broker, "fsqd/n1/events") as c:
                task = asyncio.create_task(sink.run())
                await c.wait_for(lambda c: len(c.payloads("fsqd/n1/events")) >= 5, 30)
                await sink.aclose(5)
                await task
                return c.payloads("fsqd/n1/events")
        finally:
            broker.stop()

    assert asyncio.run(main()) == [b'{"i":%d}' % i for i in range(3, 8)]


def test_an_event_pushed_out_while_being_sent_takes_no_other_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory is full and the one being published falls off the front meanwhile: the
    next one, not yet sent, must stay."""
    monkeypatch.setattr(sink_mod, "EVENTS_KEPT", 3)
    sent: list[bytes] = []

    class SlowClient:
        def __init__(self) -> None:
            self.release = asyncio.Event()

        async def publish(self, topic: str, payload: bytes, **kw: Any) -> None:
            await self.release.wait()
            sent.append(payload)

    async def main() -> None:
        sink = MqttSink(MqttSettings(host="127.0.0.1", port=1, node_id="n1"), tmp_path / "s.db")
        client = SlowClient()
        sink.publish_event(b"a")
        sender = asyncio.create_task(sink._send_events(client))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)  # "a" is being published
        for e in (b"b", b"c", b"d"):  # "a" falls off the front
            sink.publish_event(e)
        client.release.set()
        deadline = time.monotonic() + 5
        while len(sent) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        sender.cancel()
        await sink.aclose(0.1)

    asyncio.run(main())
    assert sent == [b"a", b"b", b"c", b"d"]

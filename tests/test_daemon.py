"""The daemon end to end, in process, with the simulator as a real-time sensor source."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import numpy.typing as npt
import pytest
import structlog
from mosquitto import Collector, Mosquitto, free_port

from fsqd.backends.onnx import OnnxEncoder
from fsqd.chunk import SampleChunk
from fsqd.config import Config, load_config
from fsqd.daemon import Daemon, open_sinks
from fsqd.daemon.clock import WallClock
from fsqd.errors import OutputError
from fsqd.imu.acquire.acquisition import SensorStatus
from fsqd.sinks.jsonl import JsonLinesSink
from fsqd.sinks.schemas import load as load_schema
from fsqd.testing import SimulatedAcquisition

SENSOR = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'


def make_config(tmp_path: Path, body: str = "") -> Config:
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(body + "\n" + SENSOR)
    return load_config(cfg)


class Recorder:
    """Notifier that records what it was told."""

    def __init__(self, watchdog_interval_s: float | None = None) -> None:
        self.watchdog_interval_s = watchdog_interval_s
        self.calls: list[str] = []

    def ready(self) -> None:
        self.calls.append("ready")

    def status(self, line: str) -> None:
        self.calls.append("status")

    def watchdog(self) -> None:
        self.calls.append("watchdog")

    def stopping(self) -> None:
        self.calls.append("stopping")

    def reloading(self) -> None:
        self.calls.append("reloading")


def run(daemon: Daemon) -> int:
    return asyncio.run(daemon.run())


def codes(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_codes_are_contiguous_epoch_stamped_and_timed(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n[stats]\ninterval_s = 1\n")
    out, meta = io.StringIO(), io.StringIO()
    notes = Recorder(watchdog_interval_s=0.2)
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(out, meta=meta)],
        notifier=notes,
        duration_s=3.0,
        handle_signals=False,
    )
    before = time.time()
    assert run(daemon) == 0
    msgs = codes(out)
    # 3 s at 100 Hz, hop 10: the first window after 1 s, then 10 per second.
    assert 15 <= len(msgs) <= 22
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    assert {m["run"] for m in msgs} == {daemon.run_id}
    for m in msgs:
        assert before < m["t_start"] < m["t_end"] < time.time()
        assert m["t_end"] - m["t_start"] == pytest.approx(0.99, abs=1e-3)
        assert 0 < m["latency_ms"] < 1000
        assert m["clock_synced"] in (True, False, None)
        assert m["label"] and 0 < m["p"] <= 1
    steps = np.diff([m["t_end"] for m in msgs])
    assert np.allclose(steps, 0.1, atol=1e-3)
    period = daemon.timer.roll()
    total = period.cumulative
    for stage in ("acquire", "window_ready", "normalise", "infer", "fsq", "publish", "e2e"):
        assert total[stage].count > 0, stage
    assert total["e2e"].count == len(msgs)
    # Stages nest: a sample's age when read <= its window's age when cut <= end to end.
    assert total["acquire"].p50 <= total["window_ready"].p50 <= total["e2e"].p50
    # Stats and info went to the meta stream; the last stats has the final counters.
    meta_msgs = [json.loads(line) for line in meta.getvalue().splitlines()]
    assert "versions" in meta_msgs[0]
    last = meta_msgs[-1]
    assert last["counters"]["windows"] == len(msgs)
    assert last["counters"]["published"] == len(msgs)
    assert last["counters"]["dropped"] == 0
    assert last["hdr"]["e2e_total"]
    assert notes.calls[0] == "ready" and "stopping" in notes.calls
    assert notes.calls.count("watchdog") >= 5
    assert notes.calls.index("stopping") > notes.calls.index("ready")


class SlowEncoder:
    """The real encoder, made artificially slow."""

    name = "slow-onnx"

    def __init__(self, inner: OnnxEncoder, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.calls = 0

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        time.sleep(self.delay_s)
        return self.inner(x)

    def close(self) -> None:
        self.inner.close()


def test_inference_falling_behind_drops_oldest_windows_and_counts(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 1\nmax_pending = 5\nmax_batch = 2\n")
    out = io.StringIO()
    acq = SimulatedAcquisition(chunk=1)
    slow = SlowEncoder(OnnxEncoder(config.model.package), 0.1)
    daemon = Daemon(
        config,
        acquisition=acq,
        sinks=[JsonLinesSink(out)],
        encoder=slow,
        duration_s=2.5,
        handle_signals=False,
    )
    assert run(daemon) == 0
    msgs = codes(out)
    c = daemon.counters
    # 100 windows/s in, at most 2 per 0.1 s out: most are dropped, each one counted.
    assert c.dropped > 50
    assert c.windows == c.dropped + len(msgs)
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    # Acquisition was never held back: every sample it made was taken.
    assert c.samples == acq.samples
    # What survives is the newest: windows are not stuck behind a growing queue.
    assert msgs[-1]["latency_ms"] < 1000


class StepAwareSink(JsonLinesSink):
    """A sink holding built codes (like a spool) is told of each step."""

    def __init__(self, out: io.StringIO) -> None:
        super().__init__(out)
        self.steps: list[float] = []

    def clock_stepped(self, step_s: float) -> None:
        self.steps.append(step_s)


def test_wall_clock_step_remaps_unsent_windows_and_stream_goes_on(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n")
    step = [0.0]
    clock = WallClock(wall=lambda: time.time() + step[0])
    out = io.StringIO()
    # Slow inference keeps windows pending while the clock steps.
    slow = SlowEncoder(OnnxEncoder(config.model.package), 0.05)
    sink = StepAwareSink(out)
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[sink],
        encoder=slow,
        clock=clock,
        duration_s=3.0,
        handle_signals=False,
    )

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(1.8, lambda: step.__setitem__(0, 3600.0))
        return await daemon.run()

    assert asyncio.run(main()) == 0
    msgs = codes(out)
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    assert daemon.counters.clock_steps == 1
    assert len(sink.steps) == 1 and sink.steps[0] == pytest.approx(3600.0, abs=0.01)
    t_end = np.array([m["t_end"] for m in msgs])
    jumps = np.diff(t_end)
    # One jump of an hour; everything else the hop.
    assert np.sum(np.abs(jumps - 0.1) > 1e-3) == 1
    k = int(np.argmax(jumps))
    assert jumps[k] == pytest.approx(3600.1, abs=1e-3)
    # Windows that were cut before the step but sent after carry the new (true) time.
    assert msgs[k + 1]["t_end"] > time.time() + 3000
    assert daemon.stream.gaps.gaps == 0


def test_codes_stats_info_through_a_real_broker(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_config(
        tmp_path,
        f"""
[window]
hop = 10
[stats]
interval_s = 1
[service]
node_id = "n1"
state_dir = "state"
[mqtt]
host = "{broker.host}"
port = {broker.port}
""",
    )
    sinks = open_sinks(config, stdout=False, out=io.StringIO())
    assert [type(s).__name__ for s in sinks] == ["MqttSink"]
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=sinks,
        duration_s=2.5,
        handle_signals=False,
    )

    async def main() -> list[tuple[str, bytes, bool]]:
        async with Collector(broker, "fsqd/n1/#", "homeassistant/#") as c:
            await daemon.run()
            # The last word on a clean stop is the retained "offline".
            await c.wait_for(lambda c: c.payloads("fsqd/n1/status")[-1:] == [b"offline"])
            return c.messages

    msgs = asyncio.run(main())
    # Every message the daemon published is valid against its shipped schema.
    for topic, payload, _ in msgs:
        kind = "homeassistant" if topic.startswith("homeassistant/") else topic.split("/")[-1]
        body = payload.decode() if kind == "status" else json.loads(payload)
        jsonschema.Draft202012Validator(load_schema(kind)).validate(body)
    codes = [json.loads(p) for t, p, _ in msgs if t == "fsqd/n1/codes"]
    assert len(codes) >= 10
    assert [m["seq"] for m in codes] == list(range(len(codes)))
    assert all(abs(m["t_end"] - time.time()) < 10 for m in codes)
    stats = [json.loads(p) for t, p, _ in msgs if t == "fsqd/n1/stats"]
    assert stats[-1]["counters"]["published"] == len(codes)
    assert stats[-1]["counters"]["spool_depth"] == 0
    assert any(t == "fsqd/n1/info" for t, _, _ in msgs)
    assert b"online" in [p for t, p, _ in msgs if t == "fsqd/n1/status"]
    assert any(t.startswith("homeassistant/device/") for t, _, _ in msgs)
    # PUBACKs came back through on_published: publish and end-to-end latency per code.
    total = daemon.timer.roll().cumulative
    assert total["publish"].count == len(codes)
    assert total["e2e"].count == len(codes)
    assert 0 < total["e2e"].p50 < 500_000


def test_no_broker_answering_prints_codes_when_the_config_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens: the connect probe is refused at once
    body = f"[mqtt]\nhost = '127.0.0.1'\nport = {port}\n[service]\nstate_dir = 'state'\n"
    demo = make_config(tmp_path, body + "without_broker = 'stdout'\n")
    t0 = time.monotonic()
    sinks = open_sinks(demo, stdout=False, out=io.StringIO())
    assert time.monotonic() - t0 < 1.0
    assert [type(s).__name__ for s in sinks] == ["JsonLinesSink"]
    assert f"no MQTT broker answers at 127.0.0.1:{port}" in capsys.readouterr().err
    # A production config keeps MQTT and spools until the broker comes.
    prod = make_config(tmp_path, body)
    assert [type(s).__name__ for s in open_sinks(prod, stdout=False, out=io.StringIO())] == [
        "MqttSink"
    ]
    # --stdout wins over a configured broker.
    assert [type(s).__name__ for s in open_sinks(prod, stdout=True, out=io.StringIO())] == [
        "JsonLinesSink"
    ]


def test_log_lines_say_what_they_count(tmp_path: Path) -> None:
    """With the broker away nothing is published: the journal must not say otherwise."""
    config = make_config(
        tmp_path,
        "[window]\nhop = 10\n[stats]\ninterval_s = 1\n[service]\nstate_dir = 'state'\n"
        f"[mqtt]\nhost = '127.0.0.1'\nport = {free_port()}\n",
    )
    sinks = open_sinks(config, stdout=False, out=io.StringIO())
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=sinks,
        duration_s=2.5,
        handle_signals=False,
    )
    with structlog.testing.capture_logs() as logs:
        assert run(daemon) == 0
    summary = [e for e in logs if e["event"] == "summary"][-1]
    counts = {
        "samples", "windows", "dropped", "coded", "published", "spooled", "spool_depth",
        "spool_dropped", "unacked", "lost",
    }  # fmt: skip
    assert counts <= set(summary)
    # Built, acknowledged, on disk, lost: each its own number, as the sink counts them.
    assert summary["coded"] == daemon.seq >= 10
    assert summary["windows"] == summary["coded"] + summary["dropped"]
    assert summary["published"] == 0
    assert summary["spooled"] == summary["spool_depth"] == summary["coded"]
    assert summary["lost"] == summary["spool_dropped"] == summary["unacked"] == 0
    final = sinks[0].counters()
    assert {k: summary[k] for k in final if k in summary} == {
        k: v for k, v in final.items() if k in summary
    }
    periodic = [e for e in logs if e["event"] == "stats"]
    assert periodic and all(e["published"] == 0 for e in periodic)
    assert all(e["coded"] <= summary["coded"] for e in periodic)


class StepBackSource(SimulatedAcquisition):
    """Delivers one chunk whose timestamps jump back 5 s (a source stamping with a wall
    clock that stepped), then goes on from where it was."""

    def read(self) -> list[SampleChunk]:
        chunks = super().read()
        out = []
        for c in chunks:
            if not self.stepped and self.samples > 150:
                self.stepped = True
                out.append(SampleChunk(c.t - 5.0, c.x))
            else:
                out.append(c)
        return out

    stepped = False


def test_timestamps_going_backwards_start_a_segment_counted_not_fatal(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n")
    out = io.StringIO()
    daemon = Daemon(
        config,
        acquisition=StepBackSource(chunk=2),
        sinks=[JsonLinesSink(out)],
        duration_s=3.0,
        handle_signals=False,
    )
    assert run(daemon) == 0
    msgs = codes(out)
    # The stream stage's policy for live data: a new segment, counted, in the stats.
    assert daemon.stream.gaps.backwards == 1
    assert json.loads(daemon.last_stats)["counters"]["time_going_back"] == 1
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    assert len(msgs) >= 10
    assert all(b > a for a, b in itertools.pairwise(m["t_end"] for m in msgs))


class FiniteSource(SimulatedAcquisition):
    """Delivers exactly ``total`` samples, then nothing (the sensor stops)."""

    total = 300

    def read(self) -> list[SampleChunk]:
        out = []
        for c in super().read():
            room = self.total - self.given
            if room > 0:
                out.append(SampleChunk(c.t[:room], c.x[:room], c.new_segment))
                self.given += min(room, len(c))
        return out

    given = 0


def test_stop_flushes_the_stream_so_the_last_window_is_coded(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n")
    out = io.StringIO()
    src = FiniteSource(chunk=2)
    daemon = Daemon(
        config, acquisition=src, sinks=[JsonLinesSink(out)], duration_s=3.6, handle_signals=False
    )
    assert run(daemon) == 0
    assert src.given == 300
    # 300 samples, window 100, hop 10: windows end at samples 99, 109, ..., 299.
    msgs = codes(out)
    assert len(msgs) == 21
    assert msgs[-1]["t_end"] - msgs[0]["t_end"] == pytest.approx(2.0, abs=1e-3)


class StallingSource(SimulatedAcquisition):
    """Stops delivering samples after ``stall_after`` samples (a sensor that hangs)."""

    stall_after = 60

    def read(self) -> list[SampleChunk]:
        chunks = super().read()
        return chunks if self.samples <= self.stall_after else []


def test_watchdog_only_while_samples_advance(tmp_path: Path) -> None:
    config = make_config(tmp_path, "")
    notes = Recorder(watchdog_interval_s=0.1)
    daemon = Daemon(
        config,
        acquisition=StallingSource(chunk=2),
        sinks=[JsonLinesSink(io.StringIO())],
        notifier=notes,
        duration_s=2.0,
        handle_signals=False,
    )
    assert run(daemon) == 0
    # ~0.6 s of samples, then nothing for ~1.4 s: pings stop with the samples.
    assert 2 <= notes.calls.count("watchdog") <= 9


class NeverAcks(JsonLinesSink):
    """A sink whose other side never confirms (a broker that never sends PUBACK)."""

    def submit_code(self, payload: bytes, seq: int) -> None:
        self.published += 1


def test_unconfirmed_codes_do_not_grow_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fsqd.daemon.app._MAX_IN_FLIGHT", 5)
    config = make_config(tmp_path, "[window]\nhop = 5\n")
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[NeverAcks(io.StringIO())],
        duration_s=2.0,
        handle_signals=False,
    )
    assert run(daemon) == 0
    assert daemon.seq > 10
    assert len(daemon._in_flight) == 5
    assert min(daemon._in_flight) == daemon.seq - 5  # the newest are kept


def test_stop_drains_windows_still_waiting_for_inference(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 5\nmax_pending = 1000\nmax_batch = 4\n")
    out = io.StringIO()
    # 20 windows/s in, at most 4 per 0.3 s out: a backlog builds up until the stop.
    slow = SlowEncoder(OnnxEncoder(config.model.package), 0.3)
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[JsonLinesSink(out)],
        encoder=slow,
        duration_s=2.5,
        handle_signals=False,
    )
    backlog: list[int] = []
    daemon.stop = lambda why="stop", stop=daemon.stop: (  # type: ignore[method-assign]
        backlog.append(len(daemon._pending)),
        stop(why),
    )[-1]
    assert run(daemon) == 0
    msgs = codes(out)
    assert backlog[0] >= 5  # there was something to drain
    assert daemon.counters.dropped == 0
    assert len(msgs) == daemon.counters.windows  # every window cut was coded and written
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))


def test_ready_waits_for_the_first_samples(tmp_path: Path) -> None:
    config = make_config(tmp_path, "")
    notes = Recorder(watchdog_interval_s=0.1)
    mute = StallingSource(chunk=2)
    mute.stall_after = -1  # never delivers
    daemon = Daemon(
        config,
        acquisition=mute,
        sinks=[JsonLinesSink(io.StringIO())],
        notifier=notes,
        duration_s=0.8,
        handle_signals=False,
    )
    assert run(daemon) == 0
    assert "ready" not in notes.calls and "watchdog" not in notes.calls
    assert "stopping" in notes.calls


class BrokenSink(JsonLinesSink):
    async def run(self) -> None:
        raise OutputError("spool: disk full")


def test_a_failing_sink_ends_the_run_with_its_own_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, "")
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[BrokenSink(io.StringIO())],
        duration_s=5.0,
        handle_signals=False,
    )
    with pytest.raises(OutputError, match="disk full"):
        run(daemon)


def test_ready_without_the_broker_and_everything_delivered_when_it_comes(
    tmp_path: Path, broker: Mosquitto
) -> None:
    broker.stop()  # the broker is down when the daemon starts
    config = make_config(
        tmp_path,
        f"""
[window]
hop = 10
[stats]
interval_s = 1
[service]
node_id = "n2"
state_dir = "state"
[mqtt]
host = "{broker.host}"
port = {broker.port}
reconnect_min = 0.1
reconnect_max = 0.3
""",
    )
    notes = Recorder()
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=open_sinks(config, stdout=False, out=io.StringIO()),
        notifier=notes,
        duration_s=5.0,
        handle_signals=False,
    )
    ready_at: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ready = notes.ready

        def record_ready() -> None:
            ready_at.append(loop.time() - t0)
            ready()

        notes.ready = record_ready  # type: ignore[method-assign]
        loop.call_later(2.5, broker.start)
        await daemon.run()

    asyncio.run(main())
    assert ready_at and ready_at[0] < 1.0  # not waiting for the broker
    # After the stop (aclose drained what was in flight): everything reached the broker.
    counters = daemon.sinks[0].counters()
    assert counters["published"] == daemon.seq > 30
    assert counters["spool_depth"] == 0 and counters["spool_dropped"] == 0


class SlowAcks(JsonLinesSink):
    """Confirms each code 0.3 s after it was submitted (a slow broker)."""

    def submit_code(self, payload: bytes, seq: int) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()

        def ack() -> None:
            self.published += 1
            if self.on_published is not None:
                self.on_published(seq, time.monotonic() - t0)

        loop.call_later(0.3, ack)


def test_final_stats_wait_for_the_last_confirmations(tmp_path: Path) -> None:
    config = make_config(tmp_path, "[window]\nhop = 10\n")
    meta = io.StringIO()
    sink = SlowAcks(io.StringIO(), meta=meta)
    daemon = Daemon(
        config,
        acquisition=SimulatedAcquisition(chunk=2),
        sinks=[sink],
        duration_s=2.0,
        handle_signals=False,
    )
    assert run(daemon) == 0
    final = json.loads(meta.getvalue().splitlines()[-1])
    assert final["counters"]["published"] == daemon.seq > 5
    assert final["latency_us_total"]["publish"]["count"] == daemon.seq


class UnmeasuredRate(SimulatedAcquisition):
    def status(self) -> list[SensorStatus]:
        (s,) = super().status()
        return [dataclasses.replace(s, rate_hz=float("nan"))]


class OddCounters(JsonLinesSink):
    def counters(self) -> dict[str, int | float]:
        return {"published": self.published, "never": float("inf"), "unknown": float("nan")}


def test_stats_are_strict_json_whatever_a_sink_counts(tmp_path: Path) -> None:
    config = make_config(tmp_path, "")
    meta = io.StringIO()
    daemon = Daemon(
        config,
        acquisition=UnmeasuredRate(chunk=2),
        sinks=[OddCounters(io.StringIO(), meta=meta)],
        duration_s=0.5,
        handle_signals=False,
    )
    assert run(daemon) == 0
    final = meta.getvalue().splitlines()[-1]
    counters = json.loads(final, parse_constant=lambda c: pytest.fail(f"{c} in stats"))["counters"]
    assert "never" not in counters and "unknown" not in counters and "published" in counters
    assert json.loads(final)["sensors"][0]["rate_hz"] is None


def test_demo_mode_says_where_codes_go_when_the_broker_answers(
    tmp_path: Path, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(
        tmp_path,
        f"[service]\nnode_id = 'd1'\nstate_dir = 'state'\nwithout_broker = 'stdout'\n"
        f"[mqtt]\nhost = '{broker.host}'\nport = {broker.port}\n",
    )
    assert [type(s).__name__ for s in open_sinks(config, stdout=False, out=io.StringIO())] == [
        "MqttSink"
    ]
    err = capsys.readouterr().err
    assert f"publishing to the MQTT broker at {broker.host}:{broker.port}, topics fsqd/d1/#" in err

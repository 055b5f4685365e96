"""``fsqd tail``: the view, and a real subscription to a real broker."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import RunCli
from mosquitto import Mosquitto, TlsFiles, free_port
from waiting import until

from fsqd.commands.tail import TailOptions, TailView, tail, tail_settings
from fsqd.sinks.mqtt import MqttSettings, MqttSink, Secret

ROOT = Path(__file__).parent.parent


def code_msg(seq: int, t_end: float, label: str = "walk") -> bytes:
    return json.dumps(
        {"v": 1, "run": "r", "seq": seq, "t_end": t_end, "code": 17, "label": label, "p": 0.93}
    ).encode()


STATS = json.dumps(
    {
        "latency_us": {"e2e": {"count": 600, "p50": 4200, "p99": 9100, "max": 12000}},
        "counters": {"published": 600, "spool_depth": 0, "reconnects": 1},
    }
).encode()


def test_lines_for_codes_stats_and_status() -> None:
    v = TailView("fsqd", as_json=False, live=False)
    line = v.feed("fsqd/barn-3/codes", code_msg(41, 100.0), 100.0125)
    assert line.startswith("barn-3") and line.endswith("\n")
    assert "seq      41" in line and "walk" in line and "p 0.93" in line
    assert "code     17" in line and "latency    12.5 ms" in line
    stats = v.feed("fsqd/barn-3/stats", STATS, 101.0)
    assert "e2e p50 4.2 p99 9.1 max 12.0 ms" in stats and "published 600" in stats
    assert v.feed("fsqd/barn-3/status", b"offline", 102.0) == "barn-3       offline\n"
    assert v.feed("fsqd/barn-3/info", b"{}", 102.0) == ""
    assert v.feed("other/barn-3/codes", code_msg(1, 0), 1) == ""
    assert v.feed("fsqd/barn-3/codes/extra", code_msg(1, 0), 1) == ""
    assert "unreadable payload" in v.feed("fsqd/barn-3/codes", b"\xff{", 1)
    assert v.codes == 1


def test_json_lines() -> None:
    v = TailView("fsqd", as_json=True, live=True)  # --json wins over the live view
    out = v.feed("fsqd/n1/codes", code_msg(3, 50.0), 50.5)
    doc = json.loads(out)
    assert doc["node"] == "n1" and doc["topic"] == "codes" and doc["received"] == 50.5
    assert doc["payload"]["seq"] == 3
    assert json.loads(v.feed("fsqd/n1/status", b"online", 51))["payload"] == "online"
    bad = json.loads(v.feed("fsqd/n1/stats", b"[1,2]", 52))
    assert bad["error"] == "payload is not a JSON object"


STATE = json.dumps(
    {
        "v": 1,
        "run": "r",
        "seq": 40,
        "behaviour": "walk",
        "since": 100.0,
        "confidence": 0.876,
        "set": ["walk", "trot"],
    }
).encode()
EVENT = json.dumps(
    {
        "v": 1,
        "run": "r",
        "type": "segment",
        "behaviour": "rest",
        "start": 60.0,
        "end": 100.0,
        "duration_s": 40.0,
        "confidence": 0.91,
    }
).encode()


def test_lines_for_behaviour_state_and_segments() -> None:
    v = TailView("fsqd", as_json=False, live=False)
    since = time.strftime("%H:%M:%S", time.localtime(100.0))
    assert v.feed("fsqd/barn-3/state", STATE, 101.0) == (
        f"barn-3       state  walk          88 %  since {since}  set walk,trot\n"
    )
    assert v.feed("fsqd/barn-3/events", EVENT, 101.0) == (
        "barn-3       ended  rest after 40.0 s (mean confidence 91 %)\n"
    )
    live = TailView("fsqd", as_json=False, live=True)
    live.feed("fsqd/b/state", STATE, 101.0)
    line = live.feed("fsqd/b/codes", code_msg(41, 100.0), 100.01)
    assert "walk          88 %" in line and line.index("88 %") < line.index("seq")
    doc = json.loads(TailView("fsqd", as_json=True, live=False).feed("fsqd/n/state", STATE, 1))
    assert doc["topic"] == "state" and doc["payload"]["confidence"] == 0.876


def test_live_view_keeps_one_line_per_node() -> None:
    v = TailView("fsqd", as_json=False, live=True)
    first = v.feed("fsqd/b/codes", code_msg(1, 10.0), 10.01)
    assert first.count("\n") == 1 and "\x1b[" in first
    second = v.feed("fsqd/a/codes", code_msg(1, 10.0, "rest"), 10.02)
    assert second.startswith("\x1b[1F")  # back over the one line drawn before
    assert second.count("\n") == 2 and second.index("a ") < second.index("b ")
    third = v.feed("fsqd/b/stats", STATS, 11.0)
    assert third.startswith("\x1b[2F") and "p99 9.1" in third


def test_tail_against_a_broker(broker: Mosquitto, tmp_path: Path) -> None:
    async def main() -> str:
        out = io.StringIO()
        opts = TailOptions(port=broker.port, nodes=("n1", "n2"), json=True, count=6)
        watcher = asyncio.create_task(tail(opts, out))
        await broker.wait_subscribed("fsqd/n2/info")  # the last of its subscriptions
        sinks = [
            MqttSink(MqttSettings(host=broker.host, port=broker.port, node_id=n), tmp_path / n)
            for n in ("n1", "n2", "n3")
        ]
        tasks = [asyncio.create_task(s.run()) for s in sinks]
        for seq in range(3):
            for s in sinks:
                s.submit_code(code_msg(seq, time.time() - 0.01), seq)
        assert await asyncio.wait_for(watcher, 20) == 0
        for s in sinks:
            await s.aclose(2)
        await asyncio.gather(*tasks)
        return out.getvalue()

    docs = [json.loads(line) for line in asyncio.run(main()).splitlines()]
    codes = [d for d in docs if d["topic"] == "codes"]
    assert len(codes) == 6
    assert {d["node"] for d in docs} == {"n1", "n2"}  # n3 not asked for
    for node in ("n1", "n2"):
        assert [d["payload"]["seq"] for d in codes if d["node"] == node] == [0, 1, 2]
    assert all(d["received"] >= d["payload"]["t_end"] for d in codes)


def test_cli_tail_as_a_process(broker: Mosquitto, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsqd", "tail", "--port", str(broker.port), "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    async def publish() -> None:
        sink = MqttSink(
            MqttSettings(host=broker.host, port=broker.port, node_id="cli"), tmp_path / "s"
        )
        task = asyncio.create_task(sink.run())
        await broker.wait_subscribed("fsqd/+/info")  # the tail process started and subscribed
        for seq in range(5):
            sink.submit_code(code_msg(seq, time.time()), seq)
        await until(lambda: sink.counters()["published"] == 5)
        await sink.aclose(2)
        await task

    asyncio.run(publish())
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [s for s in out.splitlines() if "seq" in s]
    assert len(lines) == 2 and "walk" in lines[0] and lines[0].startswith("cli")


def test_no_broker_is_one_line_error(run_cli: RunCli) -> None:
    code, out, err = run_cli("tail", "--port", free_port(), "--count", "1")
    assert out == ""
    assert code == 66
    assert err.count("\n") == 1 and "cannot subscribe at 127.0.0.1:" in err


def test_config_gives_broker_and_credentials(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    cfg = tmp_path / "fsqd.toml"
    port = free_port()
    cfg.write_text(
        f'[service]\nnode_id = "x"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        'username = "u"\npassword_file = "pw"\n'
    )
    code, _, err = run_cli("tail", "--config", cfg, "--count", "1")
    assert code == 66 and f"127.0.0.1:{port}" in err and "hunter2" not in err
    (tmp_path / "pw").unlink()
    code, _, err = run_cli("tail", "--config", cfg)
    assert code == 78 and "[mqtt] password_file: unreadable credential file" in err


def test_tail_over_tls_with_a_password_from_the_config(
    make_broker: Callable[..., Mosquitto], tls_files: TlsFiles, tmp_path: Path
) -> None:
    broker = make_broker(tls=tls_files, users={"fsqd": "pw-1", "viewer": "pw-2"})
    (tmp_path / "viewer.pw").write_text("pw-2\n")
    cfg = tmp_path / "fsqd.toml"
    cfg.write_text(
        f'[mqtt]\nhost = "localhost"\nport = {broker.port}\nca_file = "{tls_files.ca}"\n'
        'username = "viewer"\npassword_file = "viewer.pw"\n'
    )
    viewer = tail_settings(cfg)
    publisher = MqttSettings(
        host="localhost",
        port=broker.port,
        node_id="t1",
        tls=True,
        ca_file=tls_files.ca,
        username="fsqd",
        password=Secret("pw-1"),
    )

    async def main() -> str:
        out = io.StringIO()
        opts = TailOptions(host=viewer.host, port=viewer.port, count=2, mqtt=viewer)
        watcher = asyncio.create_task(tail(opts, out))
        await broker.wait_subscribed("fsqd/+/info")
        sink = MqttSink(publisher, tmp_path / "spool")
        task = asyncio.create_task(sink.run())
        for seq in range(2):
            sink.submit_code(code_msg(seq, time.time()), seq)
        assert await asyncio.wait_for(watcher, 20) == 0
        await sink.aclose(2)
        await task
        return out.getvalue()

    lines = [s for s in asyncio.run(main()).splitlines() if "seq" in s]
    assert len(lines) == 2 and lines[1].startswith("t1") and "seq       1" in lines[1]

"""``fsqd tail``: watch the codes, behaviour states and stats of one or many nodes.

Subscribes to ``<prefix>/<node>/{codes,stats,status,info,state,events}`` (``+`` for
every node). On a terminal it keeps one live line per node (behaviour state and its
confidence, label, p, code, latency, e2e p99, spool depth, online/offline); piped, it
prints one line per message (a finished segment as one line too); ``--json``
prints one JSON object per message for scripts. The latency shown for a code is
what this subscriber sees: receive time minus the window's ``t_end``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeGuard

import aiomqtt

from fsqd.config.mqtt import MqttSettings, parse_mqtt, tls_context
from fsqd.errors import ConfigError, NoInputError
from fsqd.tomlcheck import Table, load_config_toml

KINDS = ("codes", "stats", "status", "info", "state", "events")


@dataclass(frozen=True)
class TailOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    nodes: tuple[str, ...] = ()  # empty: every node
    prefix: str = "fsqd"
    json: bool = False
    live: bool = False  # redraw one line per node (a terminal)
    count: int | None = None  # stop after this many code messages
    duration_s: float | None = None
    mqtt: MqttSettings | None = None  # TLS and credentials (from a config file)


@dataclass
class _Node:
    status: str = "?"
    code: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    codes: int = 0


class TailView:
    """Turns received messages into output text; no I/O, so tests can drive it."""

    def __init__(self, prefix: str, *, as_json: bool, live: bool) -> None:
        self.prefix = prefix
        self.as_json = as_json
        self.live = live and not as_json
        self.nodes: dict[str, _Node] = {}
        self.codes = 0
        self._drawn = 0  # lines of the live block on screen

    def split(self, topic: str) -> tuple[str, str] | None:
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or parts[1] not in KINDS:
            return None
        return parts[0], parts[1]

    def feed(self, topic: str, payload: bytes, received: float) -> str:
        """Text to write for one message ('' for nothing)."""
        where = self.split(topic)
        if where is None:
            return ""
        node_id, kind = where
        node = self.nodes.setdefault(node_id, _Node())
        body: Any
        if kind == "status":
            body = payload.decode("utf-8", "replace")
            node.status = body
        else:
            try:
                body = json.loads(payload)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return self._emit(node_id, kind, None, received, payload, bad=True)
        if kind == "codes":
            self.codes += 1
            node.codes += 1
            node.code = body
            t_end = body.get("t_end")
            node.latency_ms = (
                None if not isinstance(t_end, int | float) else (received - t_end) * 1000
            )
        elif kind == "stats":
            node.stats = body
        elif kind == "state":
            node.state = body
        return self._emit(node_id, kind, body, received, payload)

    def _emit(
        self, node_id: str, kind: str, body: Any, received: float, raw: bytes, bad: bool = False
    ) -> str:
        if self.as_json:
            out = {
                "node": node_id,
                "topic": kind,
                "received": round(received, 6),
                "payload": body if not bad else raw.decode("utf-8", "replace"),
            }
            if bad:
                out["error"] = "payload is not a JSON object"
            return json.dumps(out, separators=(",", ":")) + "\n"
        if self.live:
            return self._redraw()
        if bad:
            return f"{node_id:<12} {kind}: unreadable payload ({len(raw)} bytes)\n"
        if kind == "codes":
            return f"{node_id:<12} {self._code_text(self.nodes[node_id])}\n"
        if kind == "stats":
            return f"{node_id:<12} stats  {self._stats_text(self.nodes[node_id])}\n"
        if kind == "status":
            return f"{node_id:<12} {body}\n"
        if kind == "state":
            return f"{node_id:<12} state  {self._state_text(self.nodes[node_id])}\n"
        if kind == "events":
            return f"{node_id:<12} ended  {_segment_text(body)}\n"
        return ""  # info: shown only with --json

    @staticmethod
    def _state_text(node: _Node) -> str:
        s = node.state
        conf = s.get("confidence")
        text = f"{s.get('behaviour', '?'):<12} {conf * 100:3.0f} %" if _num(conf) else "?"
        since = s.get("since")
        if _num(since):
            text += f"  since {time.strftime('%H:%M:%S', time.localtime(since))}"
        members = s.get("set")
        if isinstance(members, list) and len(members) > 1:
            text += "  set " + ",".join(str(m) for m in members)
        return text

    @staticmethod
    def _code_text(node: _Node) -> str:
        c = node.code
        label = c.get("label")
        parts = [f"seq {c.get('seq', '?'):>7}"]
        if label is not None:
            parts.append(f"{label:<12} p {c.get('p', 0):.2f}")
        parts.append(f"code {c.get('code', '?'):>6}")
        if node.latency_ms is not None:
            parts.append(f"latency {node.latency_ms:7.1f} ms")
        return "  ".join(parts)

    @staticmethod
    def _stats_text(node: _Node) -> str:
        s = node.stats
        lat = s.get("latency_us", {})
        e2e = lat.get("e2e") if isinstance(lat, dict) else None
        counters = s.get("counters", {}) if isinstance(s.get("counters"), dict) else {}
        parts = []
        if isinstance(e2e, dict) and e2e.get("count"):
            parts.append(
                f"e2e p50 {e2e.get('p50', 0) / 1000:.1f} p99 {e2e.get('p99', 0) / 1000:.1f} "
                f"max {e2e.get('max', 0) / 1000:.1f} ms"
            )
        for key in ("published", "spool_depth", "spool_dropped", "reconnects", "dropped"):
            if key in counters:
                parts.append(f"{key} {counters[key]}")
        return ", ".join(parts) or "(no counters)"

    def _redraw(self) -> str:
        lines = []
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            text = self._code_text(node) if node.code else "(no codes yet)"
            if node.state:
                text = self._state_text(node) + "  |  " + text
            if node.stats:
                text += "  |  " + self._stats_text(node)
            lines.append(f"\x1b[2K{node_id:<12} {node.status:<7} {text}")
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._drawn = len(lines)
        return up + "\n".join(lines) + "\n"


def _num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _segment_text(e: dict[str, Any]) -> str:
    d, c = e.get("duration_s"), e.get("confidence")
    text = str(e.get("behaviour", "?"))
    if _num(d):
        text += f" after {d:.1f} s"
    if _num(c):
        text += f" (mean confidence {c * 100:.0f} %)"
    return text


def _client(opts: TailOptions) -> aiomqtt.Client:
    s = opts.mqtt
    if s is None:
        return aiomqtt.Client(opts.host, opts.port, timeout=10)
    return aiomqtt.Client(
        opts.host,
        opts.port,
        username=s.username,
        password=None if s.password is None else s.password.value,
        tls_context=tls_context(s),
        timeout=10,
    )


async def tail(opts: TailOptions, out: TextIO) -> int:
    """Print what arrives until ``count`` codes, ``duration_s`` or cancellation."""
    view = TailView(opts.prefix, as_json=opts.json, live=opts.live)
    nodes = opts.nodes or ("+",)
    loop = asyncio.get_running_loop()
    deadline = None if opts.duration_s is None else loop.time() + opts.duration_s
    connected_once = False
    while True:
        try:
            async with _client(opts) as client:
                connected_once = True
                for node in nodes:
                    for kind in KINDS:
                        await client.subscribe(f"{opts.prefix}/{node}/{kind}", qos=1)
                async for message in _until(client, deadline):
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    text = view.feed(str(message.topic), payload, time.time())
                    if text:
                        out.write(text)
                        out.flush()
                    if opts.count is not None and view.codes >= opts.count:
                        return 0
                return 0  # duration over
        except aiomqtt.MqttError as e:
            if not connected_once:
                raise NoInputError(f"cannot subscribe at {opts.host}:{opts.port}: {e}") from None
            await asyncio.sleep(1.0)  # the broker went away: wait for it


async def _until(client: aiomqtt.Client, deadline: float | None) -> AsyncIterator[aiomqtt.Message]:
    messages = client.messages.__aiter__()
    loop = asyncio.get_running_loop()
    while True:
        timeout = None if deadline is None else deadline - loop.time()
        if timeout is not None and timeout <= 0:
            return
        try:
            yield await asyncio.wait_for(messages.__anext__(), timeout)
        except TimeoutError:
            return


def tail_settings(path: Path) -> MqttSettings:
    """Broker, TLS and credentials from the ``[mqtt]`` table of a daemon config file."""
    _, data = load_config_toml(path)
    root = Table(data, path.name)
    if not root.has("mqtt"):
        raise ConfigError(f"{path.name}: no [mqtt] table")
    service = data.get("service", {})
    node = service.get("node_id") if isinstance(service, dict) else None
    return parse_mqtt(
        root.table("mqtt"), node_id=node if isinstance(node, str) else None, base_dir=path.parent
    )


def run_tail(opts: TailOptions, out: TextIO | None = None) -> int:
    """``fsqd tail``: until ``count`` codes, ``duration_s`` or Ctrl-C (130)."""
    try:
        return asyncio.run(tail(opts, sys.stdout if out is None else out))
    except KeyboardInterrupt:
        return 130

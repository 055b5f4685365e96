"""``fsqd collect --config FILE``: every node's messages into one Parquet store, each once.

The collector itself is ``fsqd.fleet.collector``; this wires the config file to it, logs
to stderr, and stops cleanly (last batch committed and acknowledged) on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fsqd.config.collect import CollectConfig, load_collect_config
from fsqd.config.mqtt import tls_context

if TYPE_CHECKING:
    from fsqd.fleet.collector import Collector

__all__ = ["CollectCommandOptions", "collect", "collector_for"]


@dataclass(frozen=True)
class CollectCommandOptions:
    config: Path
    duration_s: float | None = None  # stop after this long (tests, benchmarks)


def collector_for(cfg: CollectConfig) -> Collector:
    """The collector a config file describes (``fsqd.fleet`` is imported here: pyarrow)."""
    from fsqd.fleet.collector import Broker, CollectOptions, Collector

    m, c = cfg.mqtt, cfg.collect
    broker = Broker(
        host=m.host,
        port=m.port,
        username=m.username,
        password=None if m.password is None else m.password.value,
        keepalive_s=m.keepalive_s,
        tls=lambda: tls_context(m),
    )
    opts = CollectOptions(
        store=c.store,
        collector_id=c.collector_id,
        group=c.group,
        prefix=m.topic_prefix,
        kinds=c.kinds,
        session_expiry_s=c.session_expiry_s,
        max_unacked=c.max_unacked,
        flush_rows=c.flush_rows,
        flush_interval_s=c.flush_interval_s,
        stats_interval_s=c.stats_interval_s,
        compact_files=c.compact_files,
        gap_grace_s=c.gap_grace_s,
        reconnect_min_s=m.reconnect_min_s,
        reconnect_max_s=m.reconnect_max_s,
    )
    return Collector(opts, broker)


def collect(opts: CollectCommandOptions) -> int:
    cfg = load_collect_config(opts.config)
    _need_fleet_extra()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    collector = collector_for(cfg)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if opts.duration_s is not None:
            loop.call_later(opts.duration_s, stop.set)
        await collector.run(stop)

    asyncio.run(main())
    return 0


def _need_fleet_extra() -> None:
    from fsqd.errors import UsageError

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError("fsqd collect needs pyarrow: pip install 'fsqd[fleet]'") from None

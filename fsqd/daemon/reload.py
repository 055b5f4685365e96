"""SIGHUP: read the config file again and apply what can change while running.

The stats interval, the log level and ``[behaviour]`` apply at once (command-line log
settings still win; the behaviour state keeps its open segment); anything else is logged
as needing a restart, and ``info`` is sent again with the file's new hash. The file is
read in a thread, so a slow or stuck read never holds up the stream; past
``RELOAD_TIMEOUT_S`` the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fsqd.config.loader import Config, load_config
from fsqd.daemon.contracts import LoggingOverride
from fsqd.daemon.logging import configure_logging
from fsqd.daemon.telemetry import Telemetry, log
from fsqd.errors import FsqdError

__all__ = ["RELOAD_TIMEOUT_S", "Reloading"]

# A SIGHUP's config read gives up after this (the file is on a hung mount, say).
RELOAD_TIMEOUT_S = 10.0
T = TypeVar("T")


class Reloading(Telemetry):
    """The daemon's reload half (``fsqd.daemon.app.Daemon`` sets the state it reads)."""

    log_override: LoggingOverride
    _reload_task: asyncio.Task[None] | None

    def _sighup(self) -> None:
        """SIGHUP, on the loop: the file is read in a thread, so a slow or stuck read (a
        network mount, a FIFO swapped in) never holds up the stream; past RELOAD_TIMEOUT_S
        the running config stays."""
        if self._reload_task is not None and not self._reload_task.done():
            log.warning("reload already in progress: SIGHUP ignored")
            return
        self.notifier.reloading()
        self._reload_task = asyncio.get_running_loop().create_task(self._reload_in_thread())

    async def _reload_in_thread(self) -> None:
        path = self.config.path
        try:
            new = await asyncio.wait_for(_in_thread(load_config, path), RELOAD_TIMEOUT_S)
        except TimeoutError:
            self._reload_failed(f"{path}: not read within {RELOAD_TIMEOUT_S:g} s")
        except Exception as e:  # FsqdError: one line; anything else still must not stop us
            self._reload_failed(str(e) if isinstance(e, FsqdError) else repr(e))
        else:
            self._apply(new)

    def reload(self) -> None:
        """Read the config file again and apply it, here and now (SIGHUP goes through
        ``_sighup``, which reads it in a thread)."""
        self.notifier.reloading()
        try:
            new = load_config(self.config.path)
        except FsqdError as e:
            self._reload_failed(str(e))
            return
        self._apply(new)

    def _reload_failed(self, why: str) -> None:
        log.error("reload failed: keeping the running config", error=why)
        self.notifier.ready()

    def _apply(self, new: Config) -> None:
        new = dataclasses.replace(new, logging=self.log_override.apply(new.logging))
        old = self.config
        if new.stats.interval_s != old.stats.interval_s:
            self.stats_interval_s = new.stats.interval_s
            self._reschedule.set()
        if new.logging.level != old.logging.level:
            configure_logging(old.logging.format, new.logging.level)
        if new.behaviour != old.behaviour and self.states is not None:
            self.states.configure(new.behaviour)
        restart = [
            name
            for name in (
                "model",
                "hailo",
                "window",
                "mqtt",
                "homeassistant",
                "service",
                "sensors",
                "health",
            )
            if _differs(getattr(new, name), getattr(old, name))
        ]
        if new.logging.format != old.logging.format:
            restart.append("logging.format")
        log.info(
            "config reloaded",
            applied=["stats.interval_s", "logging.level", "behaviour"],
            needs_restart=restart or None,
            config_hash=new.hash,
        )
        self.config = dataclasses.replace(
            old,
            stats=new.stats,
            behaviour=new.behaviour,
            logging=dataclasses.replace(new.logging, format=old.logging.format),
        )
        # The retained info names the config hash the file has now (and the encoder's state).
        info = self._info_payload(config_hash=new.hash)
        for sink in self.sinks:
            sink.publish_info(info)
        self.notifier.ready()


def _in_thread(fn: Callable[[Any], T], arg: Any) -> asyncio.Future[T]:
    """``fn(arg)`` in a daemon thread: unlike an executor's, one that never returns (a
    stuck read) is abandoned on timeout and does not hold up the process's exit."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(settle: Callable[[], None]) -> None:
        def on_loop() -> None:
            if not fut.done():  # else it timed out and was cancelled meanwhile
                settle()

        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(on_loop)

    def work() -> None:
        try:
            result = fn(arg)
        except BaseException as e:
            deliver(functools.partial(fut.set_exception, e))
            return
        deliver(functools.partial(fut.set_result, result))

    threading.Thread(target=work, name="fsqd-reload", daemon=True).start()
    return fut


def _differs(a: Any, b: Any) -> bool:
    return bool(a != b)

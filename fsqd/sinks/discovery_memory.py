"""Which retained discovery messages this node left on the broker, kept in the state directory.

A retained discovery message outlives the daemon: when discovery is switched off, or the
node (or the discovery prefix) is renamed, the old message would keep a dead device in
Home Assistant for ever. So every discovery topic is written to
``<state_dir>/homeassistant.json`` before it is published, and each one that is no
longer the current topic is cleared (an empty retained message, which HA takes as
"remove this device") at the next connection; it leaves the file once the broker has
acknowledged the clearing. The file is replaced atomically (``fsqd.outfile``); an
unreadable one is set aside with a warning, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import structlog

from fsqd.errors import FsqdError
from fsqd.outfile import text_output
from fsqd.safefile import KIB, FileProblem, read_text

__all__ = ["MEMORY_FILE", "DiscoveryMemory"]

log = structlog.get_logger(__name__)

MEMORY_FILE = "homeassistant.json"
_MAX = 64 * KIB  # a few topics; anything bigger is not ours


class DiscoveryMemory:
    """The discovery topics that may still be retained on the broker."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / MEMORY_FILE
        self.topics: list[str] = self._read()

    def _read(self) -> list[str]:
        try:
            text = read_text(self.path, limit=_MAX, what="the discovery memory")
        except FileProblem as e:
            if self.path.exists() or self.path.is_symlink():
                self._set_aside(str(e))
            return []
        try:
            data = json.loads(text)
            topics = data["published"]
            if not (isinstance(topics, list) and all(isinstance(t, str) and t for t in topics)):
                raise ValueError("published must be a list of topics")
        except (ValueError, KeyError, TypeError) as e:
            self._set_aside(f"{self.path}: not a discovery memory ({e})")
            return []
        return list(dict.fromkeys(topics))

    def _set_aside(self, why: str) -> None:
        log.warning(
            "discovery memory unreadable: set aside; an old discovery is not cleared",
            error=why,
        )
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_name(self.path.name + ".bad"))

    def begin(self, current: str | None) -> list[str]:
        """Record ``current`` (the topic about to be published; None: discovery is off)
        and return the topics to clear: every remembered one that is not ``current``."""
        retire = [t for t in self.topics if t != current]
        if current is not None and current not in self.topics:
            self.topics.append(current)
            self._write()
        return retire

    def retired(self, topic: str) -> None:
        """The broker acknowledged the empty retained message on ``topic``."""
        if topic in self.topics:
            self.topics.remove(topic)
            self._write()

    def _write(self) -> None:
        try:
            with text_output(self.path, make_parents=True) as out:
                json.dump({"published": self.topics}, out)
                out.write("\n")
        except FsqdError as e:
            # Without the file an old discovery may stay behind; the run itself is fine.
            log.warning("cannot write the discovery memory", error=str(e))

"""`fsqd check-config CFG`: the checks `fsqd run` makes before it starts, and a summary.

It imports neither the MQTT client nor onnxruntime: checking a file stays quick on a Pi.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fsqd.config.loader import Config, load_for_run

__all__ = ["CheckConfigOptions", "check_config", "describe"]


@dataclass(frozen=True)
class CheckConfigOptions:
    config: Path  # the TOML config file


def check_config(opts: CheckConfigOptions, out: TextIO | None = None) -> int:
    # The very checks `fsqd run` makes before it starts (without --stdout).
    print(describe(load_for_run(opts.config)), file=sys.stdout if out is None else out)
    return 0


def describe(config: Config) -> str:
    """A short human summary for ``fsqd check-config``."""
    card = config.model.package.card
    mqtt = config.mqtt
    ha = config.homeassistant
    lines = [
        f"{config.path}: ok (config hash {config.hash})",
        f"model      {config.model.package.label} ({config.model.package.path}), "
        f"backend {config.model.backend}",
        f"window     {card.window} samples at {card.sample_rate_hz:g} Hz, "
        f"hop {config.window.hop or card.hop}{'' if config.window.hop else ' (card)'}, "
        f"at most {config.window.max_pending} pending",
        f"sensors    {len(config.sensors)} table(s)",
        "mqtt       "
        + (
            "none: codes as JSON lines on stdout"
            if mqtt is None
            else f"{mqtt.host}:{mqtt.port}{' TLS' if mqtt.tls else ''}, "
            f"topics {mqtt.base_topic}/..."
        ),
        f"discovery  {'on' if ha.enabled else 'off'} ({ha.prefix})",
        f"service    node {config.service.node_id}, state {config.service.state_dir}, "
        f"without broker: {config.service.without_broker}",
        _behaviour_line(config),
        f"stats      every {config.stats.interval_s:g} s; logging "
        f"{config.logging.format}/{config.logging.level}",
    ]
    return "\n".join(lines)


def _behaviour_line(config: Config) -> str:
    b, card = config.behaviour, config.model.package.card
    if card.head is None:
        return "behaviour  none: the model has no head"
    cal = card.calibration
    how = (
        f"explicit-duration HMM (the card's semi-Markov model), lag {b.lag_s:g} s"
        if cal is not None and cal.semi_markov is not None
        else f"argmax with a {b.min_dwell_s:g} s minimum dwell (no semi-Markov model in the card)"
    )
    return f"behaviour  {how}; state republished when confidence moves {b.confidence_step:g}"

"""The model card (``model.json``): everything the daemon must not guess about a model.

A card is a frozen dataclass read from and written to JSON. Reading checks the card
against itself (levels, channels, normalisation lengths, input shape vs layout); the
package loader then checks it against the real ONNX files.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fsqd.errors import ConfigError, NoInputError
from fsqd.model.calibration import Calibration, calibration_from_dict, validate_calibration
from fsqd.safefile import CONFIG_MAX, read_text
from fsqd.units import Channel

CARD_FORMAT = "fsqd-model/1"
Stage = Literal["projection", "bounded"]
STAGES: tuple[Stage, ...] = ("projection", "bounded")
# Axis letters of the encoder input: batch, channel, device, time.
LAYOUT_AXES = frozenset("NCDT")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FLAT_LIST = re.compile(r"\[[^\[\]{}]*\]")


@dataclass(frozen=True)
class InputSpec:
    name: str
    layout: str  # e.g. "NCDT"; D may be omitted when the model has one device
    shape: tuple[int | None, ...]  # batch axis: None when dynamic, B when fixed at B


@dataclass(frozen=True)
class OutputSpec:
    name: str
    stage: Stage
    width: int


@dataclass(frozen=True)
class HeadSpec:
    file: str
    input: str
    output: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class GraphCheckRecord:
    """A graph check that passed at import: ``encoder.onnx`` with this sha256 ends as the card
    says (output, stage, levels). ``fsqd run`` trusts it instead of loading the graph with
    ``onnx`` again, while the file and those card fields are unchanged."""

    encoder_sha256: str
    output: str
    stage: Stage
    levels: tuple[int, ...]

    def vouches_for(self, card: ModelCard, encoder_sha256: str) -> bool:
        return (
            self.encoder_sha256 == encoder_sha256
            and self.output == card.output.name
            and self.stage == card.output.stage
            and self.levels == card.levels
        )


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    sample_rate_hz: float
    window: int
    hop: int
    devices: int
    channels: tuple[Channel, ...]
    input: InputSpec
    output: OutputSpec
    levels: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    encoder_onnx: str = "encoder.onnx"
    encoder_hef: str | None = None
    head: HeadSpec | None = None
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    graph_check: GraphCheckRecord | None = None  # None: the card predates the record
    calibration: Calibration | None = None  # written by ``fsqd model calibrate``

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived facts --

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def stream_width(self) -> int:
        """Columns of the sample stream: channels x devices, device-major."""
        return len(self.channels) * self.devices

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def stream_mean_std(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Normalisation statistics expanded to the device-major sample stream."""
        reps = self.stream_width // len(self.mean)
        mean = np.tile(np.asarray(self.mean, np.float32), reps)
        std = np.tile(np.asarray(self.std, np.float32), reps)
        return mean, std

    # -- JSON --

    def to_json(self) -> str:
        d = {"format": CARD_FORMAT, **asdict(self)}
        text = json.dumps(d, indent=2)
        # Keep flat lists (levels, shape, mean, labels) on one line so the card reads easily.
        return _FLAT_LIST.sub(_one_line, text) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        fmt = d.get("format")
        if fmt != CARD_FORMAT:
            raise ConfigError(f"model card format is {fmt!r}, expected {CARD_FORMAT!r}")
        try:
            head = d.get("head")
            inp = d["input"]
            check = d.get("graph_check")
            cal = d.get("calibration")
            return cls(
                name=str(d["name"]),
                version=str(d["version"]),
                sample_rate_hz=float(d["sample_rate_hz"]),
                window=int(d["window"]),
                hop=int(d["hop"]),
                devices=int(d["devices"]),
                channels=tuple(Channel(str(c["name"]), str(c["unit"])) for c in d["channels"]),
                input=InputSpec(
                    name=str(inp["name"]),
                    layout=str(inp["layout"]),
                    shape=tuple(None if s is None else int(s) for s in inp["shape"]),
                ),
                output=OutputSpec(**d["output"]),
                levels=tuple(int(v) for v in d["levels"]),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                encoder_onnx=str(d.get("encoder_onnx", "encoder.onnx")),
                encoder_hef=d.get("encoder_hef"),
                head=None
                if head is None
                else HeadSpec(
                    file=str(head["file"]),
                    input=str(head["input"]),
                    output=str(head["output"]),
                    labels=tuple(str(s) for s in head["labels"]),
                ),
                description=str(d.get("description", "")),
                provenance=dict(d.get("provenance", {})),
                graph_check=None
                if check is None
                else GraphCheckRecord(
                    encoder_sha256=str(check["encoder_sha256"]),
                    output=str(check["output"]),
                    stage=check["stage"],
                    levels=tuple(int(v) for v in check["levels"]),
                ),
                calibration=None if cal is None else calibration_from_dict(cal),
            )
        except KeyError as e:
            raise ConfigError(f"model card lacks the field {e.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"model card has a malformed field: {e}") from None

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        if not path.exists():
            raise NoInputError(f"{path}: no model card")
        text = read_text(path, limit=CONFIG_MAX, what="a model card")
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: model card is not valid JSON: {e.msg}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: model card must be a JSON object")
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def _one_line(m: re.Match[str]) -> str:
    inner = " ".join(m.group(0)[1:-1].split())
    return f"[{inner}]"


def expected_input_shape(card: ModelCard) -> tuple[int, ...]:
    """The encoder input shape without the batch axis, in the card's layout."""
    size = {"C": len(card.channels), "D": card.devices, "T": card.window}
    return tuple(size[a] for a in card.input.layout[1:])


def _validate(card: ModelCard) -> None:
    if card.window < 2 or card.hop < 1:
        raise ConfigError(
            f"window must be >= 2 and hop >= 1, got window {card.window}, hop {card.hop}"
        )
    if not math.isfinite(card.sample_rate_hz) or card.sample_rate_hz <= 0:
        raise ConfigError(f"sample_rate_hz must be a positive number, got {card.sample_rate_hz}")
    if card.devices < 1:
        raise ConfigError(f"devices must be >= 1, got {card.devices}")
    if not card.channels:
        raise ConfigError("the card lists no channels")
    names = card.channel_names
    if len(set(names)) != len(names):
        raise ConfigError(f"channel names repeat: {list(names)}")
    if not card.levels or any(v < 3 for v in card.levels):
        raise ConfigError(f"FSQ levels must all be >= 3, got {list(card.levels)}")
    if card.output.stage not in STAGES:
        raise ConfigError(f"output stage must be one of {STAGES}, got {card.output.stage!r}")
    if card.output.width != len(card.levels):
        raise ConfigError(
            f"encoder output width {card.output.width} does not match "
            f"{len(card.levels)} FSQ levels {list(card.levels)}"
        )
    n = len(card.channels)
    for what, vals in (("mean", card.mean), ("std", card.std)):
        if len(vals) not in (n, n * card.devices):
            raise ConfigError(
                f"normalisation {what} has {len(vals)} values, expected {n} (per channel) "
                f"or {n * card.devices} (per channel and device)"
            )
        if not all(math.isfinite(v) for v in vals):
            raise ConfigError(f"normalisation {what} holds a non-finite value")
    if len(card.mean) != len(card.std):
        raise ConfigError(f"normalisation mean has {len(card.mean)} values but std {len(card.std)}")
    if any(v <= 0 for v in card.std):
        raise ConfigError(f"normalisation std must be > 0, got {list(card.std)}")
    _validate_layout(card)
    check = card.graph_check
    if check is not None:
        if not _SHA256.fullmatch(check.encoder_sha256):
            raise ConfigError(
                f"graph_check.encoder_sha256 must be 64 hex digits, got {check.encoder_sha256!r}"
            )
        if check.stage not in STAGES:
            raise ConfigError(f"graph_check.stage must be one of {STAGES}, got {check.stage!r}")
    if card.head is not None and not card.head.labels:
        raise ConfigError("the head lists no labels")
    if card.calibration is not None:
        labels = None if card.head is None else card.head.labels
        validate_calibration(card.calibration, labels, card.codebook_size)


def _validate_layout(card: ModelCard) -> None:
    layout = card.input.layout
    axes = set(layout)
    ok = (
        len(axes) == len(layout)
        and axes <= LAYOUT_AXES
        and layout.startswith("N")
        and {"C", "T"} <= axes
        and ("D" in axes or card.devices == 1)
    )
    if not ok:
        raise ConfigError(
            f"input layout {layout!r} must start with N and name the axes C and T once each "
            "(and D unless the model has one device), e.g. NCDT"
        )
    want = expected_input_shape(card)
    got = tuple(card.input.shape[1:])
    if len(card.input.shape) != len(layout) or got != want:
        raise ConfigError(
            f"input shape {list(card.input.shape)} does not match layout {layout} with "
            f"{len(card.channels)} channels, {card.devices} devices and window {card.window} "
            f"(expected [N, {', '.join(map(str, want))}])"
        )

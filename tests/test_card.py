"""The model card: self-consistency checks, JSON round trip, and the input layout."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from fsqd.errors import ConfigError, NoInputError
from fsqd.model.card import InputSpec, ModelCard, OutputSpec
from fsqd.model.layout import InputLayout
from fsqd.model.package import ModelPackage, load_package
from fsqd.units import Channel

NAMES = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")


def card(**changes: object) -> ModelCard:
    base = ModelCard(
        name="m",
        version="1",
        sample_rate_hz=100.0,
        window=100,
        hop=50,
        devices=2,
        channels=tuple(Channel(n, "u") for n in NAMES),
        input=InputSpec("imu_data", "NCDT", (None, 9, 2, 100)),
        output=OutputSpec("b", "bounded", 5),
        levels=(8, 6, 5, 5, 4),
        mean=(0.0,) * 9,
        std=(1.0,) * 9,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_json_round_trip(tmp_path: Path) -> None:
    c = card(provenance={"source": "x.onnx"})
    path = tmp_path / "model.json"
    path.write_text(c.to_json())
    assert ModelCard.load(path) == c
    assert '"levels": [8, 6, 5, 5, 4]' in c.to_json()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"levels": (8, 8, 8, 8, 8, 8, 8, 8)}, "width 5 does not match 8 FSQ levels"),
        ({"levels": (2, 5, 5, 5, 5)}, "levels must all be >= 3"),
        ({"mean": (0.0,) * 4}, "mean has 4 values, expected 9"),
        ({"std": (1.0,) * 8 + (0.0,)}, "std must be > 0"),
        ({"input": InputSpec("i", "NCDT", (None, 9, 1, 100))}, "does not match layout NCDT"),
        ({"input": InputSpec("i", "NCXT", (None, 9, 2, 100))}, "layout 'NCXT'"),
        ({"output": OutputSpec("b", "rounded", 5)}, "stage must be one of"),  # type: ignore[arg-type]
        ({"hop": 0}, "hop >= 1"),
    ],
)
def test_inconsistent_cards_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        card(**changes)


def test_per_device_normalisation_is_expanded_device_major() -> None:
    c = card(mean=tuple(float(i) for i in range(18)), std=(2.0,) * 18)
    mean, std = c.stream_mean_std()
    assert mean.tolist() == list(range(18)) and std.shape == (18,)
    shared = card(mean=tuple(float(i) for i in range(9)))
    assert shared.stream_mean_std()[0].tolist() == list(range(9)) * 2


def test_layout_puts_channels_devices_and_time_where_the_card_says() -> None:
    c = card()
    n, t = 3, 100
    # value = 1000*device + 100*channel + time/1000, so every element says where it came from
    windows = np.zeros((n, t, 18), np.float32)
    for d in range(2):
        for ch in range(9):
            windows[:, :, d * 9 + ch] = 1000 * d + 100 * ch + np.arange(t) / 1000
    x = InputLayout(c)(windows)
    assert x.shape == (3, 9, 2, 100) and x.flags.c_contiguous
    assert x[1, 4, 1, 7] == np.float32(1000 + 400 + 0.007)
    one = card(devices=1, input=InputSpec("i", "NTC", (None, 100, 9)))
    y = InputLayout(one)(windows[:, :, :9])
    assert y.shape == (3, 100, 9) and y[0, 7, 4] == np.float32(400.007)


def test_broken_cards_give_one_line_errors(tmp_path: Path, pkg_d2: ModelPackage) -> None:
    with pytest.raises(NoInputError, match="no model card"):
        load_package(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "fsqd-model/1",\n "name": }')
    with pytest.raises(ConfigError, match=r"model.json:2: model card is not valid JSON"):
        load_package(tmp_path)
    d = json.loads((pkg_d2.path / "model.json").read_text())
    del d["window"]
    (tmp_path / "model.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="lacks the field 'window'"):
        load_package(tmp_path)

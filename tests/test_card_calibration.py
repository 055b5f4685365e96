"""The card's calibration section: round trip through JSON and the checks against the card."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from fsqd.errors import ConfigError
from fsqd.model.calibration import (
    Calibration,
    CodeReference,
    ConformalSpec,
    DurationModel,
    SemiMarkovSpec,
)
from fsqd.model.card import ModelCard

DEFAULT = Path(__file__).resolve().parents[1] / "fsqd" / "models" / "default" / "model.json"


def card() -> ModelCard:
    return ModelCard.load(DEFAULT)


def full(k: int = 5) -> Calibration:
    off = tuple(tuple(0.0 if i == j else 1 / (k - 1) for j in range(k)) for i in range(k))
    return Calibration(
        temperature=1.4,
        conformal=ConformalSpec("aps", 0.9, 0.93, tuple(0.9 for _ in range(k))),
        semi_markov=SemiMarkovSpec(
            initial=(1 / k,) * k,
            transitions=off,
            durations=(DurationModel(0.5, (0.25, 0.5), 0.25, 3.0),) * k,
            prior=(1 / k,) * k,
        ),
        code_reference=CodeReference((3, 17, 4000), (5, 1, 9), 2.6, 0.25, 300),
        bias=(0.2, -0.1, 0.0, -0.3, 0.2),
        metrics={"ece_after": 0.02},
        provenance={"windows": 1234},
    )


def test_round_trip_keeps_every_field() -> None:
    c = dataclasses.replace(card(), calibration=full())
    back = ModelCard.from_dict(json.loads(c.to_json()))
    assert back == c
    assert back.calibration is not None and back.calibration.semi_markov is not None
    assert back.calibration.semi_markov.durations[0].mean_s == pytest.approx(
        0.25 * 0.25 + 0.5 * 0.75 + 0.25 * (1.0 + 3.0)
    )


def test_a_card_without_the_section_reads_as_before() -> None:
    d = json.loads(DEFAULT.read_text())
    d.pop("calibration", None)
    plain = ModelCard.from_dict(d)
    assert plain.calibration is None
    assert plain == dataclasses.replace(card(), calibration=None)


def test_the_bundled_card_is_calibrated_and_checked() -> None:
    cal = card().calibration
    assert cal is not None and cal.conformal is not None and cal.code_reference is not None
    assert cal.conformal.method == "lac" and cal.conformal.coverage == 0.9
    assert 1.0 < cal.temperature < 3.0
    assert len(cal.provenance["data"]) == 40


def _broken(**change: Any) -> Calibration:
    return dataclasses.replace(full(), **change)


@pytest.mark.parametrize(
    ("cal", "message"),
    [
        (_broken(temperature=0.0), "temperature must be > 0"),
        (_broken(conformal=ConformalSpec("raps", 0.9, 0.5)), "method must be one of"),  # type: ignore[arg-type]
        (_broken(conformal=ConformalSpec("lac", 1.0, 0.5)), "coverage must be in (0, 1)"),
        (_broken(conformal=ConformalSpec("lac", 0.9, 0.5, (0.5,))), "1 values for 5 labels"),
        (
            _broken(semi_markov=dataclasses.replace(full().semi_markov, prior=(0.5,) * 5)),  # type: ignore[type-var]
            "prior must be non-negative and sum to 1",
        ),
        (
            _broken(
                semi_markov=dataclasses.replace(  # type: ignore[type-var]
                    full().semi_markov, transitions=((0.2,) * 5,) * 5
                )
            ),
            "transitions[0][0] must be 0",
        ),
        (
            _broken(
                semi_markov=dataclasses.replace(  # type: ignore[type-var]
                    full().semi_markov, durations=(DurationModel(0.5, (0.5,), 0.2, 3.0),) * 5
                )
            ),
            "durations[0] must have",
        ),
        (_broken(bias=(0.1, 0.2)), "bias must be 5 finite numbers"),
        (_broken(bias=(0.0, 0.0, float("nan"), 0.0, 0.0)), "bias must be 5 finite numbers"),
        (_broken(code_reference=CodeReference((5, 3), (1, 1), 2.0, 0.2, 10)), "sorted, unique"),
        (_broken(code_reference=CodeReference((4800,), (1,), 1.0, 0.2, 10)), "[0, 4800)"),
        (_broken(code_reference=CodeReference((1,), (0,), 1.0, 0.2, 10)), "must be positive"),
    ],
)
def test_inconsistent_sections_are_refused(cal: Calibration, message: str) -> None:
    with pytest.raises(ConfigError, match="calibration") as e:
        dataclasses.replace(card(), calibration=cal)
    assert message in str(e.value)


def test_sets_or_states_need_a_head() -> None:
    with pytest.raises(ConfigError, match="no head"):
        dataclasses.replace(card(), head=None, calibration=full())
    # A temperature and a code reference alone do not.
    alone = Calibration(temperature=2.0, code_reference=full().code_reference)
    assert dataclasses.replace(card(), head=None, calibration=alone).calibration == alone


def test_a_malformed_section_is_one_config_error() -> None:
    d = json.loads(card().to_json())
    d["calibration"] = {"conformal": {"method": "lac"}}
    with pytest.raises(ConfigError, match="lacks the field 'coverage'"):
        ModelCard.from_dict(d)
    d["calibration"] = [1, 2]
    with pytest.raises(ConfigError, match="calibration must be a JSON object"):
        ModelCard.from_dict(d)

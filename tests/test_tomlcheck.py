"""The TOML table reader: types, bounds, unknown keys with the nearest valid name."""

from __future__ import annotations

import pytest

from fsqd.config.tomlcheck import Table
from fsqd.errors import ConfigError


def test_typed_values_and_defaults() -> None:
    t = Table({"port": 1883, "rate": 100, "host": "h", "tls": True}, "f.toml [mqtt]")
    assert t.integer("port", low=1, high=65535) == 1883
    assert t.number("rate") == 100.0 and isinstance(t.number("rate"), float)
    assert t.get("host", str) == "h"
    assert t.get("tls", bool) is True
    assert t.get("keepalive", int, 60) == 60
    assert t.optional("ca_file", str) is None
    t.done()


@pytest.mark.parametrize(
    ("data", "read", "message"),
    [
        (
            {"port": "1883"},
            lambda t: t.integer("port"),
            "f [m] port: expected an integer, got '1883' (str)",
        ),
        (
            {"port": True},
            lambda t: t.integer("port"),
            "f [m] port: expected an integer, got True (bool)",
        ),
        (
            {"port": 0},
            lambda t: t.integer("port", low=1, high=65535),
            "f [m] port: must be in 1..65535, got 0",
        ),
        ({"r": 0}, lambda t: t.number("r", low=0, low_open=True), "f [m] r: must be > 0, got 0"),
        ({"r": float("nan")}, lambda t: t.number("r"), "f [m] r: must be finite, got nan"),
        ({}, lambda t: t.get("host", str), "f [m] host: missing (required)"),
        (
            {"b": "onxx"},
            lambda t: t.choice("b", ("auto", "onnx")),
            "f [m] b: must be one of auto, onnx, got 'onxx' (did you mean 'onnx'?)",
        ),
        ({"s": 3}, lambda t: t.table("s"), "f [m] s: expected a table, got 3 (int)"),
    ],
)
def test_each_problem_is_one_line(data: dict[str, object], read, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as e:
        read(Table(data, "f [m]"))
    assert str(e.value) == message


def test_unknown_key_names_the_nearest() -> None:
    t = Table({"adress": 0x6A, "name": "collar"}, "fsqd.toml [[sensor]] #1")
    t.get("name", str)
    t.get("address", int, 0x6A)
    with pytest.raises(
        ConfigError,
        match=r"^fsqd.toml \[\[sensor\]\] #1 adress: unknown key \(did you mean 'address'\?\)$",
    ):
        t.done()


def test_nested_tables_carry_their_place() -> None:
    root = Table({"mqtt": {"tls": {"ca": 1}}, "sensor": [{"name": "a"}, {"nme": "b"}]}, "f.toml")
    tls = root.table("mqtt").table("tls")
    with pytest.raises(ConfigError, match=r"^f.toml \[mqtt\] \[tls\] ca: expected a string"):
        tls.get("ca", str)
    sensors = root.tables("sensor")
    sensors[0].get("name", str)
    sensors[0].done()
    sensors[1].get("name", str, "")
    with pytest.raises(ConfigError, match=r"#2 nme: unknown key \(did you mean 'name'\?\)"):
        sensors[1].done()


def test_a_misspelt_required_key_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        Table({"hots": "broker"}, "f.toml [mqtt]").get("host", str)
    assert str(e.value) == "f.toml [mqtt] host: missing (required; is 'hots' a typo?)"

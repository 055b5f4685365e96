"""configs/fsqd.toml documents every key the config parser accepts; both shipped files pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsqd.cli import main
from fsqd.config import load_config
from fsqd.config.tomlcheck import Table

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "fsqd.toml"
DEMO = ROOT / "configs" / "demo.toml"

# A header, live or commented out: [mqtt], [[sensor]], # [sensor.emulated]
_HEADER = re.compile(r"^#?\s*\[\[?([A-Za-z0-9_.]+)\]\]?")
_KEY = re.compile(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


def documented_keys(text: str) -> dict[str, set[str]]:
    """Section -> keys shown in the file, commented out or not."""
    keys: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if m := _HEADER.match(line):
            section = m.group(1)
            keys.setdefault(section, set())
        elif m := _KEY.match(line):
            keys.setdefault(section, set()).add(m.group(1))
    return keys


def _section(where: str) -> str:
    """A Table's place ('fsqd.toml [[sensor]] #1 [emulated]') -> 'sensor.emulated'."""
    names = re.findall(r"\[\[?([A-Za-z0-9_]+)\]\]?", where)
    return ".".join(names)


def accepted_keys(monkeypatch: pytest.MonkeyPatch, configs: list[Path]) -> dict[str, set[str]]:
    """Section -> keys the parser takes, recorded from Table.done() while loading ``configs``."""
    seen: dict[str, set[str]] = {}
    done = Table.done

    def recording(self: Table) -> None:
        seen.setdefault(_section(self.where), set()).update(self._taken)
        done(self)

    monkeypatch.setattr(Table, "done", recording)
    for cfg in configs:
        load_config(cfg)
    return seen


def variants(tmp_path: Path) -> list[Path]:
    """The reference as shipped, the demo (emulated sensor), and TLS + credentials."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    tls = tmp_path / "tls.toml"
    tls.write_text(
        REFERENCE.read_text().replace(
            'host = "mqtt.local"\n',
            f'host = "mqtt.local"\ntls = true\nusername = "fsqd"\npassword_file = "{secret}"\n',
        )
    )
    return [REFERENCE, DEMO, tls]


def test_the_reference_documents_every_key_the_parser_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = accepted_keys(monkeypatch, variants(tmp_path))
    documented = documented_keys(REFERENCE.read_text())
    assert {"model", "hailo", "window", "mqtt", "service", "sensor", "sensor.emulated"} <= set(
        accepted
    )
    missing = {
        section: sorted(
            k
            for k in keys - documented.get(section, set())
            if f"{section}.{k}" not in documented  # a sub-table, shown by its header
        )
        for section, keys in accepted.items()
        if section  # the root's keys are the tables themselves
    }
    missing = {s: k for s, k in missing.items() if k}
    assert not missing, f"configs/fsqd.toml does not show: {missing}"
    # And every table the parser reads has its header in the file.
    assert accepted[""] <= set(documented), accepted[""] - set(documented)


def test_documented_keys_finds_commented_and_live_keys() -> None:
    text = "[a]\nx = 1\n# y = 2   # note\n#   [a.b]\n# z = 3\n[[c]]\nw = 1\n"
    assert documented_keys(text) == {"a": {"x", "y"}, "a.b": {"z"}, "c": {"w"}}


@pytest.mark.parametrize("cfg", [REFERENCE, DEMO])
def test_shipped_configs_pass_check_config(
    cfg: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The state directory as systemd's StateDirectory= hands it over (check-config probes it).
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert main(["check-config", str(cfg)]) == 0
    assert f"{cfg}: ok" in capsys.readouterr().out

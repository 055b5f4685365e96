"""`fsqd check-config` passes exactly what `fsqd run` accepts: for each problem both say
the same one line and exit 78, before anything starts."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunCli
from mosquitto import TlsFiles, free_port
from smallfs import tmpfs

from fsqd.config import load_for_run
from fsqd.errors import EX_CONFIG

ROOT = Path(__file__).resolve().parents[1]
SENSOR = '[[sensor]]\nname = "imu0"\ndriver = "lsm6dsox"\nbus = "emulated"\n'
HOST_64 = "a" * 64 + ".example"
HOST_300 = ".".join(["b" * 60] * 5)


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Path]:
    """A config with a broker (nobody listens) and a state directory in tmp; ``mqtt`` and
    ``service`` lines replace or add keys, ``extra`` is appended."""
    port = free_port()

    def build(
        *, mqtt: str = "", service: str = "", extra: str = "", state: str | None = None
    ) -> Path:
        state_line = f'state_dir = "{state if state is not None else tmp_path / "state"}"'
        host = "" if "host =" in mqtt else 'host = "127.0.0.1"\n'
        text = (
            f"[service]\n{state_line}\n{service}\n"
            f"[mqtt]\n{host}port = {port}\n{mqtt}\n{extra}\n{SENSOR}"
        )
        p = tmp_path / "fsqd.toml"
        p.write_text(text)
        return p

    return build


def same_refusal(run_cli: RunCli, cfg: Path, reason: str) -> str:
    """check-config and run refuse ``cfg`` with one identical line naming ``reason``."""
    check = run_cli("check-config", cfg)
    run = run_cli("run", "--config", cfg, "--duration", "1s")
    assert check == run, f"check-config {check} but run {run}"
    code, out, err = check
    assert (code, out) == (EX_CONFIG, ""), err
    assert err.startswith("fsqd: error: ") and err.count("\n") == 1, err
    assert reason in err, err
    assert "Traceback" not in err and "internal error" not in err
    return err


@pytest.mark.parametrize(
    ("mqtt", "reason"),
    [
        (f'host = "{HOST_64}"', "label over 63 bytes"),
        (f'host = "{HOST_300}"', "at most 253 characters, this is 304"),
        ('host = "broker.lan:1883"', "give the host name or address alone"),
        ('host = "mqtt://broker.lan"', "give the host name or address alone"),
        ('host = "-broker.lan"', "not a host name"),
        ('host = "bad host"', "not a host name"),
        (f'topic_prefix = "{"p" * 70_000}"', "MQTT allows 65535"),
    ],
)
def test_broker_address_and_topics(
    mqtt: str, reason: str, run_cli: RunCli, make: Callable[..., Path]
) -> None:
    same_refusal(run_cli, make(mqtt=mqtt), reason)


def test_valid_hosts_pass(make: Callable[..., Path]) -> None:
    for host in ("broker.lan", "mqtt_1.local.", "127.0.0.1", "::1", "bücher.example", "a" * 63):
        assert load_for_run(make(mqtt=f'host = "{host}"')).mqtt is not None


def test_home_assistant_discovery_topic_length(run_cli: RunCli, make: Callable[..., Path]) -> None:
    cfg = make(extra=f'[homeassistant]\nprefix = "{"h" * 65_520}"')
    same_refusal(run_cli, cfg, "[homeassistant] prefix: makes the topic")
    cfg = make(extra=f'[homeassistant]\nenabled = false\nprefix = "{"h" * 65_520}"')
    assert load_for_run(cfg).homeassistant.enabled is False  # nothing is published there


def test_nesting_depth_is_one_line_not_a_recursion_error(
    run_cli: RunCli, make: Callable[..., Path]
) -> None:
    deep = "x = " + "[" * 5000 + "]" * 5000
    same_refusal(run_cli, make(extra=deep), "nested more than 32 levels deep")
    parseable = "x = " + "[" * 40 + "]" * 40  # tomllib reads it; fsqd still refuses it
    same_refusal(run_cli, make(extra=parseable), "nested more than 32 levels deep")


def test_a_nul_in_a_path(run_cli: RunCli, make: Callable[..., Path]) -> None:
    same_refusal(run_cli, make(state="/var/lib/fsqd\\u0000x"), "state_dir: contains a NUL")
    same_refusal(run_cli, make(mqtt='ca_file = "ca\\u0000.pem"'), "ca_file: contains a NUL")


def test_the_state_directory(run_cli: RunCli, make: Callable[..., Path], tmp_path: Path) -> None:
    same_refusal(run_cli, make(state="/proc"), "/proc: cannot create files in it")
    same_refusal(run_cli, make(state="/proc/fsqd"), "/proc/fsqd: cannot create it")
    same_refusal(run_cli, make(state="/dev/null"), "is a character device, not a directory")
    (tmp_path / "file").write_text("")
    same_refusal(run_cli, make(state=str(tmp_path / "file")), "is a regular file")
    # Missing: created, as the spool would create it.
    state = tmp_path / "new" / "state"
    assert load_for_run(make(state=str(state))) and state.is_dir()
    # Without a broker nothing is kept there: no directory needed, none made.
    cfg = make(state=str(tmp_path / "unused"))
    cfg.write_text(cfg.read_text().replace("[mqtt]", "[not_mqtt]").split("[not_mqtt]")[0] + SENSOR)
    load_for_run(cfg)
    assert not (tmp_path / "unused").exists()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    # root writes through mode bits: a read-only mount is what stops it.
    with tmpfs(d, "ro,size=64k"):
        yield d


def test_a_read_only_state_directory(
    run_cli: RunCli, make: Callable[..., Path], read_only_dir: Path
) -> None:
    why = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    same_refusal(run_cli, make(state=str(read_only_dir)), f"cannot create files in it: {why}")
    same_refusal(run_cli, make(state=str(read_only_dir / "sub")), f"cannot create it: {why}")


def test_tls_files_are_loaded_as_the_connection_loads_them(
    run_cli: RunCli, make: Callable[..., Path], tls_files: TlsFiles, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(os.urandom(2000))
    same_refusal(run_cli, make(mqtt=f'ca_file = "{garbage}"'), "ca_file: ")
    err = same_refusal(run_cli, make(mqtt=f'ca_file = "{garbage}"'), "no certificate")
    assert str(garbage) in err
    pair = f'cert_file = "{tls_files.client_cert}"\nkey_file = "{{key}}"'
    same_refusal(
        run_cli,
        make(mqtt=f'cert_file = "{garbage}"\nkey_file = "{tls_files.client_key}"'),
        "cert_file: ",
    )
    same_refusal(run_cli, make(mqtt=pair.format(key=garbage)), "key_file: ")
    # A key for another certificate.
    same_refusal(run_cli, make(mqtt=pair.format(key=tls_files.server_key)), "key_file: ")
    if shutil.which("openssl"):
        enc = tmp_path / "enc.key"
        subprocess.run(
            ["openssl", "pkey", "-in", tls_files.client_key, "-aes256", "-passout", "pass:x",
             "-out", enc],
            check=True, capture_output=True,
        )  # fmt: skip
        same_refusal(run_cli, make(mqtt=pair.format(key=enc)), "the key is encrypted")
    good = f'ca_file = "{tls_files.ca}"\n' + pair.format(key=tls_files.client_key)
    assert load_for_run(make(mqtt=good)).mqtt is not None


def test_a_byte_order_mark_is_accepted(run_cli: RunCli, make: Callable[..., Path]) -> None:
    cfg = make()
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    code, out, err = run_cli("check-config", cfg)
    assert code == 0 and ": ok (config hash" in out, err


def test_oversized_config_and_credentials(
    run_cli: RunCli, make: Callable[..., Path], tmp_path: Path
) -> None:
    cfg = make(extra="# " + "x" * (1 << 20))
    same_refusal(run_cli, cfg, "is too large for a config file (at most 1 MiB)")
    big = tmp_path / "password"
    big.write_text("p" * 70_000)
    cfg = make(mqtt=f'username = "u"\npassword_file = "{big}"')
    same_refusal(run_cli, cfg, "is too large for a credential file")


def _subprocess(*args: str | Path, timeout_s: float = 30) -> tuple[int, str]:
    """fsqd in a child with 1 GiB of address space: /dev/zero read whole fails fast
    instead of eating the machine; a FIFO read blocking is a timeout."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "fsqd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        preexec_fn=limit,
    )
    return p.returncode, p.stderr


@pytest.mark.parametrize("kind", ["zero", "fifo"])
def test_special_files_never_hang_or_grow(
    kind: str, make: Callable[..., Path], tmp_path: Path
) -> None:
    if kind == "zero":
        special, what = Path("/dev/zero"), "is a character device, not a regular file"
    else:
        special, what = tmp_path / "fifo", "is a FIFO, not a regular file"
        os.mkfifo(special)  # no writer: a reader that opens it blocking waits for ever
    t0 = time.monotonic()
    cases = [
        (("check-config", special), f"{special}: {what}"),
        (("run", "--config", special), f"{special}: {what}"),
        (("check-config", make(mqtt=f'username = "u"\npassword_file = "{special}"')), what),
        (("check-config", make(mqtt=f'ca_file = "{special}"')), what),
    ]
    for args, reason in cases:
        code, err = _subprocess(*args)
        assert code == EX_CONFIG and reason in err and err.count("\n") == 1, (args, err)
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("kind", ["fifo", "zero", "missing"])
def test_every_command_that_reads_a_config_refuses_a_bad_path_alike(
    kind: str, tmp_path: Path
) -> None:
    """run, check-config, collect, tail and record say the same line and exit 78 for a
    config path that is not a regular file; none waits for a FIFO's writer."""
    if kind == "zero":
        cfg, what = Path("/dev/zero"), "is a character device, not a regular file"
    elif kind == "fifo":
        cfg, what = tmp_path / "fsqd.toml", "is a FIFO, not a regular file (a config file)"
        os.mkfifo(cfg)
    else:
        cfg, what = tmp_path / "fsqd.toml", "no such config file"
    out = tmp_path / "rec.csv"
    commands = [
        ("check-config", cfg),
        ("run", "--config", cfg),
        ("collect", "--config", cfg),
        ("tail", "--config", cfg),
        ("record", "--config", cfg, "--out", out, "--duration", "1s"),
    ]
    errors = set()
    for args in commands:
        code, err = _subprocess(*args)  # times out (fails) if a read blocks on the FIFO
        assert code == EX_CONFIG, (args, code, err)
        assert err.count("\n") == 1 and f"{cfg}: {what}" in err, (args, err)
        errors.add(err)
    assert len(errors) == 1, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind != "fifo" else [cfg.name])


# Loaded by `fsqd run` (the MQTT sink, the CPU encoder), never by checking a file.
HEAVY = ("aiomqtt", "paho", "onnxruntime")


def test_check_config_imports_neither_the_mqtt_client_nor_onnxruntime(
    make: Callable[..., Path], tls_files: TlsFiles
) -> None:
    # Every table, TLS files and discovery included: each is checked, none loads a client.
    cfg = make(
        mqtt=f'ca_file = "{tls_files.ca}"\ncert_file = "{tls_files.client_cert}"\n'
        f'key_file = "{tls_files.client_key}"',
        extra="[model]\nbackend = 'auto'\n[hailo]\ntimeout_ms = 500\n[window]\nhop = 10\n"
        "[homeassistant]\nprefix = 'ha'\n[stats]\ninterval_s = 5\n[logging]\nlevel = 'debug'\n",
    )
    probe = (
        "import sys\n"
        "from fsqd.cli import main\n"
        "code = main(['check-config', sys.argv[1]])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(cfg)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    summary, loaded = done.stdout.rsplit("\n", 2)[:2]
    assert "TLS" in summary and "discovery  on (ha)" in done.stdout
    assert "fsqd" in loaded.split()
    assert not [m for m in HEAVY if m in loaded.split()], loaded

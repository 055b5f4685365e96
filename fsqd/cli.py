"""The ``fsqd`` command line: parse arguments, call one function per command, map errors.

Every command returns an exit code. Errors fsqd raises on purpose print one line and
exit with their sysexits code; anything else is a bug and says so (``--debug`` or
FSQD_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from fsqd import __version__
from fsqd.console import note
from fsqd.errors import EX_SOFTWARE, EX_USAGE, FsqdError, UsageError
from fsqd.sinks.jsonl import Output

Command = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def _comma_list(cast: Callable[[str], T], what: str) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for 'a,b,c' lists of ``cast`` values."""

    def parse(text: str) -> tuple[T, ...]:
        try:
            return tuple(cast(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None

    return parse


_floats = _comma_list(float, "numbers")
_ints = _comma_list(int, "integers")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(","))
    if any(not n for n in names):
        raise argparse.ArgumentTypeError(f"empty name in {text!r}")
    return names


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


# -- commands --


def cmd_encode(args: argparse.Namespace) -> int:
    from fsqd.commands.encode import encode_file

    with Output(args.out) as out:
        n = encode_file(args.model, args.windows, out, batch=args.batch, backend=args.backend)
    note(f"encoded {n} windows")
    return 0


def cmd_model_import(args: argparse.Namespace) -> int:
    from fsqd.model.importer import ImportOptions, import_model

    mean, std = args.mean, args.std
    if args.norm is not None:
        mean, std = _read_norm(args.norm)
    if (mean is None) != (std is None):
        raise UsageError("--mean and --std go together")
    opts = ImportOptions(
        levels=args.levels,
        mean=mean,
        std=std,
        labels=args.labels,
        name=args.name,
        version=args.model_version,
        sample_rate_hz=args.rate,
        hop=args.hop,
        channels=args.channels,
        units=args.units,
        head_output=args.head_output,
        layout=args.layout,
        description=args.description or "",
        provenance={"trained_on": args.trained_on} if args.trained_on else {},
        overwrite=args.force,
    )
    report = import_model(args.full, args.out, opts)
    if mean is None:
        note("no --mean/--std given: the card records identity normalisation (mean 0, std 1)")
    card = report.card
    head = f"head with {len(card.head.labels)} classes" if card.head else "no head"
    print(
        f"wrote {args.out}: {card.name}@{card.version}, levels {list(card.levels)} "
        f"({card.codebook_size} codes), input {card.input.name} {list(card.input.shape)} "
        f"{card.input.layout}, {head}"
    )
    found = f"FSQ bound ends at {report.site.end_node}, Round {report.site.round_node}"
    if card.head is not None:
        found += f"; head {card.head.input} -> {card.head.output}"
    if report.index_outputs:
        found += f"; FSQ indices {', '.join(report.index_outputs)}"
    if report.other_outputs:
        found += f"; not kept: {', '.join(report.other_outputs)}"
    print(f"found {found}")
    check = f"checked on {report.verified_windows} windows: host FSQ codes identical"
    if report.index_outputs:
        check += ", indices identical"
    if report.max_logit_diff is not None:
        check += f", max |logit difference| {report.max_logit_diff:.2g}"
    print(check)
    print("Hailo-8 (Dataflow Compiler, x86 host), parse up to the node that feeds Round:")
    print(f"  {report.hailo_parser_command}")
    return 0


def _read_norm(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from fsqd.errors import ConfigError
    from fsqd.safefile import CONFIG_MAX, read_text

    text = read_text(path, limit=CONFIG_MAX, what="a JSON normalisation file")
    try:
        d = json.loads(text)
        return tuple(map(float, d["mean"])), tuple(map(float, d["std"]))
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise ConfigError(f'{path}: expected JSON {{"mean": [...], "std": [...]}} ({e})') from None


def cmd_model_inspect(args: argparse.Namespace) -> int:
    from fsqd.model.inspect import import_preview, inspect_package, onnx_summary
    from fsqd.model.package import load_package

    target: Path | None = args.package
    info: dict[str, Any]
    if target is not None and target.suffix == ".onnx" and target.is_file():
        info = {"files": {"model": onnx_summary(target)}, "import": import_preview(target)}
    else:
        info = inspect_package(load_package(target))
    if args.json:
        print(json.dumps(info, default=_jsonable, indent=2))
    else:
        print(_render_inspect(info))
    return 0


def _jsonable(o: object) -> object:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)  # type: ignore[call-overload]
    raise TypeError(type(o).__name__)


def _render_inspect(info: dict[str, Any]) -> str:
    lines: list[str] = []
    card = info.get("card")
    if card is not None:
        lines += [
            f"model      {info['model']}  ({info['package']})",
            f"about      {card.description or '-'}",
            f"stream     {card.sample_rate_hz:g} Hz, window {card.window}, hop {card.hop}, "
            f"{card.devices} device(s)",
            "channels   " + ", ".join(f"{c.name} [{c.unit}]" for c in card.channels),
            f"normalise  mean [{', '.join(f'{v:.5g}' for v in card.mean)}]",
            f"           std  [{', '.join(f'{v:.5g}' for v in card.std)}]",
            f"input      {card.input.name} {list(card.input.shape)} layout {card.input.layout}",
            f"output     {card.output.name} ({card.output.stage} stage, width {card.output.width})",
            f"fsq        levels {list(card.levels)}, {card.codebook_size} codes",
            "head       " + (", ".join(card.head.labels) if card.head else "none"),
        ]
        lines += _render_graph(info["graph"])
        for k, v in card.provenance.items():
            lines.append(f"provenance {k}: {v}")
        if info.get("hef"):
            lines.append(f"hef        {info['hef']['file']} (present: {info['hef']['present']})")
    if "import" in info:
        lines += _render_preview(info["import"])
    for role, f in info["files"].items():
        lines.append(f"[{role}] {f['file']} (opset {f['opset']})")
        for io in ("inputs", "outputs"):
            for t in f[io]:
                lines.append(f"  {io[:-1]:<6} {t['name']} {t['shape']} {t['type']}")
        ops = ", ".join(f"{k} x{v}" for k, v in f["operators"].items())
        lines.append(f"  ops    {ops}")
        blockers = f["hailo8_unsupported"]
        if blockers:
            for op, why in blockers.items():
                lines.append(f"  hailo8 cannot run {op}: {why}")
        else:
            lines.append("  hailo8 no unsupported operators")
    return "\n".join(lines)


def _render_preview(p: dict[str, Any]) -> list[str]:
    """What `fsqd model import` would find in a full export."""
    if p["fsq"] is None:
        return [f"import     would fail: {p['problem']}"]
    heads = p["head_candidates"]
    if not heads:
        head = "no head (codes only)"
    elif len(heads) == 1:
        head = f"head -> {heads[0]}"
    else:
        head = f"several head candidates ({', '.join(heads)}): pass --head-output"
    rate = p["sample_rate_hz"]
    return [
        f"fsq        levels {p['fsq']['levels']}, Round {p['fsq']['round']}, "
        f"cut at {p['fsq']['end_node']}",
        f"import     {head}; FSQ indices: {', '.join(p['index_outputs']) or 'none'}; "
        + (f"sample rate {rate} Hz (metadata)" if rate else "no sample rate: pass --rate"),
    ]


def _render_graph(g: dict[str, Any]) -> list[str]:
    """The FSQ constants found in encoder.onnx and whether the card agrees with them."""
    bound = g["bound_in_graph"]
    if bound is None:
        found = "no FSQ bound at the encoder's end (the host applies it)"
    else:
        nums = ", ".join(f"{k} [{', '.join(f'{v:.7g}' for v in bound[k])}]" for k in
                         ("half_l", "offset", "shift"))  # fmt: skip
        found = f"bound {' -> '.join(bound['nodes'])}: levels {bound['levels']}, {nums}"
    verdict = "agrees with the card" if g["agrees"] else f"DISAGREES: {g['problem']}"
    batch = g["fixed_batch"]
    return [
        f"graph      {found}",
        f"           {verdict} (stage {g['card_stage']}, levels {g['card_levels']})",
        "batch      "
        + ("dynamic" if batch is None else f"fixed {batch} (inputs are sliced and padded)"),
    ]


def cmd_model_calib(args: argparse.Namespace) -> int:
    from fsqd.model.calib import build_calibration
    from fsqd.model.package import load_package

    report = build_calibration(
        load_package(args.package),
        args.out,
        recordings=args.recordings or (),
        sim_minutes=args.sim_minutes,
        max_windows=args.max_windows,
        hop=args.hop,
        seed=args.seed,
    )
    print("\n".join(report.lines()))
    return 0


def cmd_model_compile_script(args: argparse.Namespace) -> int:
    from fsqd.model.compile_script import write_script
    from fsqd.model.package import load_package

    path, plan = write_script(load_package(args.package), args.out, arch=args.arch)
    print(f"wrote {path} ({plan.arch}, parse up to {plan.end_node}):")
    for c in plan.commands:
        print(f"  {c}")
    print(f"run it on an x86 host with the Hailo Dataflow Compiler, next to {plan.calib};")
    print("it leaves encoder.hef in the package directory, where fsqd looks for it")
    return 0


def cmd_model_parity(args: argparse.Namespace) -> int:
    from fsqd.model.package import load_package
    from fsqd.model.parity import run_parity

    report = run_parity(load_package(args.package), args.windows, reference=args.reference)
    if args.json:
        print(json.dumps(asdict(report) | {"passed": report.passed}, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.passed else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from fsqd.commands.replay import replay

    code = replay(args)
    if getattr(args, "standalone", False):
        # Run as a program: everything is written and closed; skip tearing down the
        # interpreter (onnxruntime, numpy, thousands of objects), which the user waits for.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    from fsqd.commands.simulate import simulate_to_file

    return simulate_to_file(args)


def cmd_run(args: argparse.Namespace) -> int:
    from fsqd.commands.simulate import parse_duration
    from fsqd.config import load_for_run
    from fsqd.daemon import LoggingOverride, run_daemon

    duration = None if args.duration is None else parse_duration(args.duration)
    logs = LoggingOverride(args.log_format, args.log_level)
    config = load_for_run(args.config, stdout=args.stdout)
    return run_daemon(config, duration_s=duration, stdout=args.stdout, log_override=logs)


def cmd_check_config(args: argparse.Namespace) -> int:
    from fsqd.config import describe, load_for_run

    # The very checks `fsqd run` makes before it starts (without --stdout).
    print(describe(load_for_run(args.config)))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from fsqd.commands.tail import TailOptions, run_tail, tail_settings

    mqtt = None if args.config is None else tail_settings(args.config)
    opts = TailOptions(
        host=args.host or (mqtt.host if mqtt else "127.0.0.1"),
        port=args.port or (mqtt.port if mqtt else 1883),
        nodes=tuple(args.node or ()),
        prefix=args.prefix or (mqtt.topic_prefix if mqtt else "fsqd"),
        json=args.json,
        live=sys.stdout.isatty(),
        count=args.count,
        duration_s=None if args.duration is None else _duration(args.duration),
        mqtt=mqtt,
    )
    return run_tail(opts, sys.stdout)


def _duration(text: str) -> float:
    from fsqd.commands.simulate import parse_duration

    return parse_duration(text)


def cmd_record(args: argparse.Namespace) -> int:
    from fsqd.commands.record import cmd_record as record

    return record(args.config, args.out, args.duration, args.format)


def cmd_probe(args: argparse.Namespace) -> int:
    from fsqd.commands.probe import cmd_probe as probe

    return probe(
        args.bus,
        emulated=args.emulated,
        seconds=args.seconds,
        self_test=args.self_test,
        emulated_faults=args.emulated_fault or (),
    )


# -- parser --


def _replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE", help="CSV (with header), .npy or .npz")
    p.add_argument("--model", type=Path, default=None, help="model package (default: bundled)")
    p.add_argument("--out", type=Path, default=None, help="write JSON lines here, not stdout")
    p.add_argument(
        "--hop", type=_positive_int, default=None, help="samples between windows (default: card)"
    )
    p.add_argument(
        "--speed",
        default="max",
        help="'max' (default: batched, as fast as possible) or a factor of real time, e.g. 1",
    )
    p.add_argument("--time-column", help="name of the timestamp column (default: t/time/timestamp)")
    p.add_argument(
        "--rate", type=float, help="sample rate in Hz (files without timestamps; else checked)"
    )
    p.add_argument(
        "--time-unit",
        choices=["s", "ms", "us", "ns", "iso"],
        help="unit of the time column (default: detected from magnitude and step)",
    )
    p.add_argument(
        "--strict", action="store_true", help="implausible values (wrong units) are errors"
    )
    p.add_argument("--columns", help="file columns in the card's channel order, comma-separated")
    p.add_argument(
        "--scale",
        help="per-channel factors, e.g. 'a*=0.00980665' (mg -> m/s^2), comma-separated",
    )
    p.add_argument("--fill", choices=["duplicate"], help="copy device 0 to missing devices")
    p.add_argument(
        "--no-resample", action="store_true", help="refuse files whose rate is not the model's"
    )
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
    p.add_argument(
        "--max-gap", type=float, default=2.5, help="a step over this many sample periods is a gap"
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="onnxruntime threads for the encoder in total, over up to 2 sessions "
        "(default: usable cores)",
    )
    _backend_argument(p)


def _backend_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=["auto", "hailo", "onnx"],
        default="auto",
        help="encoder: auto (the package's encoder.hef on a Hailo device, else CPU), hailo, onnx",
    )


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--duration", default="10m", help="e.g. 90s, 10m, 1h (default 10m)")
    p.add_argument("--rate", type=float, default=100.0, help="sample rate in Hz (default 100)")
    p.add_argument("--devices", type=int, default=1, help="IMUs on the body (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mean-bout", type=float, default=8.0, help="mean behaviour bout in seconds")
    p.add_argument("--start", default="0", help="first timestamp: seconds, 'now' or ISO-8601")
    p.add_argument("--iso-time", action="store_true", help="write ISO-8601 UTC timestamps")
    p.add_argument("--no-labels", action="store_true", help="leave out the behaviour column")


def _hailo_tool_parsers(msub: Any) -> None:
    mc = msub.add_parser("calib", help="calibration windows (NHWC) for the Hailo compiler")
    mc.add_argument("package", type=Path, metavar="PKG")
    mc.add_argument("--out", type=Path, required=True, metavar="CALIB.npy")
    mc.add_argument("--from", dest="recordings", type=Path, nargs="+", metavar="RECORDING")
    mc.add_argument("--sim-minutes", type=float, help="simulated minutes instead of recordings")
    mc.add_argument("--max-windows", type=_positive_int, default=1024, help="default 1024")
    mc.add_argument("--hop", type=_positive_int, help="samples between windows (default: card)")
    mc.add_argument("--seed", type=int, default=0, help="simulator seed")
    mc.set_defaults(func=cmd_model_calib)
    ms = msub.add_parser("compile-script", help="write the Dataflow Compiler commands for a HEF")
    ms.add_argument("package", type=Path, metavar="PKG")
    ms.add_argument("--arch", choices=["hailo8", "hailo8l"], default="hailo8")
    ms.add_argument("--out", type=Path, help="script path (default: PKG/compile_hef.sh)")
    ms.set_defaults(func=cmd_model_compile_script)
    mp = msub.add_parser("parity", help="compare every available backend on the same windows")
    mp.add_argument("package", type=Path, metavar="PKG")
    mp.add_argument("--windows", type=Path, required=True, metavar="W.npy")
    mp.add_argument("--reference", type=Path, help="encoder outputs from training (N, dim) .npy")
    mp.add_argument("--json", action="store_true", help="machine-readable output")
    mp.set_defaults(func=cmd_model_parity)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fsqd",
        description="IMU windows -> neural encoder -> Finite Scalar Quantization behaviour codes.",
    )
    p.add_argument("--version", action="version", version=f"fsqd {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    e = sub.add_parser("encode", help="encode already-shaped, normalised windows from a .npy file")
    e.add_argument("windows", type=Path, metavar="WINDOWS.npy")
    e.add_argument("--model", type=Path, default=None, help="model package (default: bundled)")
    e.add_argument("--out", type=Path, default=None, help="write JSON lines here, not stdout")
    e.add_argument("--batch", type=_positive_int, default=1024, help="windows per inference")
    _backend_argument(e)
    e.set_defaults(func=cmd_encode)

    m = sub.add_parser("model", help="import and inspect model packages")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mi = msub.add_parser("import", help="cut a full exported FSQ model into a package")
    mi.add_argument("full", type=Path, metavar="FULL.onnx")
    mi.add_argument("--out", type=Path, required=True, metavar="PKG")
    mi.add_argument("--levels", type=_ints, help="expected FSQ levels, e.g. 8,6,5,5,4")
    mi.add_argument("--mean", type=_floats, help="per-channel mean used in training")
    mi.add_argument("--std", type=_floats, help="per-channel std used in training")
    mi.add_argument("--norm", type=Path, help='JSON file {"mean": [...], "std": [...]}')
    mi.add_argument("--labels", type=_names, help="head class names, in logit order")
    mi.add_argument("--name", help="model name (default: the file's stem)")
    mi.add_argument("--model-version", default="1.0.0", help="model version for the card")
    mi.add_argument(
        "--rate", type=float, help="sample rate in Hz of the training data (required unless "
        "the model's metadata has sample_rate_hz)"
    )  # fmt: skip
    mi.add_argument(
        "--channels", type=_names, help="input channel names in model order (default: ax..mz)"
    )
    mi.add_argument("--units", type=_names, help="one unit per channel, e.g. m/s^2,rad/s")
    mi.add_argument("--head-output", help="the graph output that is the classifier head")
    mi.add_argument("--hop", type=_positive_int, help="default hop (default: half a window)")
    mi.add_argument("--layout", help="input axis order, e.g. NCDT (default: from the shape)")
    mi.add_argument("--description", help="what the model recognises")
    mi.add_argument("--trained-on", help="what data it was trained on (for the card)")
    mi.add_argument("--force", action="store_true", help="replace an existing PKG")
    mi.set_defaults(func=cmd_model_import)
    mn = msub.add_parser("inspect", help="show a package's card, I/O and operators")
    mn.add_argument("package", type=Path, nargs="?", metavar="PKG", help="default: bundled model")
    mn.add_argument("--json", action="store_true", help="machine-readable output")
    mn.set_defaults(func=cmd_model_inspect)
    _hailo_tool_parsers(msub)

    r = sub.add_parser("replay", help="replay a recorded IMU file through the model")
    _replay_arguments(r)
    r.set_defaults(func=cmd_replay)
    s = sub.add_parser("simulate", help="write a simulated IMU recording (CSV)")
    _simulate_arguments(s)
    s.set_defaults(func=cmd_simulate)

    rn = sub.add_parser("run", help="the daemon: sensors -> codes -> MQTT (or JSON lines)")
    rn.add_argument("--config", type=Path, required=True, metavar="CFG", help="TOML config file")
    rn.add_argument("--duration", help="stop after this long, e.g. 60s, 10m (default: run on)")
    rn.add_argument("--stdout", action="store_true", help="codes as JSON lines on stdout, no MQTT")
    rn.add_argument(
        "--log-format",
        choices=("auto", "console", "json", "journal"),
        help="overrides [logging] format (kept across SIGHUP reloads)",
    )
    rn.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="overrides [logging] level (kept across SIGHUP reloads)",
    )
    rn.set_defaults(func=cmd_run)
    cc = sub.add_parser("check-config", help="validate a config file and summarise it")
    cc.add_argument("config", type=Path, metavar="CFG")
    cc.set_defaults(func=cmd_check_config)
    tl = sub.add_parser("tail", help="watch codes and stats of one or many nodes over MQTT")
    tl.add_argument("--node", action="append", help="node id (repeat for several; default: all)")
    tl.add_argument("--host", help="broker (default: 127.0.0.1, or the config's)")
    tl.add_argument("--port", type=_positive_int, help="default: 1883, or the config's")
    tl.add_argument("--prefix", help="topic prefix (default: fsqd)")
    tl.add_argument(
        "--config",
        type=Path,
        metavar="CFG",
        help="take broker, TLS and credentials from this fsqd.toml",
    )
    tl.add_argument("--json", action="store_true", help="one JSON object per message")
    tl.add_argument("--count", type=_positive_int, help="stop after this many codes")
    tl.add_argument("--duration", help="stop after this long, e.g. 30s")
    tl.set_defaults(func=cmd_tail)
    rec = sub.add_parser("record", help="record raw samples from the configured IMUs")
    rec.add_argument("--config", type=Path, required=True, help="TOML with [[sensor]] tables")
    rec.add_argument("--out", type=Path, required=True, help="FILE.fsqr (native) or FILE.csv")
    rec.add_argument("--duration", help="e.g. 90s, 10m, 1h (default: until Ctrl-C)")
    rec.add_argument("--format", choices=["native", "csv"], help="default: from --out's suffix")
    rec.set_defaults(func=cmd_record)
    pr = sub.add_parser("probe", help="find IMUs on the I2C buses and check their readings")
    pr.add_argument("--bus", action="append", help="bus number or /dev path (default: all)")
    pr.add_argument("--emulated", action="store_true", help="probe an emulated bus instead")
    pr.add_argument("--seconds", type=float, default=1.0, help="burst length (default 1 s)")
    pr.add_argument(
        "--self-test",
        action="store_true",
        help="also run each chip's built-in self-test (exit 74 if one fails)",
    )
    # Tests: an emulated chip that fails its self-test ("lsm6dsox:dead-x").
    pr.add_argument("--emulated-fault", action="append", help=argparse.SUPPRESS)
    pr.set_defaults(func=cmd_probe)
    return p


def _log_to_stderr() -> None:
    """structlog prints everything to stdout by default: keep stdout for results and show
    only warnings (a fall-back, a range problem) on stderr. (The daemon configures its own.)"""
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        # Looked up per message, so a replaced sys.stderr (tests, redirections) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits 2 on bad usage; fsqd uses sysexits throughout (64 = usage).
        return EX_USAGE if e.code == 2 else int(e.code or 0)
    debug = args.debug or os.environ.get("FSQD_DEBUG") == "1"
    # Run as a program (console script, python -m fsqd), not called by code that goes on.
    args.standalone = argv is None
    _log_to_stderr()
    func: Command = args.func
    try:
        return func(args)
    except FsqdError as e:
        print(f"fsqd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error; stop writing quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        if debug:
            raise
        print(
            f"fsqd: internal error: {type(e).__name__}: {e} (run with --debug for details)",
            file=sys.stderr,
        )
        return EX_SOFTWARE

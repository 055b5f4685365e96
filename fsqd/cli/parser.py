"""``fsqd``'s arguments -> the options dataclass of one command (``fsqd.cli.main`` runs it).

Parsing is argparse's; turning the words into typed options (durations, comma lists, the
broker of a config file for ``tail``) is each command's builder here, called inside
``main``'s error handling so a bad value is a one-line usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar

from fsqd import __version__
from fsqd.cli import model
from fsqd.cli.values import (
    floats,
    ints,
    names,
    optional_duration,
    parse_duration,
    parse_start,
    positive_int,
)
from fsqd.errors import UsageError

__all__ = ["Call", "build_parser", "invocation"]

Opts = TypeVar("Opts")


@dataclass(frozen=True)
class Call(Generic[Opts]):
    """One command and its options: ``call()`` runs it and returns the exit code."""

    command: Callable[[Opts], int]
    options: Opts

    def __call__(self) -> int:
        return self.command(self.options)


Build = Callable[[argparse.Namespace], Call[Any]]


def invocation(args: argparse.Namespace) -> Call[Any]:
    """The command the parsed ``args`` name, with its options (errors: UsageError & co.)."""
    build: Build = args.build
    return build(args)


# -- arguments -> options --


def _model(command: Callable[[argparse.Namespace], int]) -> Build:
    """The ``model`` tools take the parsed arguments as they are."""
    return lambda args: Call(command, args)


def _encode(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.encode import EncodeOptions, encode

    opts = EncodeOptions(args.windows, args.model, args.out, args.batch, args.backend)
    return Call(encode, opts)


def _replay(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.replay import ReplayOptions, replay

    opts = ReplayOptions(
        file=args.file,
        model=args.model,
        out=args.out,
        hop=args.hop,
        speed=args.speed,
        time_column=args.time_column,
        rate=args.rate,
        time_unit=args.time_unit,
        strict=args.strict,
        columns=args.columns,
        scale=args.scale,
        fill=args.fill,
        no_resample=args.no_resample,
        skip_bad_rows=args.skip_bad_rows,
        max_gap=args.max_gap,
        threads=args.threads,
        backend=args.backend,
        segments=args.segments,
        evaluate=not args.no_evaluate,
    )
    return Call(replay, opts)


def _simulate(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.simulate import SimulateOptions, simulate

    opts = SimulateOptions(
        out=args.out,
        duration_s=parse_duration(args.duration),
        rate_hz=args.rate,
        devices=args.devices,
        seed=args.seed,
        mean_bout_s=args.mean_bout,
        start=parse_start(args.start),
        iso_time=args.iso_time,
        labels=not args.no_labels,
    )
    return Call(simulate, opts)


def _run(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.run import RunOptions, run

    opts = RunOptions(
        config=args.config,
        duration_s=optional_duration(args.duration),
        stdout=args.stdout,
        log_format=args.log_format,
        log_level=args.log_level,
    )
    return Call(run, opts)


def _check_config(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.check_config import CheckConfigOptions, check_config

    return Call(check_config, CheckConfigOptions(args.config))


def _tail(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.tail import TailOptions, run_tail, tail_settings

    mqtt = None if args.config is None else tail_settings(args.config)
    duration_s = optional_duration(args.duration)
    opts = TailOptions(
        host=args.host or (mqtt.host if mqtt else "127.0.0.1"),
        port=args.port or (mqtt.port if mqtt else 1883),
        nodes=tuple(args.node or ()),
        prefix=args.prefix or (mqtt.topic_prefix if mqtt else "fsqd"),
        json=args.json,
        live=sys.stdout.isatty(),
        count=args.count,
        duration_s=duration_s,
        mqtt=mqtt,
    )
    return Call(run_tail, opts)


def _collect(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.collect import CollectCommandOptions, collect

    return Call(collect, CollectCommandOptions(args.config, optional_duration(args.duration)))


def _report(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.report import ReportOptions, report

    first, last = (_utc_date(flag, v) for flag, v in (("--from", args.first), ("--to", args.last)))
    if first and last and first > last:
        raise UsageError(f"--from {first} is after --to {last}")
    opts = ReportOptions(args.store, args.out, tuple(args.node or ()), first, last)
    return Call(report, opts)


def _utc_date(flag: str, text: str | None) -> str | None:
    """A UTC day, YYYY-MM-DD (an ISO date-time is cut to its date)."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give a UTC date, YYYY-MM-DD") from None


def _record(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.record import RecordOptions, record_to_file

    duration_s = parse_duration(args.duration) if args.duration else None
    return Call(record_to_file, RecordOptions(args.config, args.out, duration_s, args.format))


def _probe(args: argparse.Namespace) -> Call[Any]:
    from fsqd.commands.probe import ProbeOptions, probe

    opts = ProbeOptions(
        buses=tuple(args.bus or ()),
        emulated=args.emulated,
        seconds=args.seconds,
        self_test=args.self_test,
        emulated_faults=tuple(args.emulated_fault or ()),
    )
    return Call(probe, opts)


# -- the parser --


def _replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE", help="CSV (with header), .npy or .npz")
    p.add_argument("--model", type=Path, default=None, help="model package (default: bundled)")
    p.add_argument("--out", type=Path, default=None, help="write JSON lines here, not stdout")
    p.add_argument(
        "--segments",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the behaviour segments here (.csv: CSV, else JSON lines)",
    )
    p.add_argument(
        "--no-evaluate",
        action="store_true",
        help="a CSV with a 'label' column: skip the evaluate report (a second pass)",
    )
    p.add_argument(
        "--hop", type=positive_int, default=None, help="samples between windows (default: card)"
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
        type=positive_int,
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


def _behaviour_parsers(msub: Any) -> None:
    mk = msub.add_parser(
        "calibrate", help="fit temperature, conformal sets and references from labelled data"
    )
    mk.add_argument("package", type=Path, metavar="PKG")
    mk.add_argument(
        "--data", type=Path, nargs="+", required=True, metavar="FILE",
        help="labelled CSV recordings (a 'label' column, as `fsqd simulate` writes)",
    )  # fmt: skip
    mk.add_argument("--coverage", type=float, default=0.9, help="conformal coverage (default 0.9)")
    mk.add_argument("--method", choices=["lac", "aps"], default="lac", help="default lac")
    mk.add_argument(
        "--class-conditional", action="store_true", help="a conformal threshold per label"
    )
    mk.add_argument(
        "--no-bias", action="store_true", help="temperature scaling only (no per-label bias)"
    )
    mk.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots here (matplotlib)")
    mk.set_defaults(build=_model(model.cmd_model_calibrate))
    me = msub.add_parser("evaluate", help="accuracy, calibration and coverage on labelled data")
    me.add_argument("package", type=Path, metavar="PKG")
    me.add_argument("--data", type=Path, nargs="+", required=True, metavar="FILE")
    me.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots here (matplotlib)")
    me.add_argument("--json", action="store_true", help="machine-readable output")
    me.set_defaults(build=_model(model.cmd_model_evaluate))


def _hailo_tool_parsers(msub: Any) -> None:
    mc = msub.add_parser("calib", help="calibration windows (NHWC) for the Hailo compiler")
    mc.add_argument("package", type=Path, metavar="PKG")
    mc.add_argument("--out", type=Path, required=True, metavar="CALIB.npy")
    mc.add_argument("--from", dest="recordings", type=Path, nargs="+", metavar="RECORDING")
    mc.add_argument("--sim-minutes", type=float, help="simulated minutes instead of recordings")
    mc.add_argument("--max-windows", type=positive_int, default=1024, help="default 1024")
    mc.add_argument("--hop", type=positive_int, help="samples between windows (default: card)")
    mc.add_argument("--seed", type=int, default=0, help="simulator seed")
    mc.set_defaults(build=_model(model.cmd_model_calib))
    ms = msub.add_parser("compile-script", help="write the Dataflow Compiler commands for a HEF")
    ms.add_argument("package", type=Path, metavar="PKG")
    ms.add_argument("--arch", choices=["hailo8", "hailo8l"], default="hailo8")
    ms.add_argument("--out", type=Path, help="script path (default: PKG/compile_hef.sh)")
    ms.set_defaults(build=_model(model.cmd_model_compile_script))
    mp = msub.add_parser("parity", help="compare every available backend on the same windows")
    mp.add_argument("package", type=Path, metavar="PKG")
    mp.add_argument("--windows", type=Path, required=True, metavar="W.npy")
    mp.add_argument("--reference", type=Path, help="encoder outputs from training (N, dim) .npy")
    mp.add_argument("--json", action="store_true", help="machine-readable output")
    mp.set_defaults(build=_model(model.cmd_model_parity))


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
    e.add_argument("--batch", type=positive_int, default=1024, help="windows per inference")
    _backend_argument(e)
    e.set_defaults(build=_encode)

    m = sub.add_parser("model", help="import and inspect model packages")
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mi = msub.add_parser("import", help="cut a full exported FSQ model into a package")
    mi.add_argument("full", type=Path, metavar="FULL.onnx")
    mi.add_argument("--out", type=Path, required=True, metavar="PKG")
    mi.add_argument("--levels", type=ints, help="expected FSQ levels, e.g. 8,6,5,5,4")
    mi.add_argument("--mean", type=floats, help="per-channel mean used in training")
    mi.add_argument("--std", type=floats, help="per-channel std used in training")
    mi.add_argument("--norm", type=Path, help='JSON file {"mean": [...], "std": [...]}')
    mi.add_argument("--labels", type=names, help="head class names, in logit order")
    mi.add_argument("--name", help="model name (default: the file's stem)")
    mi.add_argument("--model-version", default="1.0.0", help="model version for the card")
    mi.add_argument(
        "--rate", type=float, help="sample rate in Hz of the training data (required unless "
        "the model's metadata has sample_rate_hz)"
    )  # fmt: skip
    mi.add_argument(
        "--channels", type=names, help="input channel names in model order (default: ax..mz)"
    )
    mi.add_argument("--units", type=names, help="one unit per channel, e.g. m/s^2,rad/s")
    mi.add_argument("--head-output", help="the graph output that is the classifier head")
    mi.add_argument("--hop", type=positive_int, help="default hop (default: half a window)")
    mi.add_argument("--layout", help="input axis order, e.g. NCDT (default: from the shape)")
    mi.add_argument("--description", help="what the model recognises")
    mi.add_argument("--trained-on", help="what data it was trained on (for the card)")
    mi.add_argument("--force", action="store_true", help="replace an existing PKG")
    mi.set_defaults(build=_model(model.cmd_model_import))
    mn = msub.add_parser("inspect", help="show a package's card, I/O and operators")
    mn.add_argument("package", type=Path, nargs="?", metavar="PKG", help="default: bundled model")
    mn.add_argument("--json", action="store_true", help="machine-readable output")
    mn.set_defaults(build=_model(model.cmd_model_inspect))
    _hailo_tool_parsers(msub)
    _behaviour_parsers(msub)

    r = sub.add_parser("replay", help="replay a recorded IMU file through the model")
    _replay_arguments(r)
    r.set_defaults(build=_replay)
    s = sub.add_parser("simulate", help="write a simulated IMU recording (CSV)")
    _simulate_arguments(s)
    s.set_defaults(build=_simulate)

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
    rn.set_defaults(build=_run)
    cc = sub.add_parser("check-config", help="validate a config file and summarise it")
    cc.add_argument("config", type=Path, metavar="CFG")
    cc.set_defaults(build=_check_config)
    tl = sub.add_parser("tail", help="watch codes and stats of one or many nodes over MQTT")
    tl.add_argument("--node", action="append", help="node id (repeat for several; default: all)")
    tl.add_argument("--host", help="broker (default: 127.0.0.1, or the config's)")
    tl.add_argument("--port", type=positive_int, help="default: 1883, or the config's")
    tl.add_argument("--prefix", help="topic prefix (default: fsqd)")
    tl.add_argument(
        "--config",
        type=Path,
        metavar="CFG",
        help="take broker, TLS and credentials from this fsqd.toml",
    )
    tl.add_argument("--json", action="store_true", help="one JSON object per message")
    tl.add_argument("--count", type=positive_int, help="stop after this many codes")
    tl.add_argument("--duration", help="stop after this long, e.g. 30s")
    tl.set_defaults(build=_tail)
    co = sub.add_parser("collect", help="store every node's messages in Parquet (MQTT 5 shared)")
    co.add_argument("--config", type=Path, required=True, metavar="FILE", help="[mqtt] + [collect]")
    co.add_argument("--duration", help="stop after this long, e.g. 10m (default: until stopped)")
    co.set_defaults(build=_collect)
    rp = sub.add_parser("report", help="activity budgets, timelines, completeness from a store")
    rp.add_argument("store", type=Path, metavar="STORE", help="the directory fsqd collect fills")
    rp.add_argument("--node", action="append", help="node id (repeat for several; default: all)")
    rp.add_argument("--from", dest="first", metavar="DATE", help="first UTC day, YYYY-MM-DD")
    rp.add_argument("--to", dest="last", metavar="DATE", help="last UTC day, YYYY-MM-DD")
    rp.add_argument("--out", type=Path, required=True, metavar="DIR", help="PNGs + report.html")
    rp.set_defaults(build=_report)
    rec = sub.add_parser("record", help="record raw samples from the configured IMUs")
    rec.add_argument("--config", type=Path, required=True, help="TOML with [[sensor]] tables")
    rec.add_argument("--out", type=Path, required=True, help="FILE.fsqr (native) or FILE.csv")
    rec.add_argument("--duration", help="e.g. 90s, 10m, 1h (default: until Ctrl-C)")
    rec.add_argument("--format", choices=["native", "csv"], help="default: from --out's suffix")
    rec.set_defaults(build=_record)
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
    pr.set_defaults(build=_probe)
    return p

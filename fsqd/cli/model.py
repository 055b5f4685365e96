"""``fsqd model ...``: the model package tools, called with the parsed arguments."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fsqd.cli.rendering import jsonable, render_inspect
from fsqd.console import note
from fsqd.errors import UsageError

__all__ = [
    "cmd_model_calib",
    "cmd_model_calibrate",
    "cmd_model_compile_script",
    "cmd_model_evaluate",
    "cmd_model_import",
    "cmd_model_inspect",
    "cmd_model_parity",
]


def cmd_model_import(args: argparse.Namespace) -> int:
    from fsqd.commands.model_import import ImportOptions, import_model

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
    from fsqd.commands.model_inspect import import_preview, inspect_package, onnx_summary
    from fsqd.model.package import load_package

    target: Path | None = args.package
    info: dict[str, Any]
    if target is not None and target.suffix == ".onnx" and target.is_file():
        info = {"files": {"model": onnx_summary(target)}, "import": import_preview(target)}
    else:
        info = inspect_package(load_package(target))
    if args.json:
        print(json.dumps(info, default=jsonable, indent=2))
    else:
        print(render_inspect(info))
    return 0


def cmd_model_calib(args: argparse.Namespace) -> int:
    from fsqd.commands.model_calib import build_calibration
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
    from fsqd.commands.model_compile_script import write_script
    from fsqd.model.package import load_package

    path, plan = write_script(load_package(args.package), args.out, arch=args.arch)
    print(f"wrote {path} ({plan.arch}, parse up to {plan.end_node}):")
    for c in plan.commands:
        print(f"  {c}")
    print(f"run it on an x86 host with the Hailo Dataflow Compiler, next to {plan.calib};")
    print("it leaves encoder.hef in the package directory, where fsqd looks for it")
    return 0


def cmd_model_parity(args: argparse.Namespace) -> int:
    from fsqd.commands.model_parity import run_parity
    from fsqd.model.package import load_package

    report = run_parity(load_package(args.package), args.windows, reference=args.reference)
    if args.json:
        print(json.dumps(asdict(report) | {"passed": report.passed}, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.passed else 1


def cmd_model_calibrate(args: argparse.Namespace) -> int:
    from fsqd.commands.model_calibrate import CalibrateOptions, run_calibrate

    return run_calibrate(
        CalibrateOptions(
            package=args.package,
            data=tuple(args.data),
            coverage=args.coverage,
            method=args.method,
            class_conditional=args.class_conditional,
            plots=args.plots,
            bias=not args.no_bias,
        )
    )


def cmd_model_evaluate(args: argparse.Namespace) -> int:
    from fsqd.commands.model_evaluate import EvaluateOptions, run_evaluate

    return run_evaluate(EvaluateOptions(args.package, tuple(args.data), args.plots, args.json))

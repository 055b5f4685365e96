"""`fsqd model compile-script`: the three Dataflow Compiler commands that turn a package's
``encoder.onnx`` into the ``encoder.hef`` the Hailo backend loads.

The Dataflow Compiler runs on an x86 Linux host and is not redistributable, so fsqd writes
a script for the user to run there: parse (up to the node that feeds FSQ's Round, which the
Hailo-8 cannot run), optimize (8-bit quantisation calibrated on ``fsqd model calib``'s
windows), compile. The script leaves ``encoder.hef`` in the package directory.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsqd.backends.hailo.network import hef_frame_shape
from fsqd.errors import DataError, ModelError, OutputError
from fsqd.model.onnxio import load_onnx
from fsqd.model.package import ModelPackage
from fsqd.outfile import text_output
from fsqd.safefile import regular_file

ARCHES = ("hailo8", "hailo8l")
SCRIPT_FILE = "compile_hef.sh"
CALIB_FILE = "calib.npy"


@dataclass(frozen=True)
class CompilePlan:
    arch: str
    net_name: str
    onnx: str  # file names relative to the package directory
    calib: str
    end_node: str
    commands: tuple[str, str, str]


def end_node(package: ModelPackage) -> str:
    """The encoder graph's node that produces the card's output (the tensor feeding Round)."""
    model = load_onnx(package.encoder_onnx)
    want = package.card.output.name
    for node in model.graph.node:
        if want in node.output:
            if not node.name:
                raise ModelError(
                    f"{package.encoder_onnx}: the node producing {want!r} has no name; the "
                    "Hailo parser needs one (re-export with named nodes)"
                )
            return str(node.name)
    raise ModelError(f"{package.encoder_onnx}: no node produces the card's output {want!r}")


def plan(package: ModelPackage, arch: str = "hailo8", calib: str = CALIB_FILE) -> CompilePlan:
    if arch not in ARCHES:
        raise ModelError(f"--arch must be one of {', '.join(ARCHES)}, got {arch!r}")
    hef_frame_shape(package)  # the Hailo path needs a 4-D input: refuse early
    node = end_node(package)
    recorded = package.card.provenance.get("hailo_end_node")
    if recorded is not None and recorded != node:
        raise ModelError(
            f"{package.path}: the card records end node {recorded!r} but encoder.onnx ends at "
            f"{node!r}: re-import the model"
        )
    onnx = package.card.encoder_onnx
    # Each step names its output after its input: encoder.har, encoder_optimized.har,
    # encoder.hef (the forms in the Dataflow Compiler's CLI tutorial; no other flags).
    net = Path(onnx).stem
    q = shlex.quote
    commands = (
        f"hailo parser onnx {q(onnx)} --hw-arch {arch} --end-node-names {q(node)} -y",
        f"hailo optimize {q(net + '.har')} --hw-arch {arch} --calib-set-path {q(calib)}",
        f"hailo compiler {q(net + '_optimized.har')} --hw-arch {arch}",
    )
    return CompilePlan(arch, net, onnx, calib, node, commands)


def check_calibration(package: ModelPackage, path: Path) -> tuple[int, ...]:
    """A calibration set the optimizer can use: float32 (N, H, W, C) of the HEF's frames."""
    regular_file(path, what="a .npy calibration set")  # memory-mapped: no size cap
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy calibration set ({e})") from None
    want = hef_frame_shape(package)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != want:
        raise DataError(
            f"{path}: calibration set is {list(arr.shape)}, the HEF's frames are "
            f"[N, {', '.join(map(str, want))}] (NHWC): make it with `fsqd model calib`"
        )
    return tuple(int(v) for v in arr.shape)


def render(package: ModelPackage, p: CompilePlan) -> str:
    card = package.card
    parse, optimize, compile_ = p.commands
    hef = shlex.quote(p.net_name + ".hef")
    move = "" if p.net_name == "encoder" else f"mv {hef} encoder.hef\n"
    return f"""#!/bin/sh
# Compile {package.label} for {p.arch} with the Hailo Dataflow Compiler (x86 Linux host,
# in the Hailo SDK's environment). Written by `fsqd model compile-script`.
#
# Copy the whole package directory to that host; put the calibration set made by
#   fsqd model calib {package.path} --from RECORDINGS... --out {package.path}/{p.calib}
# beside this script, run it there, then copy encoder.hef back into the package on the Pi.
# fsqd (backend auto) uses encoder.hef whenever it is present and a Hailo device answers.
#
# Encoder input {card.input.name} {list(card.input.shape)} ({card.input.layout}) is NHWC
# {list(hef_frame_shape(package))} on the device; the graph is cut at {p.end_node}, the node
# that feeds FSQ's Round (the Hailo-8 has no Round; fsqd finishes FSQ on the host).
set -eu
cd "$(dirname "$0")"
test -f {shlex.quote(p.calib)} || {{ echo "missing {p.calib}: run fsqd model calib" >&2; exit 66; }}

{parse}
{optimize}
{compile_}

test -f {hef} || {{ echo "the compiler wrote no {hef}" >&2; exit 70; }}
{move}echo "wrote $(pwd)/encoder.hef: copy it into the package on the Pi, then check it with"
echo "  fsqd model parity PKG --windows WINDOWS.npy"
"""


def write_script(
    package: ModelPackage, out: Path | None = None, *, arch: str = "hailo8"
) -> tuple[Path, CompilePlan]:
    p = plan(package, arch)
    calib = package.path / p.calib
    if calib.exists():
        check_calibration(package, calib)
    target = out or package.path / SCRIPT_FILE
    # 0755 on the file written; a FIFO or device named by --out keeps its own mode.
    with text_output(target, mode_bits=0o755) as fh:
        try:
            fh.write(render(package, p))
        except OSError as e:
            raise OutputError(f"{target}: cannot write the script: {e.strerror or e}") from None
    return target, p

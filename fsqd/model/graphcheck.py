"""The card against the graph: do the FSQ constants inside ``encoder.onnx`` agree with the card?

A ``bounded``-stage encoder ends in vector-quantize-pytorch's bound::

    z -> Add(shift) -> Tanh -> Mul(half_l) -> Sub(offset) -> output

whose constants fix the levels (half_l = (L - 1) * 1.001 / 2). A ``projection``-stage
encoder ends before it and the host applies the bound. A card whose levels are in another
order, or whose stage is the other one (tanh applied twice, or never), still runs and gives
confident wrong codes, so the backend refuses it when it opens the encoder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.errors import ModelError
from fsqd.fsq import FSQ
from fsqd.model.card import GraphCheckRecord, ModelCard, Stage
from fsqd.model.onnxio import load_onnx
from fsqd.model.package import ModelPackage
from fsqd.model.surgery import Graph
from fsqd.safefile import MODEL_MAX, regular_file


@dataclass(frozen=True)
class GraphFsq:
    """The FSQ bound found at the end of an encoder graph (None when there is none)."""

    levels: tuple[int, ...]  # from half_l
    half_l: tuple[float, ...]  # the Mul constant, (L - 1) * 1.001 / 2
    offset: tuple[float, ...]  # the Sub constant, 0.5 for even L
    shift: tuple[float, ...]  # the Add constant, atanh(offset / half_l)
    nodes: tuple[str, ...]  # Add, Tanh, Mul, Sub node names

    @property
    def stage(self) -> Stage:
        return "bounded"


@dataclass(frozen=True)
class GraphCheck:
    """What the check found, for `fsqd model inspect`."""

    card_stage: Stage
    card_levels: tuple[int, ...]
    found: GraphFsq | None
    problem: str | None  # None when card and graph agree

    @property
    def agrees(self) -> bool:
        return self.problem is None


def _const_operand(graph: Graph, node: Any, op: str) -> tuple[str, npt.NDArray[Any]] | None:
    if node is None or node.op_type != op:
        return None
    return graph.split_const(node)


def find_bound(graph: Graph, tensor: str) -> GraphFsq | None:
    """The Add->Tanh->Mul->Sub bound producing ``tensor``, or None when it is not one."""
    sub = graph.producer.get(tensor)
    if (sub_parts := _const_operand(graph, sub, "Sub")) is None:
        return None
    mul = graph.producer.get(sub_parts[0])
    if (mul_parts := _const_operand(graph, mul, "Mul")) is None:
        return None
    tanh = graph.producer.get(mul_parts[0])
    if tanh is None or tanh.op_type != "Tanh":
        return None
    add = graph.producer.get(tanh.input[0])
    if (add_parts := _const_operand(graph, add, "Add")) is None:
        return None
    half_l = np.asarray(mul_parts[1], np.float64).reshape(-1)
    offset = np.asarray(sub_parts[1], np.float64).reshape(-1)
    shift = np.asarray(add_parts[1], np.float64).reshape(-1)
    dim = max(half_l.size, offset.size, shift.size)
    try:
        half_l, offset, shift = (np.broadcast_to(a, (dim,)) for a in (half_l, offset, shift))
    except ValueError:
        return None
    levels = np.rint(half_l * 2 / 1.001 + 1).astype(np.int64)
    return GraphFsq(
        levels=tuple(int(v) for v in levels),
        half_l=tuple(float(v) for v in half_l),
        offset=tuple(float(v) for v in offset),
        shift=tuple(float(v) for v in shift),
        nodes=tuple(str(n.name) for n in (add, tanh, mul, sub) if n is not None),
    )


def _fmt(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, values)) + "]"


def _constants_problem(found: GraphFsq) -> str | None:
    """The constants must be vector-quantize-pytorch's for the levels they imply."""
    if any(v < 3 for v in found.levels):
        return f"its half_l {list(found.half_l)} implies levels {_fmt(found.levels)} below 3"
    want = FSQ(found.levels)
    ok = (
        np.allclose(found.half_l, want.half_l, rtol=1e-6, atol=0)
        and np.allclose(found.offset, want.offset, rtol=0, atol=1e-6)
        and np.allclose(found.shift, want.shift, rtol=1e-5, atol=1e-7)
    )
    if ok:
        return None
    return (
        f"its constants are not vector-quantize-pytorch's FSQ bound for levels "
        f"{_fmt(found.levels)} (half_l {list(found.half_l)}, offset {list(found.offset)}, "
        f"shift {list(found.shift)})"
    )


def check_graph(card: ModelCard, model: Any) -> GraphCheck:
    """Compare the card's stage and levels with the bound at the end of ``model``."""
    graph = Graph(model)
    found = find_bound(graph, card.output.name)
    stage, levels = card.output.stage, card.levels
    problem = None
    if stage == "bounded" and found is None:
        node = graph.producer.get(card.output.name)
        what = "a graph input" if node is None else f"{node.op_type} {node.name!r}"
        problem = (
            f"the card's stage is 'bounded' but its output {card.output.name!r} comes from "
            f"{what}, not from the FSQ bound Add->Tanh->Mul->Sub: this looks like a "
            "'projection'-stage encoder (the host would skip tanh)"
        )
    elif stage == "projection" and found is not None:
        problem = (
            f"the card's stage is 'projection' but the encoder already ends in the FSQ bound "
            f"({found.nodes[-1]}, levels {_fmt(found.levels)}): the host would apply tanh "
            "twice; the stage is 'bounded'"
        )
    elif found is not None:
        problem = _constants_problem(found)
        if problem is None and found.levels != levels:
            hint = " (reversed)" if found.levels == levels[::-1] else ""
            problem = (
                f"the card's levels {_fmt(levels)} disagree with the encoder's FSQ constants, "
                f"which say levels {_fmt(found.levels)}{hint}"
            )
    return GraphCheck(stage, levels, found, problem)


def check_card_against_graph(card: ModelCard, model: Any, path: Path) -> GraphCheck:
    """``check_graph`` that refuses a disagreement with a one-line ModelError (exit 78)."""
    result = check_graph(card, model)
    if result.problem is not None:
        raise ModelError(f"{path}: {result.problem}")
    return result


def encoder_sha256(package: ModelPackage) -> str:
    """The sha256 of the package's ``encoder.onnx``, read in blocks (a graph may be large)."""
    path = package.encoder_onnx
    regular_file(path, what="an ONNX model", limit=MODEL_MAX)
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise ModelError(f"{path}: cannot read it: {e.strerror or e}") from None


def record_check(package: ModelPackage) -> GraphCheckRecord:
    """Check the package's graph (loading it with ``onnx``) and return what the card records."""
    card = package.card
    check_card_against_graph(card, load_onnx(package.encoder_onnx), package.encoder_onnx)
    return GraphCheckRecord(
        encoder_sha256(package), card.output.name, card.output.stage, card.levels
    )


def check_package(package: ModelPackage) -> bool:
    """Check a package's card against its ``encoder.onnx``; every backend calls this when it
    opens a package (the Hailo backend too: the HEF is compiled from that graph).

    The card's ``graph_check``, written by ``fsqd model import``, vouches for the graph while
    the encoder's sha256 and the card's output, stage and levels are those it recorded; then
    the graph is not loaded (``onnx`` is not imported). Otherwise -- an older card, a
    replaced encoder, an edited card -- the graph is checked again. True when it was.
    """
    check = package.card.graph_check
    if check is not None and check.vouches_for(package.card, encoder_sha256(package)):
        return False
    path = package.encoder_onnx
    check_card_against_graph(package.card, load_onnx(path), path)
    return True

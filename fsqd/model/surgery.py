"""ONNX surgery on a full exported FSQ model: find the FSQ, cut the encoder, lift the head.

A model exported from torch with vector-quantize-pytorch's FSQ contains, per FSQ::

    z -> Add(shift) -> Tanh -> Mul(half_l) -> Sub(offset) -> Round -> Sub -> Add -> Div(half_width)
                                          ^ bounded value b     (straight-through)   ^ zhat

The Hailo-8 has no Round, so the encoder is cut at the node feeding Round and FSQ runs on
the host. The classifier head starts where zhat, after reshapes and a conditional squeeze
(an ``If``), meets its first compute node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fsqd.errors import ModelError

# Ops that only move or relabel the codes on their way to the head.
_PASS_THROUGH = frozenset({"Reshape", "Cast", "Squeeze", "Unsqueeze", "Identity", "Flatten", "If"})


@dataclass(frozen=True)
class FsqSite:
    """Where the FSQ sits in a graph and what it says about itself."""

    round_node: str
    end_node: str  # the node feeding Round: the Hailo parser's end node
    bounded: str  # the tensor feeding Round
    projection: str  # the tensor entering the bound (z)
    codes: str | None  # zhat, the Div output, when the graph computes it
    levels: tuple[int, ...]
    half_l: tuple[float, ...]
    offset: tuple[float, ...]
    shift: tuple[float, ...]


class Graph:
    """Read-only index over an ONNX graph: producers, consumers, constants."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.model = model
        g = model.graph
        self.nodes = list(g.node)
        self.producer: dict[str, Any] = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for name in dict.fromkeys(_all_inputs(n)):
                self.consumers.setdefault(name, []).append(n)
        self.const: dict[str, npt.NDArray[Any]] = {
            i.name: numpy_helper.to_array(i) for i in g.initializer
        }
        for n in self.nodes:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.const[n.output[0]] = numpy_helper.to_array(a.t)
        self.inputs = [i.name for i in g.input if i.name not in self.const]
        self.outputs = [o.name for o in g.output]

    def split_const(self, node: Any) -> tuple[str, npt.NDArray[Any]] | None:
        """(variable input, constant input) of a binary node with one constant operand."""
        if len(node.input) != 2:
            return None
        a, b = node.input
        if b in self.const and a not in self.const:
            return a, self.const[b]
        if a in self.const and b not in self.const:
            return b, self.const[a]
        return None


def _all_inputs(node: Any) -> Iterator[str]:
    """A node's inputs including names its subgraphs (If/Loop bodies) read from outside."""
    yield from (i for i in node.input if i)
    for a in node.attribute:
        for sub in [a.g] if a.HasField("g") else list(a.graphs):
            local = {o for n in sub.node for o in n.output} | {i.name for i in sub.initializer}
            for n in sub.node:
                for name in _all_inputs(n):
                    if name not in local:
                        yield name


def _expect(graph: Graph, tensor: str, op: str, what: str) -> tuple[Any, str, npt.NDArray[Any]]:
    node = graph.producer.get(tensor)
    found = "a graph input" if node is None else f"{node.op_type} {node.name!r}"
    if node is None or node.op_type != op or (parts := graph.split_const(node)) is None:
        raise ModelError(
            f"the FSQ bound is not Add->Tanh->Mul->Sub before Round: expected {op} with a "
            f"constant ({what}) but found {found} (hard-clamp or symmetry-preserving FSQ "
            "is not supported)"
        )
    return node, parts[0], parts[1]


def _feeds_from_bound(graph: Graph, tensor: str) -> bool:
    """Whether ``tensor`` is the output of a Sub(Mul(Tanh(Add(z, c)), c), c) bound."""
    node = graph.producer.get(tensor)
    for op in ("Sub", "Mul"):
        parts = graph.split_const(node) if node is not None and node.op_type == op else None
        if parts is None:
            return False
        node = graph.producer.get(parts[0])
    if node is None or node.op_type != "Tanh":
        return False
    add = graph.producer.get(node.input[0])
    return add is not None and add.op_type == "Add" and graph.split_const(add) is not None


def _fsq_round(graph: Graph) -> Any:
    """The Round of the one FSQ. vector-quantize-pytorch rounds a second time when the model
    returns indices (``(zhat * basis).sum().round()``): that Round comes after the FSQ's
    and is fine; a second Round fed by its own bound is a second FSQ and is refused."""
    rounds = [n for n in graph.nodes if n.op_type == "Round"]
    if not rounds:
        raise ModelError("the model has no Round node: is it a full FSQ model?")
    bound = [n for n in rounds if _feeds_from_bound(graph, n.input[0])]
    if len(bound) > 1:
        names = ", ".join(n.name for n in bound)
        raise ModelError(
            f"the model has {len(bound)} FSQ bounds feeding Round ({names}); fsqd handles one FSQ"
        )
    if not bound:
        if len(rounds) == 1:
            return rounds[0]  # let the bound check below say what it found instead
        names = ", ".join(n.name for n in rounds)
        raise ModelError(
            f"none of the {len(rounds)} Round nodes ({names}) is fed by an FSQ bound "
            "Add->Tanh->Mul->Sub"
        )
    fsq = bound[0]
    for other in rounds:
        if other is not fsq and not _reaches(graph, fsq.output[0], other.input[0]):
            raise ModelError(
                f"Round {other.name!r} does not follow the FSQ's Round {fsq.name!r} (it is not "
                "the index computation): fsqd handles one FSQ"
            )
    return fsq


def find_fsq(graph: Graph) -> FsqSite:
    rnd = _fsq_round(graph)
    bounded = rnd.input[0]
    sub, mul_out, offset = _expect(graph, bounded, "Sub", "offset")
    _, tanh_out, half_l = _expect(graph, mul_out, "Mul", "half_l")
    tanh = graph.producer.get(tanh_out)
    if tanh is None or tanh.op_type != "Tanh":
        raise ModelError("the FSQ bound is not Add->Tanh->Mul->Sub before Round: no Tanh found")
    _, projection, shift = _expect(graph, tanh.input[0], "Add", "shift")

    half_l = np.asarray(half_l, np.float32).reshape(-1)
    offset = np.broadcast_to(np.asarray(offset, np.float32).reshape(-1), half_l.shape)
    shift = np.broadcast_to(np.asarray(shift, np.float32).reshape(-1), half_l.shape)
    levels = np.rint(half_l.astype(np.float64) * 2 / 1.001 + 1).astype(np.int64)
    expect_half_l = (levels - 1).astype(np.float32) * np.float32(1.001) / np.float32(2)
    expect_offset = np.where(levels % 2 == 0, 0.5, 0.0).astype(np.float32)
    if not (
        np.allclose(half_l, expect_half_l, rtol=1e-6) and np.array_equal(offset, expect_offset)
    ):
        raise ModelError(
            f"the FSQ constants do not fit vector-quantize-pytorch's bound: half_l "
            f"{half_l.tolist()}, offset {offset.tolist()}"
        )
    return FsqSite(
        round_node=rnd.name,
        end_node=sub.name,
        bounded=bounded,
        projection=projection,
        codes=_find_codes(graph, rnd.output[0], levels),
        levels=tuple(int(v) for v in levels),
        half_l=tuple(float(v) for v in half_l),
        offset=tuple(float(v) for v in offset),
        shift=tuple(float(v) for v in shift),
    )


def _find_codes(graph: Graph, rounded: str, levels: npt.NDArray[np.int64]) -> str | None:
    """The Div by half_width a few steps after Round (after the straight-through Sub/Add)."""
    frontier, seen = [rounded], set()
    for _ in range(4):
        nxt = []
        for t in frontier:
            for n in graph.consumers.get(t, []):
                if n.name in seen:
                    continue
                seen.add(n.name)
                parts = graph.split_const(n)
                if n.op_type == "Div" and parts is not None:
                    hw = np.asarray(parts[1]).reshape(-1)
                    if np.array_equal(np.broadcast_to(hw, levels.shape), levels // 2):
                        return str(n.output[0])
                nxt.extend(n.output)
        frontier = nxt
    return None


# ONNX element types of float tensors (FLOAT, FLOAT16, DOUBLE, BFLOAT16).
_FLOAT_TYPES = frozenset({1, 10, 11, 16})


def _output_types(graph: Graph) -> dict[str, int]:
    return {o.name: o.type.tensor_type.elem_type for o in graph.model.graph.output}


def code_aliases(graph: Graph, codes: str) -> set[str]:
    """``codes`` and every tensor that only reshapes, casts or squeezes it."""
    out, stack = {codes}, [codes]
    while stack:
        t = stack.pop()
        for n in graph.consumers.get(t, []):
            if n.op_type in _PASS_THROUGH:
                for o in n.output:
                    if o not in out:
                        out.add(o)
                        stack.append(o)
    return out


def head_candidates(graph: Graph, codes: str) -> list[str]:
    """Float graph outputs computed from the codes (not the codes themselves)."""
    types = _output_types(graph)
    aliases = code_aliases(graph, codes)
    return [
        o
        for o in graph.outputs
        if types.get(o) in _FLOAT_TYPES and o not in aliases and _reaches(graph, codes, o)
    ]


def index_outputs(graph: Graph, codes: str) -> list[str]:
    """Integer graph outputs computed from the codes (FSQ's codebook indices)."""
    types = _output_types(graph)
    return [
        o for o in graph.outputs if types.get(o) not in _FLOAT_TYPES and _reaches(graph, codes, o)
    ]


def _ancestors(graph: Graph, tensor: str) -> set[str]:
    """Every tensor ``tensor`` is computed from (through subgraph reads too)."""
    out, stack = {tensor}, [tensor]
    while stack:
        node = graph.producer.get(stack.pop())
        if node is None:
            continue
        for name in _all_inputs(node):
            if name not in out:
                out.add(name)
                stack.append(name)
    return out


def find_head(graph: Graph, codes: str, head_output: str | None = None) -> tuple[str, str] | None:
    """(head input tensor, head output), or None when no float output follows the codes.

    The head is the compute that leads from the codes to a float output, whatever else the
    graph returns (the codes, FSQ's integer indices, a softmax of the logits). Walking from
    zhat through reshapes, casts and the conditional squeeze along the path to that output,
    the tensor the first compute node reads is the head's input.
    """
    candidates = head_candidates(graph, codes)
    if head_output is not None:
        if head_output not in candidates:
            found = ", ".join(candidates) or "none"
            raise ModelError(
                f"--head-output {head_output!r} is not a float output computed from the FSQ "
                f"codes; those are: {found}"
            )
        head_out = head_output
    elif not candidates:
        return None
    elif len(candidates) > 1:
        raise ModelError(
            f"several float outputs follow the FSQ codes ({', '.join(candidates)}): pass "
            "--head-output NAME to say which one is the classifier head"
        )
    else:
        head_out = candidates[0]
    on_path = _ancestors(graph, head_out)
    current = codes
    for _ in range(16):
        data = [
            n
            for n in graph.consumers.get(current, [])
            if n.op_type != "Shape" and any(o in on_path for o in n.output)
        ]
        movers = [n for n in data if n.op_type in _PASS_THROUGH]
        if len(data) > len(movers):
            return current, head_out
        if len(movers) != 1:
            break
        current = movers[0].output[0]
    raise ModelError(f"cannot follow the FSQ codes {codes!r} to the head output {head_out!r}")


def _reaches(graph: Graph, src: str, dst: str) -> bool:
    stack, seen = [src], set()
    while stack:
        t = stack.pop()
        if t == dst:
            return True
        for n in graph.consumers.get(t, []):
            for o in n.output:
                if o not in seen:
                    seen.add(o)
                    stack.append(o)
    return False


def extract(model: Any, inputs: list[str], outputs: list[str]) -> Any:
    """Cut a subgraph. ``onnx.utils.extract_model`` runs a checker that rejects these cuts;
    shape inference followed by ``onnx.utils.Extractor`` does not."""
    import onnx
    from onnx.utils import Extractor

    inferred = onnx.shape_inference.infer_shapes(model)
    ex = Extractor(inferred)
    # onnx renamed this map (vimap -> value_infos); tensors shape inference gave up on
    # (such as an If's output) need an entry before they can become graph inputs/outputs.
    infos = ex.value_infos if hasattr(ex, "value_infos") else ex.vimap  # type: ignore[attr-defined]
    for name in inputs + outputs:
        if name not in infos:
            infos[name] = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
    return ex.extract_model(inputs, outputs)


def rename_input(model: Any, old: str, new: str, width: int) -> None:
    """Rename a graph input to ``new`` with shape (batch, width), float32."""
    import onnx

    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new
    del model.graph.input[:]
    model.graph.input.append(
        onnx.helper.make_tensor_value_info(new, onnx.TensorProto.FLOAT, ["batch", width])
    )

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


def find_fsq(graph: Graph) -> FsqSite:
    rounds = [n for n in graph.nodes if n.op_type == "Round"]
    if not rounds:
        raise ModelError("the model has no Round node: is it a full FSQ model?")
    if len(rounds) > 1:
        names = ", ".join(n.name for n in rounds)
        raise ModelError(f"the model has {len(rounds)} Round nodes ({names}); fsqd handles one FSQ")
    rnd = rounds[0]
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


def find_head_input(graph: Graph, codes: str) -> tuple[str, str] | None:
    """(head input tensor, head output) or None when the codes reach an output untouched.

    Walks from zhat through reshapes, casts and the conditional squeeze to the first
    compute node (the head's first Gemm); the tensor it reads is the head's input.
    """
    current = codes
    for _ in range(16):
        if current in graph.outputs:
            return None
        data = [n for n in graph.consumers.get(current, []) if n.op_type != "Shape"]
        movers = [n for n in data if n.op_type in _PASS_THROUGH]
        compute = [n for n in data if n.op_type not in _PASS_THROUGH]
        if compute:
            head_outputs = [o for o in graph.outputs if _reaches(graph, current, o)]
            if len(head_outputs) != 1:
                raise ModelError(f"expected one head output after the FSQ, found {head_outputs}")
            return current, head_outputs[0]
        if len(movers) != 1:
            break
        current = movers[0].output[0]
    raise ModelError(f"cannot follow the FSQ codes {codes!r} to a classifier head or an output")


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

"""engine's graph IR: plain Python objects, no onnx protobufs.

The loader (`engine.loader`) turns an onnx.ModelProto into a `Graph`; everything after it (checks, passes,
planning, execution) works on these objects only.

- A value is named by a string; "" stands for an absent optional input or output (ONNX convention).
- `TensorType.shape` is None for an unknown rank, else a tuple whose dims are an int (fixed), a str
  (symbolic: "batch", "seq") or None (unknown).
- Constants (initializers and Constant nodes folded at load) live in `Graph.constants` as numpy arrays.
- Attributes are already Python values: int, float, bytes/str, numpy arrays (tensors), lists of those, and
  `Graph` for subgraph attributes (If, Loop, Scan).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorType:
    """dtype (numpy dtype, or None when unknown) and shape (see module docstring). `kind` is "tensor",
    "sequence", "optional" or "map"; for a sequence/optional, dtype/shape describe the element tensor."""

    dtype: np.dtype | None = None
    shape: tuple | None = None
    kind: str = "tensor"

    def __str__(self) -> str:
        dt = "?" if self.dtype is None else np.dtype(self.dtype).name
        sh = "[?]" if self.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"
        s = f"{dt}{sh}"
        return s if self.kind == "tensor" else f"{self.kind}({s})"


@dataclass
class Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""
    # the opset the node was written for when it differs from its graph's: nodes expanded from a function
    # body keep the opset of that function
    opset: int | None = None

    def label(self) -> str:
        """How errors name this node: its name if it has one, else op type and first output."""
        if self.name:
            return f"{self.name!r} ({self.op_type})"
        return f"{self.op_type} -> {self.outputs[0] if self.outputs else '?'}"


@dataclass
class ValueInfo:
    name: str
    type: TensorType


@dataclass
class Graph:
    name: str
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    nodes: list[Node]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    # Inputs that also have an initializer (IR < 4 style): optional, the initializer is their default.
    input_defaults: dict[str, np.ndarray] = field(default_factory=dict)
    # Types of intermediate values, from shape inference at load (may be incomplete).
    value_types: dict[str, TensorType] = field(default_factory=dict)
    # domain -> opset version ("" is the default ONNX domain); a subgraph shares its model's.
    opsets: dict[str, int] = field(default_factory=dict)

    def type_of(self, name: str) -> TensorType | None:
        t = self.value_types.get(name)
        if t is not None:
            return t
        for v in self.inputs:
            if v.name == name:
                return v.type
        for v in self.outputs:
            if v.name == name:
                return v.type
        c = self.constants.get(name)
        if isinstance(c, np.ndarray):
            return TensorType(c.dtype, c.shape)
        return None

    def outer_names(self) -> list[str]:
        """Names this graph (or its nested subgraphs) reads without defining them: values captured from
        the enclosing scope, in first-use order."""
        defined = {v.name for v in self.inputs} | set(self.constants) | set(self.input_defaults) | {""}
        seen: dict[str, None] = {}
        for node in self.nodes:
            for n in node.inputs:
                if n not in defined:
                    seen.setdefault(n, None)
            for a in node.attrs.values():
                for g in (a if isinstance(a, list) else [a]):
                    if isinstance(g, Graph):
                        for n in g.outer_names():
                            if n not in defined:
                                seen.setdefault(n, None)
            defined.update(node.outputs)
        for v in self.outputs:
            if v.name not in defined:
                seen.setdefault(v.name, None)
        return list(seen)

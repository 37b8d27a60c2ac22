"""The op registry: how an ONNX op becomes a function the executor calls.

An op implementation is a *builder*, registered for one or more op types:

    @register("LeakyRelu", shape_inputs=())
    def leaky_relu(ctx: NodeCtx):
        alpha = ctx.attr("alpha", 0.01)          # attributes are read once, at load
        def run(x):
            return (np.where(x >= 0, x, x * x.dtype.type(alpha)),)
        return run

The builder runs once per node when a Session is created. It reads attributes, checks what it can (raising
`Unsupported` with a reason for an attribute value, dtype or version it cannot handle: the checker reports every
such node at once) and returns `run(*inputs) -> tuple of outputs`.

Rules for `run`:
- It receives one argument per node input, `None` for an absent optional input (name ""), then, for ops with
  subgraph attributes, the values the subgraphs capture from the outer scope (see `NodeCtx.subgraph`).
- It returns a tuple (or list) with exactly one entry per node output (`None` for an optional output whose
  name is "" is fine). Entries are numpy arrays of the exact ONNX dtype and shape (0-d arrays for scalars;
  a numpy scalar is accepted too), Python lists for sequence values, None for an empty optional.
- It never writes into its inputs (they may be the caller's arrays or the model's read-only weights); an output
  may be a view of an input.
- It keeps no state between calls that depends on the data, and is safe to call from several threads at once.

`shape_inputs` tells the planner how output shapes depend on inputs (used to pre-compute shape subgraphs once
per input-shape signature):
- `()`: output shapes depend only on the input *shapes* and attributes (Add, Conv, MatMul, Transpose, Gather...);
- `(1,)` etc.: they also depend on the *values* of these inputs (Reshape's shape, Slice's starts/ends...);
- `None` (the default, the safe choice): they may depend on any input's values (NonZero, If, Loop...).
`shape_only=True` marks ops whose output values depend only on input shapes (Shape, Size).
`nondeterministic=True` marks ops that must never be folded (random generators).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from engine.ir import Graph, Node, TensorType

_REQUIRED = object()


class Unsupported(Exception):
    """Raised by a builder for a node it cannot run (the message is the reason)."""


@dataclass
class OpDef:
    op_type: str
    domain: str
    build: Callable
    shape_inputs: tuple | None
    shape_only: bool
    nondeterministic: bool
    since: int


REGISTRY: dict[tuple[str, str], OpDef] = {}


def register(*op_types: str, domain: str = "", shape_inputs: tuple | None = None, shape_only: bool = False,
             nondeterministic: bool = False, since: int = 1):
    """Registers a builder for `op_types` (all versions from `since`; the builder checks `ctx.version`)."""
    def deco(build):
        for op in op_types:
            key = (domain, op)
            if key in REGISTRY:
                raise RuntimeError(f"op {domain or 'ai.onnx'}::{op} registered twice")
            REGISTRY[key] = OpDef(op, domain, build, None if shape_inputs is None else tuple(shape_inputs),
                                  shape_only, nondeterministic, since)
        return build
    return deco


def lookup(domain: str, op_type: str) -> OpDef | None:
    return REGISTRY.get(("" if domain == "ai.onnx" else domain, op_type))


_schema_cache: dict = {}


def schema_version(op_type: str, opset: int, domain: str = "") -> int | None:
    """The since_version of the op's schema in effect at `opset` (None if onnx knows no such op)."""
    key = (op_type, opset, domain)
    if key not in _schema_cache:
        import onnx.defs

        try:
            _schema_cache[key] = onnx.defs.get_schema(op_type, opset, domain).since_version
        except Exception:
            _schema_cache[key] = None
    return _schema_cache[key]


class NodeCtx:
    """What a builder sees of its node: attributes, versions, constant inputs and known types."""

    def __init__(self, node: Node, graph: Graph, opset: int, version: int | None, constants: dict,
                 compile_subgraph: Callable | None = None):
        self.node = node
        self.graph = graph
        self.op_type = node.op_type
        self.domain = node.domain
        self.name = node.name
        self.opset = opset                   # the model's opset for this domain
        self.version = version or opset      # since_version of the schema in effect
        self.inputs = node.inputs
        self.outputs = node.outputs
        self._constants = constants
        self._compile_subgraph = compile_subgraph
        self.outer_names: list[str] = []     # filled by subgraph(): extra run() arguments, in this order

    # attributes
    def attr(self, name: str, default: Any = _REQUIRED) -> Any:
        v = self.node.attrs.get(name, _REQUIRED)
        if v is _REQUIRED:
            if default is _REQUIRED:
                raise Unsupported(f"required attribute {name!r} is missing")
            return default
        return v

    def has_attr(self, name: str) -> bool:
        return name in self.node.attrs

    def attr_str(self, name: str, default: str | None = None) -> str | None:
        v = self.attr(name, default)
        return v.decode() if isinstance(v, bytes) else v

    # inputs and outputs
    @property
    def n_inputs(self) -> int:
        return len(self.node.inputs)

    @property
    def n_outputs(self) -> int:
        return len(self.node.outputs)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] != ""

    def has_output(self, i: int) -> bool:
        return i < len(self.node.outputs) and self.node.outputs[i] != ""

    def const(self, i: int) -> np.ndarray | None:
        """The value of input i if it is known at load (initializer or folded constant), else None."""
        if not self.has_input(i):
            return None
        return self._constants.get(self.node.inputs[i])

    def in_type(self, i: int) -> TensorType | None:
        if not self.has_input(i):
            return None
        return self.graph.type_of(self.node.inputs[i])

    def in_dtype(self, i: int) -> np.dtype | None:
        t = self.in_type(i)
        return None if t is None else t.dtype

    def out_type(self, i: int) -> TensorType | None:
        if not self.has_output(i):
            return None
        return self.graph.type_of(self.node.outputs[i])

    def subgraph(self, attr_name: str):
        """A subgraph attribute compiled for execution: `sg.run(inputs: list, outer: list) -> list`, where
        `outer` are the values named by `sg.outer_names`. The executor passes every outer value any subgraph of
        this node needs as extra run() arguments, in the order of `ctx.outer_names`; `sg.outer_index` gives each
        of this subgraph's outer names' position in that list."""
        g = self.attr(attr_name)
        if not isinstance(g, Graph):
            raise Unsupported(f"attribute {attr_name!r} is not a graph")
        if self._compile_subgraph is None:
            raise Unsupported("subgraphs cannot be compiled here")
        sg = self._compile_subgraph(g)
        idx = []
        for n in sg.outer_names:
            if n not in self.outer_names:
                self.outer_names.append(n)
            idx.append(self.outer_names.index(n))
        sg.outer_index = idx
        return sg

    def unsupported(self, why: str):
        raise Unsupported(why)

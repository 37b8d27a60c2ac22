"""Sessions: load a model once, check it, optimise it, plan it, run it many times.

Pipeline (all at Session creation, none of it per run):
1. `engine.loader.load`: protobuf -> `engine.ir.Graph` (weights as zero-copy arrays, function ops expanded,
   types inferred with symbolic dims).
2. check: every node's op, version and attributes go through its builder (`engine.ops`); every problem of
   every node is collected and raised at once (`UnsupportedModelError`, or `engine.check` returns the list).
3. passes: topological order, dead-node elimination, constant folding (nodes whose inputs are all constants
   run once here and become constants).
4. plan: values get integer slots; a step is (run function, input slots, output slots); each step is
   followed by the slots whose last reader it was, so intermediate arrays are released as soon as possible.

Per input-shape signature (the dtypes and shapes of the inputs), the first run also records which values
depend only on those shapes (Shape/Size and everything computed from them and from constants: the
Shape->Gather->Concat->Reshape chains that exporters write) and builds a specialised plan that starts with those
values pre-computed and skips their nodes. Later runs with the same signature reuse it: no re-planning.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from engine import ops as _ops  # noqa: F401  (registers the ops)
from engine._C._kernels import execute_plan as _execute_plan
from engine.errors import InvalidInputError, ModelLoadError, RunError, UnsupportedModelError
from engine.ir import Graph, Node, TensorType, ValueInfo
from engine.loader import load
from engine.passes import enabled_passes, run_passes
from engine.ops._registry import NodeCtx, OpDef, Unsupported, lookup, schema_version

_MAX_SIGNATURES = 32  # specialised plans kept per session (least recently used dropped)
_FOLD_MAX_BYTES = 64 << 20  # constant folding keeps results up to this size


@dataclass
class SessionOptions:
    """Knobs of a Session. `fold_constants`: run constant-only nodes once at load. `specialize_shapes`: per
    input-shape signature, pre-compute shape subgraphs. `passes`: which graph passes of `engine.passes` run
    (fusions, BatchNormalization folding). All default on; turning them off changes speed only."""

    fold_constants: bool = True
    specialize_shapes: bool = True
    # Graph passes (engine.passes): "all", "none", or a collection of names; ENGINE_DISABLE_PASSES removes some.
    passes: object = "all"
    # Passes added by later work read their switches from here too.
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a model: name, numpy dtype (None if unknown), shape (ints, str for symbolic
    dims, None for unknown dims; None if the rank is unknown). Also answers onnxruntime's NodeArg fields
    (`.type` as "tensor(float)")."""

    name: str
    dtype: np.dtype | None
    shape: tuple | None
    kind: str = "tensor"

    @property
    def type(self) -> str:
        from engine.loader import onnx_dtype
        import onnx

        if self.dtype is None:
            return f"{self.kind}(unknown)"
        name = onnx.helper.tensor_dtype_to_string(onnx_dtype(self.dtype)).replace("TensorProto.", "").lower()
        name = {"float": "float", "double": "double"}.get(name, name)
        return f"{self.kind}({name})"


@dataclass(frozen=True)
class Problem:
    """One reason a model cannot run: the node, its op, and why."""

    node: str
    op_type: str
    domain: str
    version: int | None
    reason: str

    def __str__(self) -> str:
        dom = f"{self.domain}::" if self.domain else ""
        ver = f" (opset {self.version})" if self.version else ""
        return f"node {self.node}: {dom}{self.op_type}{ver}: {self.reason}"


class _Step:
    __slots__ = ("fn", "ins", "outs", "node", "opdef", "in_names")

    def __init__(self, fn, ins, outs, node, opdef, in_names):
        self.fn, self.ins, self.outs, self.node, self.opdef = fn, ins, outs, node, opdef
        self.in_names = in_names


class _Plan:
    """A compiled graph: slots, steps, constants. Used for the main graph and for subgraphs (whose extra
    inputs are the outer values they capture)."""

    def __init__(self, graph: Graph, options: SessionOptions, problems: list, outer_names: Sequence[str] = ()):
        self.graph = graph
        self.options = options
        self.outer_names = list(outer_names)
        self.outer_index: list[int] = []
        self.slots: dict[str, int] = {}
        consts: dict[str, Any] = dict(graph.constants)
        self.input_names = [v.name for v in graph.inputs]
        for n in self.input_names + self.outer_names:
            self._slot(n)
        nodes = _toposort(graph, set(self.input_names) | set(self.outer_names) | set(consts) |
                          set(graph.input_defaults))
        nodes = _live_nodes(nodes, [v.name for v in graph.outputs])
        steps: list[_Step] = []
        for node in nodes:
            step = self._build(node, consts, problems)
            if step is None:
                continue
            if options.fold_constants and self._foldable(step, consts):
                if self._fold(step, consts, problems):
                    continue
            steps.append(step)
        self.consts = consts
        for name in list(consts) + list(graph.input_defaults):
            self._slot(name)
        self.output_names = [v.name for v in graph.outputs]
        produced = {o for nd in graph.nodes for o in nd.outputs}
        for n in self.output_names:
            if n not in self.slots and n not in produced:
                problems.append(Problem("(graph)", "", "", None, f"graph output {n!r} is produced by no node"))
            self._slot(n)
        self.nslots = len(self.slots)
        self.template = [None] * self.nslots
        for name, v in consts.items():
            self.template[self.slots[name]] = v
        self.input_slots = [self.slots[n] for n in self.input_names]
        self.default_slots = {self.slots[n]: v for n, v in graph.input_defaults.items()}
        self.outer_slots = [self.slots[n] for n in self.outer_names]
        self.output_slots = [self.slots[n] for n in self.output_names]
        self.steps = steps
        self.program = self._program(steps, keep=set(self.output_slots))
        self._specialized: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def _slot(self, name: str) -> int:
        s = self.slots.get(name)
        if s is None:
            s = self.slots[name] = len(self.slots)
        return s

    def _build(self, node: Node, consts: dict, problems: list) -> _Step | None:
        opset = node.opset or self.graph.opsets.get(node.domain)
        if opset is None:
            problems.append(Problem(node.label(), node.op_type, node.domain, None,
                                    f"the model imports no version of operator set {node.domain or 'ai.onnx'!r}"))
            return None
        opdef = lookup(node.domain, node.op_type)
        version = schema_version(node.op_type, opset, node.domain) if node.domain in ("", "ai.onnx.ml") else None
        if opdef is None:
            if node.domain not in ("", "ai.onnx", "ai.onnx.ml") or version is not None:
                why = "op not implemented by engine"
            else:
                why = f"no such op in ONNX opset {opset}"
            problems.append(Problem(node.label(), node.op_type, node.domain, opset, why))
            return None
        if node.domain == "" and version is None:
            problems.append(Problem(node.label(), node.op_type, node.domain, opset,
                                    f"op not defined in ONNX opset {opset}"))
            return None
        ctx = NodeCtx(node, self.graph, opset, version, consts, self._compile_subgraph(problems))
        try:
            fn = opdef.build(ctx)
        except Unsupported as e:
            problems.append(Problem(node.label(), node.op_type, node.domain, opset, str(e)))
            return None
        except (ValueError, TypeError, KeyError, IndexError) as e:  # a malformed attribute
            problems.append(Problem(node.label(), node.op_type, node.domain, opset, f"{type(e).__name__}: {e}"))
            return None
        ins = [self._slot(n) if n else -1 for n in node.inputs] + [self._slot(n) for n in ctx.outer_names]
        outs = [self._slot(n) if n else -1 for n in node.outputs]
        return _Step(fn, tuple(ins), tuple(outs), node, opdef, list(node.inputs) + list(ctx.outer_names))

    def _compile_subgraph(self, problems: list):
        def compile_(g: Graph) -> _Plan:
            g.opsets = g.opsets or self.graph.opsets
            if not g.opsets:
                g.opsets = self.graph.opsets
            return _Plan(g, self.options, problems, outer_names=g.outer_names())
        return compile_

    def _foldable(self, step: _Step, consts: dict) -> bool:
        if step.opdef.nondeterministic:
            return False
        return all(n in consts for n in step.in_names if n)

    def _fold(self, step: _Step, consts: dict, problems: list) -> bool:
        args = [consts[n] if n else None for n in step.in_names]
        try:
            res = step.fn(*args)
        except Exception as e:
            problems.append(Problem(step.node.label(), step.node.op_type, step.node.domain, None,
                                    f"fails on its constant inputs: {type(e).__name__}: {e}"))
            return True
        res = list(res)
        if any(isinstance(r, np.ndarray) and r.nbytes > _FOLD_MAX_BYTES for r in res):
            return False
        for name, r in zip(step.node.outputs, res):
            if name:
                if isinstance(r, (np.ndarray, np.generic)):
                    r = np.asarray(r)
                    r.flags.writeable = False
                consts[name] = r
        return True

    @staticmethod
    def _program(steps: list[_Step], keep: set) -> list[tuple]:
        """(fn, input slots, output slots, slots to release after) per step."""
        last: dict[int, int] = {}
        for i, st in enumerate(steps):
            for s in st.ins:
                if s >= 0:
                    last[s] = i
            for s in st.outs:
                if s >= 0:
                    last.setdefault(s, i)
        frees: list[list[int]] = [[] for _ in steps]
        for s, i in last.items():
            if s not in keep:
                frees[i].append(s)
        return [(st.fn, st.ins, st.outs, tuple(frees[i]), st) for i, st in enumerate(steps)]

    # ------------------------------------------------------------------------------------------ execution
    @staticmethod
    def execute(env: list, program: list) -> None:
        try:
            with np.errstate(all="ignore"):  # ONNX semantics: 1/0 is inf, log(0) is -inf, no warnings
                _execute_plan(env, program)
        except (RunError, InvalidInputError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as e:
            i = getattr(e, "_engine_step", None)
            if i is None or not 0 <= i < len(program):
                raise
            node = program[i][4].node
            raise RunError(f"node {node.label()} failed: {type(e).__name__}: {e}") from e

    def run(self, values: list, outer: Sequence = ()) -> list:
        """Runs with inputs in graph-input order (subgraph use): returns the outputs in order."""
        env = list(self.template)
        for s, v in zip(self.input_slots, values):
            env[s] = v
        for s, v in self.default_slots.items():
            if env[s] is None:
                env[s] = v
        for s, v in zip(self.outer_slots, outer):
            env[s] = v
        self.execute(env, self.program)
        return [env[s] for s in self.output_slots]

    # ----------------------------------------------------------------------------- per-signature plans
    def specialized(self, sig, env: list) -> tuple[list, list]:
        """(template, program) for this input signature; builds them on first sight by running the generic
        program once with shape tracking. `env` holds the inputs; on a first sight it is run through and the
        outputs are left in it (the caller then reads them)."""
        with self._lock:
            hit = self._specialized.get(sig)
            if hit is not None:
                self._specialized.move_to_end(sig)
                return hit
        static_val = {s for s, v in enumerate(self.template) if v is not None}
        static_shape = set(static_val) | set(self.input_slots) | set(self.default_slots)
        folded: list[int] = []
        for st in self.steps:
            ins = [s for s in st.ins if s >= 0]
            od = st.opdef
            if od.nondeterministic:
                continue
            if all(s in static_val for s in ins) or (od.shape_only and all(s in static_shape for s in ins)):
                folded.append(id(st))
                static_val.update(s for s in st.outs if s >= 0)
                static_shape.update(s for s in st.outs if s >= 0)
            elif od.shape_inputs is not None and all(s in static_shape for s in ins) and all(
                    st.ins[i] in static_val for i in od.shape_inputs if i < len(st.ins) and st.ins[i] >= 0):
                static_shape.update(s for s in st.outs if s >= 0)
        folded_ids = set(folded)
        keep_outs = {s for st in self.steps if id(st) in folded_ids for s in st.outs if s >= 0}
        # run everything once, keeping the folded values alive
        program = self._program(self.steps, keep=set(self.output_slots) | keep_outs)
        self.execute(env, program)
        template = list(self.template)
        for s in keep_outs:
            v = env[s]
            if isinstance(v, np.ndarray):
                v = v.copy() if v.flags.writeable and v.base is not None else v
                v.flags.writeable = False  # reused by every run: outputs read from it are copied (Session._run)
            template[s] = v
        rest = [st for st in self.steps if id(st) not in folded_ids]
        spec = (template, self._program(rest, keep=set(self.output_slots)))
        with self._lock:
            self._specialized[sig] = spec
            while len(self._specialized) > _MAX_SIGNATURES:
                self._specialized.popitem(last=False)
        return None  # type: ignore[return-value]  # first sight: env already holds the results


def _toposort(graph: Graph, available: set) -> list[Node]:
    """Nodes in an order where each runs after its producers (exporters sometimes write them unsorted)."""
    produced = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs if o}
    avail = set(available) | {""}
    order: list[Node] = []
    done = [False] * len(graph.nodes)
    state = [0] * len(graph.nodes)  # 0 new, 1 visiting, 2 done

    def deps(n: Node) -> list[str]:
        d = list(n.inputs)
        for a in n.attrs.values():
            for g in (a if isinstance(a, list) else [a]):
                if isinstance(g, Graph):
                    d.extend(g.outer_names())
        return d

    for start in range(len(graph.nodes)):
        if state[start]:
            continue
        stack = [(start, iter(deps(graph.nodes[start])))]
        state[start] = 1
        while stack:
            idx, it = stack[-1]
            for name in it:
                if name in avail:
                    continue
                p = produced.get(name)
                if p is None:
                    avail.add(name)  # undefined: reported below if a live node needs it
                    continue
                if state[p] == 1:
                    raise ModelLoadError(f"the graph has a cycle through value {name!r}")
                if state[p] == 0:
                    state[p] = 1
                    stack.append((p, iter(deps(graph.nodes[p]))))
                    break
            else:
                stack.pop()
                state[idx] = 2
                done[idx] = True
                order.append(graph.nodes[idx])
    known = set(available) | {""} | {o for n in graph.nodes for o in n.outputs}
    for n in order:
        for name in deps(n):
            if name not in known:
                raise ModelLoadError(f"node {n.label()} reads {name!r}, which is no input, initializer or node "
                                     f"output of graph {graph.name!r}")
    return order


def _live_nodes(nodes: list[Node], outputs: list[str]) -> list[Node]:
    """Drops nodes none of whose outputs reach a graph output (dead-node elimination)."""
    need = set(outputs)
    live = []
    for n in reversed(nodes):
        if any(o in need for o in n.outputs if o):
            live.append(n)
            need.update(n.inputs)
            for a in n.attrs.values():
                for g in (a if isinstance(a, list) else [a]):
                    if isinstance(g, Graph):
                        need.update(g.outer_names())
    live.reverse()
    return live


def _supported(domain: str, op_type: str, opset: int) -> bool:
    return lookup(domain, op_type) is not None


# ---------------------------------------------------------------------------------------------- public API
def _compile(model, options: SessionOptions | None) -> tuple[_Plan, dict, list]:
    options = options or SessionOptions()
    graph, meta = load(model, supported=_supported)
    run_passes(graph, enabled_passes(options.passes))
    problems: list[Problem] = []
    plan = _Plan(graph, options, problems)
    return plan, meta, problems


def check(model) -> list[Problem]:
    """Every problem that stops `model` from running on engine (unsupported op, version, attribute or dtype),
    all at once, without running it. An empty list means the model is supported. Load errors (corrupt
    file) still raise."""
    _, _, problems = _compile(model, SessionOptions(passes="none"))  # report the ops the user wrote
    return problems


class Session:
    """A loaded, checked and planned model.

    `run(inputs, output_names=None) -> dict` takes a dict {name: array}, a list in input order, or a single
    array for a one-input model. The onnxruntime form `run(output_names_or_None, input_feed_dict) -> list`
    works too, as do `get_inputs()` / `get_outputs()`, so `onnxruntime.InferenceSession(path)` can be replaced
    by `engine.Session(path)`. Thread-safe: several threads may call run() at once.
    """

    def __init__(self, model, options: SessionOptions | None = None, **kwargs):
        # kwargs: onnxruntime's sess_options/providers are accepted and ignored, for drop-in use
        unknown = set(kwargs) - {"providers", "sess_options", "provider_options"}
        if unknown:
            raise TypeError(f"Session() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        self.options = options if isinstance(options, SessionOptions) else SessionOptions()
        plan, meta, problems = _compile(model, self.options)
        if problems:
            raise UnsupportedModelError(problems)
        self._plan = plan
        self.metadata = meta
        g = plan.graph
        self.inputs = [TensorInfo(v.name, v.type.dtype, v.type.shape, v.type.kind) for v in g.inputs]
        self.outputs = [TensorInfo(v.name, v.type.dtype, v.type.shape, v.type.kind) for v in g.outputs]
        self._input_index = {v.name: i for i, v in enumerate(g.inputs)}
        # an input with a default (initializer) or of optional type may be left out
        self._required = [v.name for v in g.inputs if v.name not in g.input_defaults
                          and not v.type.kind.startswith("optional")]
        self._output_index = {n: i for i, n in enumerate(plan.output_names)}

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}: {_fmt(i)}" for i in self.inputs)
        outs = ", ".join(f"{o.name}: {_fmt(o)}" for o in self.outputs)
        return f"engine.Session(inputs=[{ins}], outputs=[{outs}], nodes={len(self._plan.steps)})"

    # onnxruntime-compatible metadata
    def get_inputs(self) -> list[TensorInfo]:
        return list(self.inputs)

    def get_outputs(self) -> list[TensorInfo]:
        return list(self.outputs)

    def get_modelmeta(self) -> dict:
        return dict(self.metadata)

    def run(self, inputs=None, output_names=None, run_options=None):
        # onnxruntime form: run(output_names (list of str or None), input_feed (dict)) -> list
        if isinstance(output_names, dict) and (inputs is None or _is_name_list(inputs)):
            names = list(inputs) if inputs is not None else None
            res = self._run(output_names, names)
            return [res[n] for n in (names or self._plan.output_names)]
        if run_options is not None:
            raise TypeError("run(): unexpected third argument (run_options is only valid in the onnxruntime form "
                            "run(output_names, input_feed))")
        return self._run(inputs, output_names)

    def _run(self, inputs, output_names) -> dict:
        values = self._bind(inputs)
        if output_names is not None:
            if isinstance(output_names, str):
                output_names = [output_names]
            for n in output_names:
                if n not in self._output_index:
                    raise InvalidInputError(f"unknown output name {n!r}; the model's outputs are "
                                            f"{list(self._output_index)}")
        plan = self._plan
        env = list(plan.template)
        sig = []
        for s, v in zip(plan.input_slots, values):
            env[s] = v
            sig.append((v.dtype.num, v.shape) if isinstance(v, np.ndarray) else None if v is None else False)
        for s, v in plan.default_slots.items():
            if env[s] is None:
                env[s] = v
        if self.options.specialize_shapes and False not in sig:  # sequences/optionals: no shape signature
            spec = plan.specialized(tuple(sig), env)
            if spec is not None:
                template, program = spec
                env2 = list(template)
                for s in plan.input_slots:
                    env2[s] = env[s]
                for s in plan.default_slots:
                    env2[s] = env[s]
                plan.execute(env2, program)
                env = env2
        else:
            plan.execute(env, plan.program)
        names = plan.output_names if output_names is None else list(output_names)
        out = {}
        roots: list | None = None  # memory roots of the inputs and of the outputs handed out so far
        for n in names:
            v = env[plan.slots[n]]
            if isinstance(v, (np.ndarray, np.generic)):
                v = np.asarray(v)
                if not v.flags.writeable:
                    v = v.copy()  # never hand out the model's weights, a reused constant or a broadcast view
                else:
                    # an output that is (a view of) an input (Identity, Reshape/Squeeze views, dropped Identity
                    # nodes) or that overlaps another output is copied: the caller may mutate either
                    if roots is None:
                        roots = [(_root(x), x) for x in values if isinstance(x, np.ndarray)]
                    r = _root(v)
                    for r2, x in roots:
                        if r is r2 and np.may_share_memory(v, x):
                            v = v.copy()
                            r = v
                            break
                    roots.append((r, v))
            out[n] = v
        return out

    def _bind(self, inputs) -> list:
        """Inputs (dict, list, or one array) -> list in graph-input order, validated."""
        infos = self.inputs
        if isinstance(inputs, dict):
            unknown = [k for k in inputs if k not in self._input_index]
            if unknown:
                raise InvalidInputError(f"unknown input name(s) {unknown}; the model's inputs are "
                                        f"{[i.name for i in infos]}")
            vals = [inputs.get(i.name) for i in infos]
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) > len(infos):
                raise InvalidInputError(f"got {len(inputs)} inputs, the model takes {len(infos)}: "
                                        f"{[i.name for i in infos]}")
            vals = list(inputs) + [None] * (len(infos) - len(inputs))
        elif inputs is None:
            vals = [None] * len(infos)
        else:
            if len(self._required) != 1 and len(infos) != 1:
                raise InvalidInputError(f"a single array was given but the model takes {len(infos)} inputs: "
                                        f"{[i.name for i in infos]}; pass a dict")
            vals = [inputs] + [None] * (len(infos) - 1)
        missing = [i.name for i, v in zip(infos, vals) if v is None and i.name in self._required]
        if missing:
            raise InvalidInputError(f"missing input(s) {missing}; the model's inputs are "
                                    f"{[f'{i.name}: {_fmt(i)}' for i in infos]}")
        dims: dict[str, tuple[int, str]] = {}
        out = []
        for info, v in zip(infos, vals):
            if v is None:
                out.append(None)
                continue
            out.append(_check_input(info, v, dims))
        return out


def _root(a: np.ndarray):
    """The object that owns `a`'s memory (the end of its chain of bases)."""
    b = a.base
    while b is not None:
        a = b
        b = getattr(b, "base", None)
    return a


def _is_name_list(x) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(n, str) for n in x)


def _fmt(info: TensorInfo) -> str:
    dt = "?" if info.dtype is None else np.dtype(info.dtype).name
    if info.shape is None:
        return f"{dt}[...]"
    return f"{dt}[{', '.join('?' if d is None else str(d) for d in info.shape)}]"


def _check_input(info: TensorInfo, v, dims: dict):
    if info.kind != "tensor":
        return v  # sequences / optionals: passed through as given
    if not isinstance(v, np.ndarray):
        if isinstance(v, (np.generic, int, float, bool, list, tuple)):
            v = np.asarray(v, dtype=info.dtype if info.dtype is not None and isinstance(v, (int, float, bool))
                           else None)
        else:
            raise InvalidInputError(f"input {info.name!r}: expected a numpy array, got {type(v).__name__}")
    if info.dtype is not None and v.dtype != info.dtype:
        if not (info.dtype == np.dtype(object) and v.dtype.kind in "UO"):
            raise InvalidInputError(f"input {info.name!r}: expected dtype {np.dtype(info.dtype).name}, got "
                                    f"{v.dtype.name}")
    if info.shape is not None:
        if v.ndim != len(info.shape):
            raise InvalidInputError(f"input {info.name!r}: expected rank {len(info.shape)} (shape "
                                    f"{_fmt(info)}), got rank {v.ndim} (shape {list(v.shape)})")
        for axis, (want, got) in enumerate(zip(info.shape, v.shape)):
            if isinstance(want, int) and want > 0 and want != got:
                raise InvalidInputError(f"input {info.name!r}: dimension {axis} must be {want} (shape "
                                        f"{_fmt(info)}), got {got} (shape {list(v.shape)})")
            if isinstance(want, str):
                prev = dims.get(want)
                if prev is not None and prev[0] != got:
                    raise InvalidInputError(f"input {info.name!r}: dimension {axis} ({want!r}) is {got}, but "
                                            f"input {prev[1]!r} gave {want!r} = {prev[0]}")
                dims.setdefault(want, (got, info.name))
    return v


def run(model, inputs=None, output_names=None, options: SessionOptions | None = None) -> dict:
    """One-shot: loads `model` (path, bytes or onnx.ModelProto), runs it on `inputs` (dict name -> array,
    list in input order, or one array) and returns {output name: array}. Use `Session` to run many times."""
    return Session(model, options).run(inputs, output_names)

"""Model loading: path, bytes or onnx.ModelProto -> `engine.ir.Graph`. The only module that touches protobufs.

- Initializers become numpy arrays without copying their bytes again: `raw_data` is viewed in place
  (np.frombuffer), external data files are memory-mapped (read-only) instead of read.
- Model-local functions are inlined; ops engine does not implement natively but that the ONNX spec defines as
  a function of other ops are expanded into those ops (as onnxruntime does).
- Shape and dtype inference (onnx's, with symbolic dims) runs on a copy stripped of large weights, so a big
  model is not serialised again; its results annotate `Graph.value_types`.
Every problem with the file is raised as `ModelLoadError` naming what was wrong, never a crash.
"""
from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from engine.errors import ModelLoadError
from engine.ir import Graph, Node, TensorType, ValueInfo

MAX_TENSOR_BYTES = 1 << 40  # a header claiming more than 1 TiB is corrupt or hostile
_SMALL_FOR_INFERENCE = 4096  # initializers up to this many elements stay in the copy used for inference


def np_dtype(elem_type: int) -> np.dtype:
    if elem_type == TensorProto.STRING:
        return np.dtype(object)
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception as e:
        raise ModelLoadError(f"unknown tensor element type {elem_type}") from e


def onnx_dtype(dt: np.dtype) -> int:
    dt = np.dtype(dt)
    if dt == object or dt.kind in "US":
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(dt)


# --------------------------------------------------------------------------------------------------- sources
def load_proto(model: Any) -> tuple[onnx.ModelProto, str | None]:
    """(ModelProto without external data loaded, directory external data is relative to)."""
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray, memoryview)):
        m = onnx.ModelProto()
        try:
            m.ParseFromString(bytes(model))
        except Exception as e:
            raise ModelLoadError(f"the bytes given are not a valid ONNX model ({type(e).__name__}: {e})") from e
        _check_nonempty(m, "the bytes given")
        return m, None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file not found: {path}")
        if os.path.isdir(path):
            raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
        try:
            m = onnx.load(path, load_external_data=False)
        except Exception as e:
            raise ModelLoadError(f"{path} is not a valid ONNX model (truncated or corrupt?): "
                                 f"{type(e).__name__}: {e}") from e
        _check_nonempty(m, path)
        return m, os.path.dirname(os.path.abspath(path))
    raise TypeError(f"model must be a path, bytes or onnx.ModelProto, got {type(model).__name__}")


def _check_nonempty(m: onnx.ModelProto, what: str) -> None:
    if not m.HasField("graph") or (len(m.graph.node) == 0 and len(m.graph.output) == 0):
        raise ModelLoadError(f"{what} holds no ONNX graph (empty or not an ONNX model)")


# --------------------------------------------------------------------------------------------------- tensors
class _ExternalFiles:
    """Memory-maps each external data file once (read-only; pages load on first touch)."""

    def __init__(self, base_dir: str | None):
        self.base_dir = base_dir
        self.maps: dict[str, mmap.mmap] = {}

    def view(self, t: TensorProto, dtype: np.dtype, count: int) -> np.ndarray:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location")
        if not loc:
            raise ModelLoadError(f"tensor {t.name!r}: external data without a location")
        if self.base_dir is None:
            raise ModelLoadError(f"tensor {t.name!r} is stored in an external file ({loc!r}) but the model was "
                                 "not given as a path; load it from its file so the data can be found")
        if os.path.isabs(loc) or ".." in loc.replace("\\", "/").split("/"):
            raise ModelLoadError(f"tensor {t.name!r}: external data location {loc!r} leaves the model's directory")
        path = os.path.join(self.base_dir, loc)
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else None
        except ValueError as e:
            raise ModelLoadError(f"tensor {t.name!r}: bad external data offset/length") from e
        mm = self.maps.get(path)
        if mm is None:
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            except OSError as e:
                raise ModelLoadError(f"tensor {t.name!r}: cannot open external data file {path}: {e}") from e
            self.maps[path] = mm
        nbytes = count * dtype.itemsize
        if length is not None and length != nbytes:
            raise ModelLoadError(f"tensor {t.name!r}: external data length {length} bytes, but its shape and "
                                 f"dtype need {nbytes}")
        if offset < 0 or offset + nbytes > len(mm):
            raise ModelLoadError(f"tensor {t.name!r}: external data [{offset}, {offset + nbytes}) runs past the "
                                 f"end of {path} ({len(mm)} bytes)")
        return np.frombuffer(mm, dtype=dtype, count=count, offset=offset)


def _dims(t: TensorProto) -> tuple[tuple[int, ...], int]:
    dims = tuple(int(d) for d in t.dims)
    count = 1
    for d in dims:
        if d < 0:
            raise ModelLoadError(f"tensor {t.name!r} has a negative dimension in {list(dims)}")
        count *= d
        if count > MAX_TENSOR_BYTES:
            raise ModelLoadError(f"tensor {t.name!r}: shape {list(dims)} is too large")
    return dims, count


_DIRECT = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT8, TensorProto.UINT8,
           TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64,
           TensorProto.UINT64, TensorProto.BOOL, TensorProto.COMPLEX64, TensorProto.COMPLEX128,
           TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2,
           TensorProto.FLOAT8E5M2FNUZ, TensorProto.FLOAT8E8M0}


def tensor_to_array(t: TensorProto, ext: _ExternalFiles | None = None) -> np.ndarray:
    """A TensorProto as a numpy array: a view of raw_data or of the mapped external file where possible."""
    dims, count = _dims(t)
    dtype = np_dtype(t.data_type)
    external = t.data_location == TensorProto.EXTERNAL
    if t.data_type in _DIRECT and (external or t.HasField("raw_data")) and np.little_endian:
        if external:
            arr = (ext or _ExternalFiles(None)).view(t, dtype, count)
        else:
            raw = t.raw_data
            if len(raw) != count * dtype.itemsize:
                raise ModelLoadError(f"tensor {t.name!r}: raw data has {len(raw)} bytes, shape {list(dims)} of "
                                     f"{dtype.name} needs {count * dtype.itemsize}")
            arr = np.frombuffer(raw, dtype=dtype, count=count)
        return arr.reshape(dims)
    if external:  # packed 4/2-bit types and the rare rest: let onnx read them
        raise ModelLoadError(f"tensor {t.name!r}: external data of type {TensorProto.DataType.Name(t.data_type)} "
                             "is not supported")
    try:
        arr = onnx.numpy_helper.to_array(t)
    except Exception as e:
        raise ModelLoadError(f"tensor {t.name!r} cannot be read: {e}") from e
    if arr.size != count:
        raise ModelLoadError(f"tensor {t.name!r}: holds {arr.size} values, shape {list(dims)} needs {count}")
    return arr.reshape(dims)


def sparse_to_array(s: onnx.SparseTensorProto) -> np.ndarray:
    values = tensor_to_array(s.values)
    idx = tensor_to_array(s.indices).astype(np.int64)
    dims = tuple(int(d) for d in s.dims)
    out = np.zeros(dims, dtype=values.dtype)
    flat = out.reshape(-1)
    if idx.ndim == 2:
        idx = np.ravel_multi_index(tuple(idx.T), dims) if idx.size else idx.reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= flat.size):
        raise ModelLoadError(f"sparse tensor {s.values.name!r}: index out of range")
    flat[idx.reshape(-1)] = values.reshape(-1)
    return out


# ----------------------------------------------------------------------------------------------------- types
def type_from_proto(tp: onnx.TypeProto) -> TensorType:
    which = tp.WhichOneof("value")
    if which == "tensor_type" or which == "sparse_tensor_type":
        tt = getattr(tp, which)
        dtype = np_dtype(tt.elem_type) if tt.elem_type else None
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        return TensorType(dtype, shape)
    if which in ("sequence_type", "optional_type"):
        inner = type_from_proto(getattr(tp, which).elem_type)
        kind = "sequence" if which == "sequence_type" else "optional"
        if inner.kind != "tensor":
            return TensorType(inner.dtype, inner.shape, f"{kind}({inner.kind})")
        return TensorType(inner.dtype, inner.shape, kind)
    if which == "map_type":
        return TensorType(None, None, "map")
    return TensorType()


def _value_info(vi: onnx.ValueInfoProto) -> ValueInfo:
    return ValueInfo(vi.name, type_from_proto(vi.type) if vi.HasField("type") else TensorType())


# ------------------------------------------------------------------------------------------- function expansion
def _schema(op_type: str, version: int, domain: str):
    try:
        return onnx.defs.get_schema(op_type, version, domain)
    except Exception:
        return None


def _expand_functions(graph: onnx.GraphProto, opsets: dict[str, int], supported, types: dict[str, onnx.TypeProto],
                      counter: list[int]) -> bool:
    """Replaces, in place, nodes whose op engine lacks but whose ONNX schema defines as a function. Returns
    whether anything changed."""
    new_nodes = []
    changed = False
    for node in graph.node:
        dom = "" if node.domain in ("", "ai.onnx") else node.domain
        if supported(dom, node.op_type, opsets.get(dom, 0)) or dom != "":
            new_nodes.append(node)
            continue
        opset = next((a.i for a in node.attribute if a.name == _OPSET_TAG), None) or opsets.get(dom, 0)
        body = _function_body(node, opset, types)
        if body is None:
            new_nodes.append(node)
            continue
        inlined = _inline(node, body, counter, _schema(node.op_type, opset, ""))
        # expand only if engine can run every node of the body (itself possibly through expansion); otherwise
        # keep the node, so the checker names the op the user wrote
        if not all(_runnable(n, opsets, supported) for n in inlined):
            new_nodes.append(node)
            continue
        changed = True
        new_nodes.extend(inlined)
    if changed:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return changed


def _runnable(node: onnx.NodeProto, opsets: dict[str, int], supported, depth: int = 0) -> bool:
    dom = "" if node.domain in ("", "ai.onnx") else node.domain
    if supported(dom, node.op_type, opsets.get(dom, 0)):
        return True
    if dom != "" or depth > 4:
        return False
    schema = _schema(node.op_type, opsets.get("", 0), "")
    if schema is None:
        return False
    if schema.has_context_dependent_function:
        return True  # its body depends on types: decided when it is expanded in turn
    if not schema.has_function:
        return False
    body = onnx.FunctionProto.FromString(schema.function_body.SerializeToString())
    return all(_runnable(n, opsets, supported, depth + 1) for n in body.node)


def _function_body(node: onnx.NodeProto, opset: int, types: dict[str, onnx.TypeProto]):
    schema = _schema(node.op_type, opset, "")
    if schema is None:
        return None
    try:
        if schema.has_function:
            return onnx.FunctionProto.FromString(schema.function_body.SerializeToString())
        if schema.has_context_dependent_function:
            in_types = []
            for name in node.input:
                tp = types.get(name)
                if tp is None and name:
                    return None
                in_types.append((tp or onnx.TypeProto()).SerializeToString())
            raw = schema.get_context_dependent_function(node.SerializeToString(), in_types)
            return onnx.FunctionProto.FromString(raw) if raw else None
    except Exception:
        return None
    return None


def _inline(node: onnx.NodeProto, fn: onnx.FunctionProto, counter: list[int], schema=None) -> list[onnx.NodeProto]:
    """The function body's nodes with the caller's names and attributes substituted: formal inputs/outputs
    become the node's actual ones, every internal name gets a unique prefix (also where a subgraph of the body
    refers to it), and `ref_attr_name` attributes take the caller's value, else the function's or the
    schema's default."""
    counter[0] += 1
    prefix = f"{node.name or node.op_type}__fn{counter[0]}/"
    rename = {"": ""}
    for formal, actual in zip(fn.input, node.input):
        rename[formal] = actual
    for formal in list(fn.input)[len(node.input):]:
        rename[formal] = ""
    for formal, actual in zip(fn.output, node.output):
        rename[formal] = actual
    given = {a.name: a for a in node.attribute}
    defaults = {a.name: a for a in fn.attribute_proto}
    if schema is not None:
        for name, sa in schema.attributes.items():
            if name not in defaults and sa.default_value.name:
                defaults[name] = sa.default_value

    def outer(x: str) -> str:
        return rename.get(x, prefix + x)

    def attr(a: onnx.AttributeProto, resolve) -> onnx.AttributeProto | None:
        if a.ref_attr_name:
            src = given.get(a.ref_attr_name) or defaults.get(a.ref_attr_name)
            if src is None:
                return None  # not set by the caller and without default: stays absent
            b = onnx.AttributeProto()
            b.CopyFrom(src)
            b.name = a.name
            return b
        if a.type == onnx.AttributeProto.GRAPH:
            b = onnx.AttributeProto()
            b.CopyFrom(a)
            b.g.CopyFrom(subgraph(a.g, resolve))
            return b
        if a.type == onnx.AttributeProto.GRAPHS:
            b = onnx.AttributeProto()
            b.CopyFrom(a)
            del b.graphs[:]
            b.graphs.extend(subgraph(g, resolve) for g in a.graphs)
            return b
        return a

    def subgraph(g: onnx.GraphProto, parent) -> onnx.GraphProto:
        local = {i.name for i in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}

        def name(x: str) -> str:
            return x if (x in local or not x) else parent(x)
        out = onnx.GraphProto()
        out.CopyFrom(g)
        del out.node[:]
        for gn in g.node:
            out.node.append(convert(gn, name))
        for o in out.output:
            o.name = name(o.name)
        return out

    def convert(fnode: onnx.NodeProto, resolve) -> onnx.NodeProto:
        n = onnx.NodeProto()
        n.CopyFrom(fnode)
        del n.input[:]
        del n.output[:]
        n.input.extend(resolve(x) for x in fnode.input)
        n.output.extend(resolve(x) for x in fnode.output)
        del n.attribute[:]
        for a in fnode.attribute:
            b = attr(a, resolve)
            if b is not None:
                n.attribute.append(b)
        return n

    fn_opset = next((o.version for o in fn.opset_import if o.domain in ("", "ai.onnx")), None)
    out = []
    for fnode in fn.node:
        n = convert(fnode, outer)
        n.name = prefix + (fnode.name or fnode.op_type)
        if fn_opset is not None and n.domain in ("", "ai.onnx"):
            tag = n.attribute.add()  # the body's own opset (read back by _Converter, never seen by ops)
            tag.name, tag.type, tag.i = _OPSET_TAG, onnx.AttributeProto.INT, fn_opset
        out.append(n)
    return out


_OPSET_TAG = "__engine_opset"


# ------------------------------------------------------------------------------------------------- the graph
class _Converter:
    def __init__(self, opsets: dict[str, int], ext: _ExternalFiles, types: dict[str, onnx.TypeProto], supported):
        self.opsets = opsets
        self.ext = ext
        self.types = types
        self.supported = supported
        self.counter = [0]

    def attr(self, a: onnx.AttributeProto) -> Any:
        T = onnx.AttributeProto
        if a.type == T.FLOAT:
            return float(a.f)
        if a.type == T.INT:
            return int(a.i)
        if a.type == T.STRING:
            return a.s
        if a.type == T.TENSOR:
            return tensor_to_array(a.t, self.ext)
        if a.type == T.SPARSE_TENSOR:
            return sparse_to_array(a.sparse_tensor)
        if a.type == T.GRAPH:
            return self.graph(a.g, sub=True)
        if a.type == T.FLOATS:
            return [float(x) for x in a.floats]
        if a.type == T.INTS:
            return [int(x) for x in a.ints]
        if a.type == T.STRINGS:
            return list(a.strings)
        if a.type == T.TENSORS:
            return [tensor_to_array(t, self.ext) for t in a.tensors]
        if a.type == T.GRAPHS:
            return [self.graph(g, sub=True) for g in a.graphs]
        if a.type == T.TYPE_PROTO:
            return type_from_proto(a.tp)
        if a.type == T.TYPE_PROTOS:
            return [type_from_proto(t) for t in a.type_protos]
        raise ModelLoadError(f"attribute {a.name!r} has an unknown type {a.type}")

    def graph(self, g: onnx.GraphProto, sub: bool = False) -> Graph:
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.HasField("type"):
                self.types.setdefault(vi.name, vi.type)
        for _ in range(4):  # an expanded body may hold function ops in turn
            if not _expand_functions(g, self.opsets, self.supported, self.types, self.counter):
                break
        constants: dict[str, np.ndarray] = {}
        for t in g.initializer:
            if not t.name:
                raise ModelLoadError("an initializer has no name")
            constants[t.name] = tensor_to_array(t, self.ext)
        for s in g.sparse_initializer:
            constants[s.values.name] = sparse_to_array(s)
        inputs, defaults = [], {}
        for vi in g.input:
            if vi.name in constants:  # IR < 4: an input with a default value
                defaults[vi.name] = constants.pop(vi.name)
            inputs.append(_value_info(vi))
        nodes = []
        for n in g.node:
            dom = "" if n.domain == "ai.onnx" else n.domain
            try:
                attrs = {a.name: self.attr(a) for a in n.attribute}
            except ModelLoadError as e:
                raise ModelLoadError(f"node {n.name or n.op_type!r}: {e}") from e
            opset = attrs.pop(_OPSET_TAG, None)
            nodes.append(Node(n.op_type, list(n.input), list(n.output), attrs, n.name, dom, opset))
        value_types = {vi.name: type_from_proto(vi.type) for vi in g.value_info if vi.HasField("type")}
        return Graph(g.name, inputs, [_value_info(v) for v in g.output], nodes, constants, defaults, value_types,
                     self.opsets)


def _inference_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with large initializers turned into typed graph inputs: onnx's shape inference serialises the
    model it is given, and only small (shape-like) constants matter to it."""
    g = model.graph
    small, extra_inputs = [], []
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n <= _SMALL_FOR_INFERENCE and t.data_location != TensorProto.EXTERNAL:
            small.append(t)
        else:
            extra_inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    init_names = {t.name for t in g.initializer}
    graph = helper.make_graph(list(g.node), g.name, [i for i in g.input if i.name not in init_names] + extra_inputs
                              + [i for i in g.input if i.name in init_names and
                                 i.name not in {e.name for e in extra_inputs}],
                              list(g.output), small, value_info=list(g.value_info),
                              sparse_initializer=list(g.sparse_initializer))
    m = helper.make_model(graph, opset_imports=list(model.opset_import), functions=list(model.functions))
    m.ir_version = model.ir_version
    return m


def infer_types(model: onnx.ModelProto) -> onnx.ModelProto | None:
    try:
        return onnx.shape_inference.infer_shapes(_inference_copy(model), strict_mode=False, data_prop=True)
    except Exception:
        return None  # inference is best effort: the graph still runs, with fewer types known up front


def load(model: Any, supported=lambda domain, op, version: True) -> tuple[Graph, dict]:
    """(Graph, metadata) from a path, bytes or ModelProto. `supported(domain, op_type, opset)` says whether
    engine implements an op natively (otherwise a function-defined op is expanded)."""
    proto, base_dir = load_proto(model)
    opsets = {("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in proto.opset_import}
    if "" not in opsets and proto.ir_version and proto.ir_version < 3:
        opsets[""] = 1  # before IR 3 the default opset was implicit
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as e:
            raise ModelLoadError(f"cannot inline the model's local functions: {e}") from e
    inferred = infer_types(proto)
    types: dict[str, onnx.TypeProto] = {}
    if inferred is not None:
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            if vi.HasField("type"):
                types[vi.name] = vi.type
    ext = _ExternalFiles(base_dir)
    graph = _Converter(opsets, ext, types, supported).graph(proto.graph)
    for name, tp in types.items():
        graph.value_types.setdefault(name, type_from_proto(tp))
    meta = {"producer": f"{proto.producer_name} {proto.producer_version}".strip(), "ir_version": proto.ir_version,
            "opsets": opsets, "doc_string": proto.doc_string,
            "metadata_props": {p.key: p.value for p in proto.metadata_props}, "base_dir": base_dir}
    return graph, meta

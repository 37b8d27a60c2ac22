"""Single-node model checks for op tests: build a one-node ONNX model with onnx.helper, run it with engine and
with onnx's reference evaluator (the oracle), compare dtype, shape and values.

    from tests.ops._util import check_node
    check_node("LeakyRelu", {"x": x}, alpha=0.2)                      # opset: onnx's newest
    check_node("ReduceSum", {"x": x, "axes": np.array([1])}, opset=13, consts=("axes",), keepdims=0)

Inputs are given as an ordered dict name -> array; None (or a name starting with "_absent") makes an absent
optional input (""). Names listed in `consts` become initializers (the engine then sees them at load, as for a
model's weights); the others are graph inputs. Other test files may copy these helpers.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper

import engine
from engine.loader import onnx_dtype

LATEST_OPSET = onnx.defs.onnx_opset_version()


def _tensor_type(name: str, a) -> onnx.ValueInfoProto:
    a = np.asarray(a)
    elem = TensorProto.STRING if a.dtype == object or a.dtype.kind in "US" else onnx_dtype(a.dtype)
    return helper.make_tensor_value_info(name, elem, list(a.shape))


def _initializer(name: str, a) -> onnx.TensorProto:
    a = np.asarray(a)
    if a.dtype.kind in "US":
        a = a.astype(object)
    if a.dtype == object:
        t = helper.make_tensor(name, TensorProto.STRING, list(a.shape),
                               [s.encode() if isinstance(s, str) else s for s in a.reshape(-1)])
        return t
    return onnx.numpy_helper.from_array(a, name)


def make_model(op_type: str, inputs: dict, n_outputs: int = 1, opset: int | None = None, consts=(),
               out_types: list | None = None, domain: str = "", **attrs) -> onnx.ModelProto:
    """A model with one `op_type` node. `out_types`: (elem_type, shape or None) per output, or None for
    outputs with unknown type (fine for the reference evaluator; engine gets the exact types)."""
    opset = opset or LATEST_OPSET
    names = [("" if v is None else k) for k, v in inputs.items()]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, domain=domain or None, **attrs)
    g_inputs = [_tensor_type(k, v) for k, v in inputs.items() if v is not None and k not in consts]
    inits = [_initializer(k, v) for k, v in inputs.items() if v is not None and k in consts]
    if out_types is None:
        g_outputs = [helper.make_empty_tensor_value_info(o) for o in outs]
    else:
        g_outputs = [helper.make_tensor_value_info(o, et, shape) for o, (et, shape) in zip(outs, out_types)]
    graph = helper.make_graph([node], f"single_{op_type}", g_inputs, g_outputs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10 if opset >= 21 else 8
    return model


def feeds_of(inputs: dict, consts=()) -> dict:
    return {k: np.asarray(v) for k, v in inputs.items() if v is not None and k not in consts}


def run_reference(model: onnx.ModelProto, feeds: dict) -> list:
    from onnx.reference import ReferenceEvaluator

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return list(ReferenceEvaluator(model).run(None, feeds))


def run_engine(model: onnx.ModelProto, feeds: dict) -> list:
    with np.errstate(all="ignore"):
        res = engine.run(model, feeds)
    return [res[o.name] for o in model.graph.output]


def _as_comparable(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "V":  # bfloat16 / float8 / int4 ... from ml_dtypes
        return a.astype(np.float64)
    return a


def assert_same(got, want, rtol: float = 1e-5, atol: float = 1e-6, what: str = "") -> None:
    """Same dtype, same shape, values allclose (NaN == NaN; exact for ints, bools and strings)."""
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype.kind in "US":
        want = want.astype(object)
    if got.dtype.kind in "US":
        got = got.astype(object)
    assert got.dtype == want.dtype, f"{what}dtype {got.dtype} != reference {want.dtype}"
    assert got.shape == want.shape, f"{what}shape {got.shape} != reference {want.shape}"
    g, w = _as_comparable(got), _as_comparable(want)
    if w.dtype == object or w.dtype.kind in "iub":
        np.testing.assert_array_equal(g, w, err_msg=what)
    else:
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=what)


def check_node(op_type: str, inputs: dict, n_outputs: int = 1, opset: int | None = None, consts=(),
               rtol: float = 1e-5, atol: float = 1e-6, expected: list | None = None, **attrs) -> list:
    """Runs the node on engine and compares with the reference evaluator (or with `expected`, a list of
    arrays, where the reference is known to differ from the spec). Returns engine's outputs."""
    model = make_model(op_type, inputs, n_outputs, opset, consts, **attrs)
    feeds = feeds_of(inputs, consts)
    want = expected if expected is not None else run_reference(model, feeds)
    typed = make_model(op_type, inputs, n_outputs, opset, consts,
                       out_types=[(TensorProto.STRING if np.asarray(w).dtype.kind in "OUS"
                                   else onnx_dtype(np.asarray(w).dtype), None) for w in want], **attrs)
    got = run_engine(typed, feeds)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol, atol, what=f"{op_type} output {i}: ")
    return got

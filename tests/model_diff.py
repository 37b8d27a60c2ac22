"""Finds the first node where engine and onnxruntime disagree on a model_zoo model (a debugging tool, not a test).

    python tests/model_diff.py bert                      # first dims of DYNAMIC_DIMS, input seed 0
    python tests/model_diff.py ocr_rec --dims width=100
    python tests/model_diff.py vad --save /tmp/vad_node  # also writes the diverging node as a one-node model + inputs

Every intermediate tensor whose type shape inference knows becomes a graph output; both runtimes run that model
(onnxruntime with graph optimizations off) and the tensors are compared in node order with the tolerances of
tests/test_models.py. The first node whose outputs disagree while all its inputs agreed is the culprit; --save
writes it as <path>.onnx plus its inputs as <path>.npz, a minimal reproducer.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys

import numpy as np
import onnx
from onnx import helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("engine") is None:  # run as a script from a source checkout: the in-place build
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_zoo as mz  # noqa: E402
import tolerances as tol  # noqa: E402


def _ort_run(model: onnx.ModelProto, feeds: dict) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def _err(got, ref) -> float:
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return float("inf")
    if ref.dtype.kind in "iub":
        return float(np.count_nonzero(got != ref))
    g, r = got.astype(np.float64), ref.astype(np.float64)
    if g.size == 0:
        return 0.0
    if not np.array_equal(np.isfinite(g), np.isfinite(r)):
        return float("inf")
    f = np.isfinite(r)
    return float(np.abs(g[f] - r[f]).max() / max(np.abs(r[f]).max(), tol.MODEL_TINY)) if f.any() else 0.0


def expose_all(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every typed intermediate tensor of the main graph as an extra output."""
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in inferred.graph.value_info}
    m = copy.deepcopy(model)
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for t in node.output:
            if t and t not in have and t in typed:
                m.graph.output.append(typed[t])
                have.add(t)
    return m


def first_divergence(model: onnx.ModelProto, feeds: dict):
    """(node, {output: error}, ref values) of the first node whose outputs disagree, or None."""
    import engine

    m = expose_all(model)
    ref = _ort_run(m, feeds)
    got = engine.run(m, feeds)
    limit = tol.MODEL_FP32_REL
    for node in m.graph.node:
        errs = {t: _err(got[t], ref[t]) for t in node.output if t in ref and t in got}
        if any(e > limit for e in errs.values()):
            return node, errs, ref
    return None


def one_node_model(model: onnx.ModelProto, node: onnx.NodeProto, values: dict):
    """(ModelProto, feeds): `node` alone, its tensor inputs as graph inputs with the values of `values`
    (initializers stay initializers)."""
    inits = {t.name: t for t in model.graph.initializer}
    inputs, feeds, init_list = [], {}, []
    for name in node.input:
        if not name or name in feeds:
            continue
        if name in inits:
            init_list.append(inits[name])
        else:
            v = np.asarray(values[name])
            inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
            feeds[name] = v
    outputs = [helper.make_tensor_value_info(t, onnx.TensorProto.UNDEFINED, None) for t in node.output if t]
    g = helper.make_graph([node], f"repro_{node.op_type}", inputs, outputs, init_list)
    m = helper.make_model(g, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m, feeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("family", choices=sorted(mz.FAMILIES))
    p.add_argument("--dims", default="", help="symbolic dims, e.g. batch=2,seq=9 (default: first DYNAMIC_DIMS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="PATH", help="write the diverging node as PATH.onnx + PATH.npz")
    args = p.parse_args(argv)
    dims = dict(kv.split("=") for kv in args.dims.split(",") if kv) or mz.DYNAMIC_DIMS.get(args.family, ({},))[0]
    dims = {k: int(v) for k, v in dims.items()}
    model = mz.FAMILIES[args.family].build()
    feeds = mz.FAMILIES[args.family].make_inputs(model, args.seed, **dims)
    found = first_divergence(model, feeds)
    if found is None:
        print(f"{args.family} {dims}: every exposed tensor agrees with onnxruntime")
        return 0
    node, errs, ref = found
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.type != onnx.AttributeProto.GRAPH}
    print(f"{args.family} {dims}: first divergence at node {node.name!r} ({node.op_type}, attrs {attrs})")
    for t, e in errs.items():
        print(f"  output {t}: error {e:.3g} (shape {np.asarray(ref[t]).shape})")
    values = dict(ref, **feeds)
    for name in node.input:
        if name in values:
            v = np.asarray(values[name])
            print(f"  input {name}: {v.dtype} {v.shape}")
    if args.save:
        m1, f1 = one_node_model(model, node, values)
        onnx.save(m1, args.save + ".onnx")
        np.savez(args.save + ".npz", **f1)
        print(f"  wrote {args.save}.onnx and {args.save}.npz")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-node cost of the executor on tiny tensors: chains of N nodes of one op (Identity, Relu, Add, a
Reshape/Unsqueeze/Slice mix), engine against onnxruntime in the same run, one thread. Measures what small models
with hundreds of nodes pay per node (the data is 16 floats, so the work itself is negligible).

    python bench/compare_overhead.py [--nodes 400] [--runs 200] [--quick]
Times are CPU time of the calling thread (time.thread_time), less sensitive to a shared machine than wall time.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


def chain(op: str, n: int):
    nodes, inits = [], []
    if op == "Mix":
        inits = [nh.from_array(np.array([16], np.int64), "shape16"), nh.from_array(np.array([0], np.int64), "ax0"),
                 nh.from_array(np.array([0], np.int64), "s0"), nh.from_array(np.array([16], np.int64), "e16")]
    for i in range(n):
        a, b = f"v{i}", f"v{i + 1}"
        if op == "Add":
            nodes.append(h.make_node("Add", [a, a], [b]))
        elif op == "Mix":
            k = i % 3
            if k == 0:
                nodes.append(h.make_node("Unsqueeze", [a, "ax0"], [b]))
            elif k == 1:
                nodes.append(h.make_node("Reshape", [a, "shape16"], [b]))
            else:
                nodes.append(h.make_node("Slice", [a, "s0", "e16"], [b]))
        else:
            nodes.append(h.make_node(op, [a], [b]))
    g = h.make_graph(nodes, op, [h.make_tensor_value_info("v0", T.FLOAT, [16])],
                     [h.make_tensor_value_info(f"v{n}", T.FLOAT, None)], initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def per_run(f, runs: int) -> float:
    for _ in range(3):
        f()
    best = float("inf")
    for _ in range(3):
        t = time.thread_time()
        for _ in range(runs):
            f()
        best = min(best, (time.thread_time() - t) / runs)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=400)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="100 nodes, 20 runs (CI smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.nodes, args.runs = 100, 20
    import engine

    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        print("onnxruntime is not installed: engine only")
    engine.set_num_threads(1)
    x = np.ones(16, np.float32)
    print(f"{'op':10s} {'engine ns/node':>15s} {'ORT ns/node':>12s} {'engine/ORT':>11s}   ({args.nodes} nodes, "
          f"best of 3 x {args.runs} runs, thread CPU time)")
    for op in ("Identity", "Relu", "Add", "Mix"):
        m = chain(op, args.nodes)
        s = engine.Session(m, engine.SessionOptions(passes="none"))
        te = per_run(lambda: s.run({"v0": x}), args.runs) / args.nodes
        line = f"{op:10s} {te * 1e9:15.0f}"
        if ort is not None:
            so = ort.SessionOptions()
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every node
            r = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
            to = per_run(lambda: r.run(None, {"v0": x}), args.runs) / args.nodes
            line += f" {to * 1e9:12.0f} {te / to:11.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-layer depthwise table: engine's depthwise kernel against onnxruntime's Conv node on MobileNetV2's depthwise layers.

    PYTHONPATH=. python bench/compare_dwconv.py              # 1 thread, 60 rounds (about 30 s)
    PYTHONPATH=. python bench/compare_dwconv.py --threads 2 --reps 30

Each layer is a 3x3 depthwise convolution, pads 1, bias, Clip(0, 6), batch 1. engine: the binding
engine._C._kernels.dwconv2d_f32 (the call accel.py's Conv makes; no graph overhead), best single-thread CPU time
(time.thread_time) of --reps calls (wall time with more than one thread). onnxruntime: a Conv + Clip model with all
graph optimizations (on x86 it becomes an NCHWc FusedConv between two reorder nodes), profiled: the table shows the
best time of the conv node alone (the reorders, listed apart, are absent inside a whole NCHWc model). The outputs are
compared first. The machine is shared: run it twice and trust only differences larger than the spread.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

LAYERS = [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2), (384, 14, 1),
          (576, 14, 1), (576, 14, 2), (960, 7, 1)]


def _engine(c: int, hw: int, s: int, threads: int, reps: int):
    import engine
    from engine._C import _kernels as _k

    engine.set_num_threads(threads)
    g = np.random.default_rng(c + hw + s)
    x = g.standard_normal((1, c, hw, hw)).astype(np.float32)
    w = g.standard_normal((c, 9)).astype(np.float32)
    b = g.standard_normal(c).astype(np.float32)
    o = (hw - 1) // s + 1
    y = np.empty((1, c, o, o), np.float32)
    geo = (hw, hw, o, o, 3, 3, s, s, 1, 1, 1, 1, 1, 1)
    clk = time.thread_time if threads == 1 else time.perf_counter
    best = float("inf")
    for _ in range(reps):
        t0 = clk()
        _k.dwconv2d_f32(x, w, b, y, c, c, geo, 2, 0.0, 6.0)
        best = min(best, clk() - t0)
    return best * 1e6, x, w, b, y


def _ort(c: int, s: int, x, w, b, threads: int, reps: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(w.reshape(c, 1, 3, 3), "W"), numpy_helper.from_array(b, "B"),
             numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["Z"], group=c, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              strides=[s, s]), helper.make_node("Clip", ["Z", "lo", "hi"], ["Y"])]
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "compare_dwconv")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(reps):
        out = sess.run(None, {"X": x})[0]
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    durs: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            durs.setdefault(e["args"].get("op_name"), []).append(e["dur"])
    best = {op: min(v) for op, v in durs.items()}
    conv = best.get("FusedConv", best.get("Conv", float("nan")))
    return conv, sum(v for k, v in best.items() if k not in ("Conv", "FusedConv")), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=60)
    a = ap.parse_args()
    import engine

    print(f"engine {engine.__file__}, threads {a.threads}, load {os.getloadavg()[0]:.2f}")
    print("| layer | engine us | ORT conv us | ORT reorders us | engine/ORT |\n|---|---:|---:|---:|---:|")
    te_all = to_all = 0.0
    for c, hw, s in LAYERS:
        te, x, w, b, y = _engine(c, hw, s, a.threads, a.reps)
        to, reorder, out = _ort(c, s, x, w, b, a.threads, a.reps)
        np.testing.assert_allclose(y, out, rtol=1e-4, atol=1e-4)
        te_all, to_all = te_all + te, to_all + to
        print(f"| {c}ch {hw}x{hw} s{s} | {te:.0f} | {to:.0f} | {reorder:.0f} | {te / to:.2f} |")
    print(f"| total | {te_all:.0f} | {to_all:.0f} | | {te_all / to_all:.2f} |")


if __name__ == "__main__":
    main()

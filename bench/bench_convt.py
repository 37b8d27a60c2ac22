"""ConvTranspose (decoder upsampling layers): engine's C path vs engine's numpy path vs onnxruntime, one node with
W and B as initializers, 1 thread by default.

    python bench/bench_convt.py                # 1 thread
    python bench/bench_convt.py --threads 2

Times are per Session.run call, best of rounds in rotating order, measured as CPU time of the calling thread
(time.thread_time: with 1 thread all work runs on it, for engine and for ORT with intra_op_num_threads=1; other
processes on a shared machine do not inflate it) and as wall time. Ratios ort/eng > 1 mean engine is faster.
Every output is checked against onnxruntime first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine  # noqa: E402
import engine.ops.accel_convt as A  # noqa: E402

LAYERS = [  # name, x shape, M, kernel, strides, pads
    ("64x56x56->32 k4 s2 p1", (1, 64, 56, 56), 32, (4, 4), (2, 2), (1, 1, 1, 1)),
    ("256x14x14->128 k2 s2", (1, 256, 14, 14), 128, (2, 2), (2, 2), (0, 0, 0, 0)),
]


def model(x_shape, w, b, strides, pads):
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=list(strides), pads=list(pads))
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def interleaved(fns, samples: int, budget_s: float):
    """Best (thread CPU time, wall time) in ms per function, sampled in rounds whose order rotates, so that load
    from other processes and clock changes hit every implementation alike."""
    for f in fns:
        f()
    bt = [float("inf")] * len(fns)
    bw = [float("inf")] * len(fns)
    end = time.perf_counter() + budget_s
    for r in range(samples):
        for k in range(len(fns)):
            i = (k + r) % len(fns)
            t0, w0 = time.thread_time(), time.perf_counter()
            fns[i]()
            bt[i], bw[i] = min(bt[i], time.thread_time() - t0), min(bw[i], time.perf_counter() - w0)
        if time.perf_counter() > end:
            break
    return [(a * 1e3, b * 1e3) for a, b in zip(bt, bw)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=100, help="rounds per layer (each round runs every implementation)")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds per layer at most")
    args = ap.parse_args()
    import onnxruntime as ort

    engine.set_num_threads(args.threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, engine ISA {engine.cpu_info()['active_isa']}, onnxruntime {ort.__version__}")
    print(f"{'layer':26s} {'eng C ms':>9s} {'eng np ms':>9s} {'ORT ms':>9s} {'ort/eng':>8s} {'np/eng':>7s}"
          f"   (thread CPU time; wall: eng C / ORT)")
    for name, xs, m, k, s, p in LAYERS:
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal((xs[1], m) + k) / np.sqrt(xs[1] * k[0] * k[1])).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        mdl = model(xs, w, b, s, p)
        se = engine.Session(mdl)
        fast = A._fast
        A._fast = lambda ctx, base: None  # the numpy path, for reference
        try:
            sn = engine.Session(mdl)
        finally:
            A._fast = fast
        so_ = ort.InferenceSession(mdl.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ye = se.run(None, {"x": x})[0]
        yo = so_.run(None, {"x": x})[0]
        yn = sn.run(None, {"x": x})[0]
        assert ye.shape == yo.shape, (ye.shape, yo.shape)
        assert np.allclose(ye, yo, atol=1e-4, rtol=1e-4), np.abs(ye - yo).max()
        assert np.allclose(yn, yo, atol=1e-4, rtol=1e-4)
        te, tn, to = interleaved([lambda: se.run(None, {"x": x}), lambda: sn.run(None, {"x": x}),
                                  lambda: so_.run(None, {"x": x})], args.samples, args.budget)
        print(f"{name:26s} {te[0]:9.3f} {tn[0]:9.3f} {to[0]:9.3f} {to[0] / te[0]:8.2f} {tn[0] / te[0]:7.2f}"
              f"   wall {te[1]:.3f} / {to[1]:.3f} ms")


if __name__ == "__main__":
    main()

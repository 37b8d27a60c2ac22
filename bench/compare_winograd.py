"""Winograd F(4x4, 3x3) against engine's current Conv path and onnxruntime, on the ResNet 3x3 layers (issue 4).

    python bench/compare_winograd.py                 # 4 layers x (1, 2 threads), about a minute
    python bench/compare_winograd.py --threads 1 --rounds 5 --layers 64x56

Implementations, all on one image (N = 1), pad 1, with a bias, output checked against a float64 reference first:
  wino    engine.kernels.conv2d_winograd(x, u, bias, pads) with u = winograd_weights(w) made beforehand (not timed)
  engine  engine.Session on a one-Conv ONNX model (today: im2col + GEMM)
  ort     onnxruntime, same model (ir_version 8), intra_op_num_threads = 1 or 2, all graph optimizations
Times are the fastest single call over rounds of back-to-back calls lasting about --sample-ms each (the
implementations rotate order every round, so load from other processes hits all alike; on a shared machine the
minimum is the undisturbed time, a mean counts preemptions); they include the Python call and allocating the output
for every implementation. Ratios > 1 mean Winograd is faster.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# From a source checkout with an in-place build, use that build (even if another engine is installed, e.g. an
# editable install of a different checkout); otherwise the installed engine.
if list((HERE.parent / "engine" / "_C").glob("_kernels*.so")) or importlib.util.find_spec("engine") is None:
    sys.path.insert(0, str(HERE.parent))

LAYERS = {  # name: (channels in = out, H = W)
    "64x56": (64, 56),
    "128x28": (128, 28),
    "256x14": (256, 14),
    "512x7": (512, 7),
}
EXTRA = {  # --layers may also name these: where the crossover lies (small channel counts, big images, 512 at 14x14)
    "16x112": (16, 112),
    "32x112": (32, 112),
    "128x56": (128, 56),
    "256x28": (256, 28),
    "512x14": (512, 14),
}


def conv_model(c: int, hw: int, w: np.ndarray, b: np.ndarray) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "conv3x3", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference(x, w, b):
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = x.shape[2], x.shape[3]
    y = np.zeros((1, w.shape[0], oh, ow))
    for a in range(3):
        for c in range(3):
            y += np.einsum("oi,nihw->nohw", w[:, :, a, c].astype(np.float64), xp[:, :, a:a + oh, c:c + ow])
    return y + b[None, :, None, None]


def sample(fn, sample_s: float) -> float:
    """The fastest single call among back-to-back calls lasting about sample_s (the machine is shared: a mean over
    calls counts every preemption; the minimum is the time of a call that ran undisturbed)."""
    fn()
    best = float("inf")
    end = time.perf_counter() + sample_s
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        best = min(best, t1 - t0)
        if t1 >= end:
            return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS) + list(EXTRA))
    ap.add_argument("--rounds", type=int, default=7, help="timing rounds per layer (best is shown)")
    ap.add_argument("--sample-ms", type=float, default=150.0)
    ap.add_argument("--no-ort", action="store_true")
    args = ap.parse_args()

    import engine
    import engine.kernels as K

    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        print("onnxruntime not installed: its columns are left out")
    if args.no_ort:
        ort = None

    g = np.random.default_rng(0)
    rows = []
    for name in args.layers:
        c, hw = {**LAYERS, **EXTRA}[name]
        x = g.standard_normal((1, c, hw, hw)).astype(np.float32)
        w = (g.standard_normal((c, c, 3, 3)) * np.sqrt(2.0 / (9 * c))).astype(np.float32)  # He init
        b = (g.standard_normal(c) * 0.1).astype(np.float32)
        ref = reference(x, w, b)
        scale = np.abs(ref).max()
        u = K.winograd_weights(w)
        model = conv_model(c, hw, w, b)
        for t in args.threads:
            engine.set_num_threads(t)
            sess = engine.Session(model)
            fns = {"wino": lambda: K.conv2d_winograd(x, u, b, 1), "engine": lambda: sess.run({"x": x})}
            if ort is not None:
                so = ort.SessionOptions()
                so.intra_op_num_threads = t
                so.inter_op_num_threads = 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                osess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
                fns["ort"] = lambda: osess.run(None, {"x": x})
            errs = {}
            for k, fn in fns.items():
                out = fn()
                y = out["y"] if isinstance(out, dict) else out[0] if isinstance(out, list) else out
                errs[k] = float(np.abs(np.asarray(y, np.float64) - ref).max() / scale)
                if errs[k] > 1e-4:
                    raise AssertionError(f"{name} {k}: max error {errs[k]:.3g} of the output scale")
            best = {k: float("inf") for k in fns}
            order = list(fns)
            for r in range(args.rounds):
                for k in order[r % len(order):] + order[:r % len(order)]:
                    best[k] = min(best[k], sample(fns[k], args.sample_ms / 1000))
            rows.append((name, t, best, errs))
            ms = "  ".join(f"{k} {v * 1e3:7.3f} ms" for k, v in best.items())
            print(f"{name:7s} t={t}  {ms}", flush=True)
            del sess

    print()
    hdr = "| layer | thr | wino ms | engine ms | ORT ms | engine/wino | ORT/wino | wino err | engine err |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for name, t, best, errs in rows:
        o = best.get("ort")
        print(f"| {name} | {t} | {best['wino'] * 1e3:.3f} | {best['engine'] * 1e3:.3f} | "
              f"{o * 1e3:.3f} | " if o else f"| {name} | {t} | {best['wino'] * 1e3:.3f} | {best['engine'] * 1e3:.3f} | - | ",
              end="")
        print(f"{best['engine'] / best['wino']:.2f} | " + (f"{o / best['wino']:.2f}" if o else "-") +
              f" | {errs['wino']:.2g} | {errs['engine']:.2g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

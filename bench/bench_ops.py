"""Op kernels (engine.kernels) against numpy and onnxruntime single-node models, one table of times and ratios.

    python bench/bench_ops.py                 # 1 thread everywhere (engine pool, ORT intra-op)
    python bench/bench_ops.py --threads 2
    python bench/bench_ops.py --quick         # fewer repetitions

Columns: best time per call in microseconds (Python call and output allocation included for every implementation)
for engine, numpy (the natural numpy expression; numpy is single-threaded for these) and ORT (onnxruntime, one
node, inputs fed per call, ir_version 8), then np/eng and ort/eng: > 1 means engine is faster. Every engine
result is checked against numpy (and ORT) before timing. Runs in about 20-40 s.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("engine") is None or True:  # prefer the in-place build of this checkout
    sys.path.insert(0, str(HERE.parent))

import engine  # noqa: E402
import engine.kernels as K  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402


def best_us(fn, reps: int, budget_s: float = 0.6) -> float:
    fn()
    t_end = time.perf_counter() + budget_s
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > t_end:
            break
    return best * 1e6


def ort_session(op, inputs, attrs, threads, opset=17, consts=None):
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    names = [f"i{k}" for k in range(len(inputs))]
    init = []
    for k, c in (consts or {}).items():
        init.append(numpy_helper.from_array(c, k))
    node = helper.make_node(op, names + list((consts or {}).keys()), ["y"], **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
                                       for n, a in zip(names, inputs)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = dict(zip(names, inputs))
    return lambda: s.run(None, feeds)[0]


def cases(rng):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x1m = f(1 << 20)
    yield "relu 1M", lambda: K.activation(x1m, "relu"), lambda: np.maximum(x1m, 0), ("Relu", [x1m], {}), 0
    yield "sigmoid 1M", lambda: K.activation(x1m, "sigmoid"), lambda: 1 / (1 + np.exp(-x1m)), ("Sigmoid", [x1m], {}), 1e-6
    yield "tanh 1M", lambda: K.activation(x1m, "tanh"), lambda: np.tanh(x1m), ("Tanh", [x1m], {}), 1e-6
    yield "exp 1M", lambda: K.activation(x1m, "exp"), lambda: np.exp(x1m), ("Exp", [x1m], {}), 1e-6
    gt = lambda x: 0.5 * x * (1 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x * x * x)))  # noqa
    yield "gelu_tanh 1M", lambda: K.activation(x1m, "gelu_tanh"), lambda: gt(x1m), None, 1e-5
    a, b = f(1 << 20), f(1 << 20)
    yield "add same 1M", lambda: K.binary(a, b, "add"), lambda: a + b, ("Add", [a, b], {}), 0
    r, bias = f(4096, 256), f(256)
    yield "add row 4096x256", lambda: K.binary(r, bias, "add"), lambda: r + bias, ("Add", [r, bias], {}), 0
    c, ch = f(8, 64, 56, 56), f(64, 1, 1)
    yield "mul channel 8x64x56x56", lambda: K.binary(c, ch, "mul"), lambda: c * ch, ("Mul", [c, ch], {}), 0

    def np_softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    for shp in ((1024, 1000), (12 * 128, 128)):
        s = f(*shp)
        yield f"softmax {shp[0]}x{shp[1]}", lambda s=s: K.softmax(s), lambda s=s: np_softmax(s), \
            ("Softmax", [s], {"axis": -1}), 1e-6
    ln = f(512, 768)
    sc, bi = f(768), f(768)

    def np_ln(x):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + np.float32(1e-5)) * sc + bi
    yield "layer_norm 512x768", lambda: K.layer_norm(ln, sc, bi), lambda: np_ln(ln), \
        ("LayerNormalization", [ln, sc, bi], {"axis": -1, "epsilon": 1e-5}), 1e-4
    p = f(1, 64, 112, 112)
    pp = np.pad(p, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    yield "maxpool 3x3/2 64x112x112", lambda: K.max_pool2d(p, 3, 2, 1), \
        lambda: sliding_window_view(np.pad(p, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf), (3, 3), (2, 3))[:, :, ::2, ::2].max((-2, -1)), \
        ("MaxPool", [p], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}), 0
    del pp
    yield "avgpool 3x3/1 64x112x112", lambda: K.avg_pool2d(p, 3, 1, 1, count_include_pad=True), \
        lambda: sliding_window_view(np.pad(p, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 3)).mean((-2, -1)), \
        ("AveragePool", [p], {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "count_include_pad": 1}), 1e-5
    gp = f(1, 1280, 7, 7)
    yield "global_avg 1280x7x7", lambda: K.global_avg_pool(gp), lambda: gp.mean((2, 3), keepdims=True), \
        ("GlobalAveragePool", [gp], {}), 1e-5

    def np_dw(x, w, s, pad):
        k = w.shape[-1]
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        oh = (x.shape[2] + 2 * pad - k) // s + 1
        ow = (x.shape[3] + 2 * pad - k) // s + 1
        y = np.zeros((x.shape[0], x.shape[1], oh, ow), np.float32)
        for a_ in range(k):
            for b_ in range(k):
                y += w[None, :, 0, a_, b_, None, None] * xp[:, :, a_:a_ + s * (oh - 1) + 1:s, b_:b_ + s * (ow - 1) + 1:s]
        return y
    for (cc, hw, k, s) in ((144, 56, 3, 1), (96, 112, 3, 2), (240, 28, 5, 1)):
        x = f(1, cc, hw, hw)
        w = f(cc, 1, k, k) * np.float32(0.3)
        pad = k // 2
        yield f"dwconv {k}x{k}/{s} {cc}x{hw}x{hw}", \
            lambda x=x, w=w, s=s, pad=pad: K.depthwise_conv2d(x, w, None, s, pad), \
            lambda x=x, w=w, s=s, pad=pad: np_dw(x, w, s, pad), \
            ("Conv", [x], {"group": cc, "strides": [s, s], "pads": [pad] * 4, "kernel_shape": [k, k]}, {"w": w}), 1e-4
    xi = f(64, 56, 56)
    yield "im2col 3x3/1 64x56x56", lambda: K.im2col(xi, 3, 1, 1), \
        lambda: np.ascontiguousarray(sliding_window_view(np.pad(xi, ((0, 0), (1, 1), (1, 1))), (3, 3), (1, 2))
                                     .transpose(0, 3, 4, 1, 2)).reshape(64 * 9, 56 * 56), None, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    engine.set_num_threads(args.threads)
    reps = 10 if args.quick else 40
    rng = np.random.default_rng(0)
    print(f"engine {engine.cpu_info()['active_isa']}, {args.threads} thread(s); times in us (best of up to {reps})")
    print(f"{'case':28s} {'engine':>9s} {'numpy':>9s} {'ORT':>9s} {'np/eng':>7s} {'ort/eng':>7s}")
    for name, fe, fn, ort_spec, rtol in cases(rng):
        ye, yn = fe(), fn()
        err = np.max(np.abs(ye - yn) / (np.abs(yn) + 1.0)) if ye.size else 0.0
        assert ye.shape == yn.shape and err <= max(rtol, 1e-7) * 10, f"{name}: engine differs from numpy ({err:.3g})"
        fo = None
        if ort_spec is not None:
            op, ins, attrs = ort_spec[:3]
            fo = ort_session(op, ins, attrs, args.threads, consts=ort_spec[3] if len(ort_spec) > 3 else None)
            if fo is not None:
                yo = fo()
                assert yo.shape == ye.shape and np.allclose(yo, ye, rtol=1e-4, atol=1e-4), f"{name}: ORT differs"
        te, tn = best_us(fe, reps), best_us(fn, reps)
        to = best_us(fo, reps) if fo else float("nan")
        print(f"{name:28s} {te:9.1f} {tn:9.1f} {to:9.1f} {tn / te:7.2f} {to / te:7.2f}", flush=True)


if __name__ == "__main__":
    main()

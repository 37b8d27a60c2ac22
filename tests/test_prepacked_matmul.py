"""Constant MatMul weights pre-packed in the GEMM's panel layout (engine._C MatMulStep): products of at least 16 rows
use the packed copy, made once and kept; fewer rows go to the GEMV paths on the weight as it is. Every ISA this
machine runs, against float64 numpy; the packed copy follows an ISA change; bias and activation; A given as a
transposed (column) view."""
from __future__ import annotations

import numpy as np
import pytest
import tolerances as tol

import engine
from engine._C import _kernels as _k
from engine.linalg import _activation
from engine.testing import assert_within, force_isa, gemm_error_bound, gemm_ref, rng


def _check(got, a, w, bias=None, act=None):
    """got = act(a @ w + bias) in float32, within the suite's GEMM bound (tolerances.GEMM_C) of float64 numpy.
    a may be rank 3: its rows are flattened to one 2-D product, as each output row depends only on its own row."""
    assert got.dtype == np.float32
    assert got.shape == a.shape[:-1] + (w.shape[1],), f"shape {got.shape} for a {a.shape} @ w {w.shape}"
    a2, got2 = a.reshape(-1, a.shape[-1]), got.reshape(-1, w.shape[1])
    assert_within(got2, gemm_ref(a2, w, bias=bias, activation=act),
                  gemm_error_bound(a2, w, bias=bias, activation=act, c_mult=tol.GEMM_C),
                  f"a {a.shape} @ w {w.shape}, bias {bias is not None}, act {act}")


@pytest.mark.parametrize("isa", engine._C._kernels.supported_isas())
@pytest.mark.parametrize("k,n", [(300, 70), (17, 16), (513, 33), (64, 1)])
def test_prepacked_products(isa, k, n):
    g = rng("prepack", isa, k, n)
    w = g.standard_normal((k, n), dtype=np.float32)
    bias = g.standard_normal(n, dtype=np.float32)
    with force_isa(isa):
        plain = _k.MatMulStep(w, None, 0, 0.0, 0.0, None)
        fused = _k.MatMulStep(w, bias, *_activation("relu"), None)
        for rows in (1, 15, 16, 37, 200):
            a = g.standard_normal((rows, k), dtype=np.float32)
            _check(plain(a)[0], a, w)
            _check(fused(a)[0], a, w, bias, "relu")
            a3 = g.standard_normal((2, rows, k), dtype=np.float32)  # rank 3: rows of both batches
            _check(plain(a3)[0], a3, w)
        at = g.standard_normal((k, 40), dtype=np.float32)
        _check(plain(at.T)[0], at.T, w)


def test_packed_copy_follows_the_isa():
    """A step packed under one ISA level and then called under another gives the right answer at both (it repacks
    for the other tile), and going back works too."""
    isas = engine._C._kernels.supported_isas()
    g = rng("prepack-isa")
    w = g.standard_normal((260, 50), dtype=np.float32)
    step = _k.MatMulStep(w, None, 0, 0.0, 0.0, None)
    a = g.standard_normal((64, 260), dtype=np.float32)
    for isa in list(isas) + list(reversed(isas)):
        with force_isa(isa):
            _check(step(a)[0], a, w)


def test_session_transformer_projection_uses_the_packed_copy():
    """A model's MatMul by a constant weight, 128 rows: the result matches numpy at every call (the packed copy is
    reused, not rebuilt from a stale buffer)."""
    from onnx import TensorProto, helper, numpy_helper

    g = rng("prepack-model")
    w = g.standard_normal((96, 80), dtype=np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, 96])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = engine.Session(model)
    steps = [fn for fn, *_ in sess._plan.program if isinstance(fn, _k.MatMulStep)]
    assert len(steps) == 1 and steps[0].is_packed, "the weight is packed when the session is built"
    for _ in range(3):
        x = g.standard_normal((1, 128, 96), dtype=np.float32)
        _check(sess.run({"x": x})["y"], x, w)


def test_session_packs_only_when_the_shapes_promise_many_rows():
    """Built with A's rows known: 128 rows packs at build; 1 row (a batch-1 linear layer, GEMV) never packs; a symbolic
    row count packs on the first product of at least MATMUL_PREPACK_MIN_ROWS rows, not before."""
    from onnx import TensorProto, helper, numpy_helper

    g = rng("prepack-build")
    w = g.standard_normal((24, 40), dtype=np.float32)

    def session(shape):
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(w, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        sess = engine.Session(model)
        (step,) = [fn for fn, *_ in sess._plan.program if isinstance(fn, _k.MatMulStep)]
        return sess, step

    assert session([2, 64, 24])[1].is_packed
    sess, step = session([1, 24])
    assert not step.is_packed
    x = g.standard_normal((1, 24), dtype=np.float32)
    _check(sess.run({"x": x})["y"], x, w)
    assert not step.is_packed, "a GEMV product packs nothing"
    sess, step = session(["batch", 24])
    assert not step.is_packed
    x = g.standard_normal((3, 24), dtype=np.float32)
    _check(sess.run({"x": x})["y"], x, w)
    assert not step.is_packed
    x = g.standard_normal((_k.MATMUL_PREPACK_MIN_ROWS, 24), dtype=np.float32)
    _check(sess.run({"x": x})["y"], x, w)
    assert step.is_packed

"""LSTM / GRU / RNN on single-node models, against onnx.reference.ReferenceEvaluator.

The reference ignores `activations`, `clip`, `sequence_lens` and `input_forget`; those variants are checked
against onnxruntime instead (skipped, with the reason, when it is not installed)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import engine
from engine.errors import RunError, UnsupportedModelError

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _rng(*key):
    import zlib
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _model(op, feeds: dict, consts: dict, outputs, attrs, opset):
    """One `op` node; `feeds` become graph inputs, `consts` initializers; "" in the input order = absent."""
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    if op != "LSTM":
        order = order[:6]
    names = [n if (n in feeds or n in consts) else "" for n in order]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, outputs, **attrs)
    g_in = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for n, v in feeds.items()]
    xt = helper.np_dtype_to_tensor_dtype(feeds["X"].dtype)
    g_out = [helper.make_tensor_value_info(n, xt, None) for n in outputs if n]
    inits = [numpy_helper.from_array(v, n) for n, v in consts.items()]
    g = helper.make_graph([node], "g", g_in, g_out, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _data(op, S, NB, I, H, D, *, layout=0, bias=True, h0=False, c0=False, peep=False, dtype=np.float32, key=()):
    r = _rng(op, S, NB, I, H, D, layout, key)
    G = GATES[op]
    x = r.standard_normal((NB, S, I) if layout else (S, NB, I)).astype(dtype)
    d = {"X": x,
         "W": (r.standard_normal((D, G * H, I)) * 0.4).astype(dtype),
         "R": (r.standard_normal((D, G * H, H)) * 0.4).astype(dtype)}
    if bias:
        d["B"] = (r.standard_normal((D, 2 * G * H)) * 0.3).astype(dtype)
    hs = (NB, D, H) if layout else (D, NB, H)
    if h0:
        d["initial_h"] = r.standard_normal(hs).astype(dtype)
    if c0:
        d["initial_c"] = r.standard_normal(hs).astype(dtype)
    if peep:
        d["P"] = (r.standard_normal((D, 3 * H)) * 0.5).astype(dtype)
    return d


def _outputs(op, want):
    names = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    outs = [n if n in want else "" for n in names]
    while outs and outs[-1] == "":
        outs.pop()
    return outs


def _split(data, weights_const):
    feeds = {k: v for k, v in data.items() if not (weights_const and k in ("W", "R", "B", "P"))}
    consts = {k: v for k, v in data.items() if k not in feeds}
    return feeds, consts


def _run_engine(model, feeds):
    sess = engine.Session(model.SerializeToString())
    return sess.run(dict(feeds))


def _check(op, data, attrs, opset, want=("Y", "Y_h", "Y_c"), weights_const=True, oracle="ref", tol=2e-5):
    outs = _outputs(op, want)
    feeds, consts = _split(data, weights_const)
    model = _model(op, feeds, consts, outs, attrs, opset)
    got = _run_engine(model, feeds)
    if oracle == "ref":
        exp = ReferenceEvaluator(model).run(None, feeds)
    else:
        ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the oracle for attributes onnx's "
                                                        "reference implementation ignores")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        exp = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    names = [n for n in outs if n]
    assert set(got) == set(names)
    for n, e in zip(names, exp):
        g = got[n]
        assert g.dtype == e.dtype, (n, g.dtype, e.dtype)
        assert g.shape == e.shape, (n, g.shape, e.shape)
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol, err_msg=n)


# ---------------------------------------------------------------------------------------------------------
# against the reference


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("weights_const", [True, False])
def test_directions(op, direction, weights_const):
    D = 2 if direction == "bidirectional" else 1
    data = _data(op, 5, 3, 4, 6, D, h0=True, c0=(op == "LSTM"), key=direction)
    _check(op, data, {"hidden_size": 6, "direction": direction}, 13, weights_const=weights_const)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_layout_batch_major(op, direction):
    D = 2 if direction == "bidirectional" else 1
    data = _data(op, 4, 2, 3, 5, D, layout=1, h0=True, c0=(op == "LSTM"))
    _check(op, data, {"hidden_size": 5, "direction": direction, "layout": 1}, 14)


@pytest.mark.parametrize("op,opset", [("LSTM", 7), ("GRU", 7), ("RNN", 7), ("GRU", 3), ("LSTM", 22)])
def test_old_and_new_opsets_no_bias(op, opset):
    data = _data(op, 3, 2, 3, 4, 1, bias=False)
    _check(op, data, {"hidden_size": 4}, opset)


def test_hidden_size_inferred_and_only_y_h():
    data = _data("GRU", 4, 2, 3, 4, 1)
    _check("GRU", data, {}, 13, want=("Y_h",))


def test_lstm_peepholes_bidirectional():
    data = _data("LSTM", 4, 2, 3, 5, 2, peep=True, h0=True, c0=True)
    _check("LSTM", data, {"hidden_size": 5, "direction": "bidirectional"}, 13)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_gru_linear_before_reset(direction):
    D = 2 if direction == "bidirectional" else 1
    data = _data("GRU", 5, 2, 3, 4, D, h0=True)
    _check("GRU", data, {"hidden_size": 4, "linear_before_reset": 1, "direction": direction}, 14)


def test_float64():
    data = _data("LSTM", 3, 2, 3, 4, 1, dtype=np.float64)
    _check("LSTM", data, {"hidden_size": 4}, 14, tol=1e-10)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_float16(op):
    data = _data(op, 4, 2, 3, 4, 2, dtype=np.float16, h0=True)
    _check(op, data, {"hidden_size": 4, "direction": "bidirectional"}, 14, tol=3e-3)


def test_hidden_one():
    data = _data("RNN", 3, 1, 2, 1, 1)
    _check("RNN", data, {"hidden_size": 1}, 14)


# ---------------------------------------------------------------------------------------------------------
# against onnxruntime (attributes the reference ignores)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_sequence_lens(op, direction):
    D = 2 if direction == "bidirectional" else 1
    data = _data(op, 6, 4, 3, 5, D, h0=True, c0=(op == "LSTM"), key="lens")
    data["sequence_lens"] = np.array([6, 1, 4, 3], np.int32)
    _check(op, data, {"hidden_size": 5, "direction": direction}, 13, oracle="ort")


@pytest.mark.parametrize("op,acts,alpha,beta", [
    ("RNN", ["Relu"], None, None),
    ("RNN", ["LeakyRelu", "ThresholdedRelu"], [0.2, 0.3], None),
    ("GRU", ["HardSigmoid", "Softsign"], [0.3], [0.4]),
    ("GRU", ["Sigmoid", "Elu"], [0.7], None),
    ("LSTM", ["HardSigmoid", "ScaledTanh", "Affine"], [0.25, 0.8, 0.5], [0.45, 1.2, 0.1]),
    ("LSTM", ["Sigmoid", "Softplus", "Softsign", "Sigmoid", "Tanh", "Tanh"], None, None),
])
def test_activations(op, acts, alpha, beta):
    D = 1 if len(acts) <= {"LSTM": 3, "GRU": 2, "RNN": 1}[op] else 2
    if op == "RNN" and len(acts) == 2:
        D = 2
    attrs = {"hidden_size": 4, "activations": acts, "direction": "bidirectional" if D == 2 else "forward"}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    data = _data(op, 5, 2, 3, 4, D, key=tuple(acts))
    data["X"] = data["X"] * 2
    _check(op, data, attrs, 13, oracle="ort")


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_clip(op):
    data = _data(op, 4, 2, 3, 4, 1, peep=(op == "LSTM"), c0=(op == "LSTM"))
    data["X"] = data["X"] * 4
    _check(op, data, {"hidden_size": 4, "clip": 0.7}, 13, oracle="ort")


def test_lstm_input_forget():
    data = _data("LSTM", 4, 2, 3, 4, 1)
    _check("LSTM", data, {"hidden_size": 4, "input_forget": 1}, 13, oracle="ort")


# ---------------------------------------------------------------------------------------------------------
# errors


def test_unknown_activation_is_unsupported():
    data = _data("RNN", 2, 1, 2, 3, 1)
    feeds, consts = _split(data, True)
    m = _model("RNN", feeds, consts, ["Y"], {"hidden_size": 3, "activations": ["Gelu"]}, 13)
    with pytest.raises(UnsupportedModelError, match="unknown activation"):
        engine.Session(m.SerializeToString())


def test_wrong_weight_shape_at_run():
    data = _data("GRU", 2, 1, 2, 3, 1)
    data["R"] = data["R"][:, :, :2].copy()
    feeds, consts = _split(data, False)
    m = _model("GRU", feeds, consts, ["Y"], {}, 13)
    with pytest.raises(RunError, match=r"GRU: [WR] has shape"):
        engine.Session(m.SerializeToString()).run(feeds)


def test_sequence_lens_out_of_range():
    data = _data("RNN", 3, 2, 2, 3, 1)
    data["sequence_lens"] = np.array([4, 1], np.int32)
    feeds, consts = _split(data, True)
    m = _model("RNN", feeds, consts, ["Y"], {"hidden_size": 3}, 13)
    with pytest.raises(RunError, match="sequence_lens"):
        engine.Session(m.SerializeToString()).run(feeds)


def test_hidden_size_mismatch():
    data = _data("RNN", 3, 2, 2, 3, 1)
    feeds, consts = _split(data, True)
    m = _model("RNN", feeds, consts, ["Y"], {"hidden_size": 5}, 13)
    with pytest.raises(UnsupportedModelError, match="hidden_size"):
        engine.Session(m.SerializeToString())


def test_concurrent_runs_agree():
    # run() keeps its scratch per call: two threads on one session give the single-thread results
    from concurrent.futures import ThreadPoolExecutor
    data = _data("LSTM", 6, 2, 4, 8, 2, h0=True, c0=True)
    feeds, consts = _split(data, True)
    sess = engine.Session(_model("LSTM", feeds, consts, ["Y", "Y_h", "Y_c"],
                                 {"hidden_size": 8, "direction": "bidirectional"}, 14).SerializeToString())
    xs = [dict(feeds, X=(feeds["X"] * (1 + 0.1 * i)).astype(np.float32)) for i in range(8)]
    want = [sess.run(f) for f in xs]
    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(sess.run, xs))
    for w, g in zip(want, got):
        for k in w:
            np.testing.assert_array_equal(w[k], g[k])

"""Whole models against onnxruntime (issue 3, point 6): every family of tests/model_zoo.py, small size.

For each family: the model is valid and onnxruntime runs it (these tests check the models themselves, and pass
without engine's executor); engine.run and engine.Session agree with onnxruntime to tolerances.MODEL_FP32_REL
(max|a - b| / max|b| per output) for float32 outputs, one float16 ulp for float16 outputs, exactly for integer
outputs, with identical argmax for classifier outputs; models with symbolic input dims run two sizes through ONE
Session; the onnxruntime call form `Session.run(output_names, feed)` returns a list in output order.

The reference is onnxruntime with graph optimizations OFF: the ops as the ONNX spec defines them. With them on,
onnxruntime fuses the QDQ model into int8 kernels whose u8 x s8 pair sums saturate on AVX2 (vpmaddubsw; measured:
the qdq logits move by 2.9 and the argmax changes), which is onnxruntime's rounding choice, not the model's.
test_onnxruntime_optimizations_keep_float_models checks that for the float families the optimized onnxruntime
agrees with the unoptimized one, so the reference is not an artefact of switching optimizations off.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference these tests compare engine against")
onnx = pytest.importorskip("onnx", reason="the model builders need the onnx package")

sys.path.insert(0, os.path.dirname(__file__))
import model_zoo as mz  # noqa: E402
import tolerances as tol  # noqa: E402

import engine  # noqa: E402
from engine.testing import quick  # noqa: E402

FAMILIES = sorted(mz.FAMILIES)
_MODELS: dict[str, onnx.ModelProto] = {}


def model(name: str) -> onnx.ModelProto:
    if name not in _MODELS:
        _MODELS[name] = mz.FAMILIES[name].build()
    return _MODELS[name]


def first_dims(name: str) -> dict:
    return mz.DYNAMIC_DIMS.get(name, ({},))[0]


def ort_session(m: onnx.ModelProto, optimize: bool = False):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else
                                   ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_run(sess, feeds) -> dict:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got - ref| / max(max|ref|, tiny), in float64; inf when the NaN/inf positions differ."""
    g, r = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if g.size == 0:
        return 0.0
    finite = np.isfinite(r)
    if not np.array_equal(finite, np.isfinite(g)) or not np.array_equal(g[~finite], r[~finite], equal_nan=True):
        return float("inf")
    if not finite.any():
        return 0.0
    return float(np.abs(g[finite] - r[finite]).max() / max(np.abs(r[finite]).max(), tol.MODEL_TINY))


def assert_agree(family: str, got: dict, ref: dict, what: str = "") -> None:
    """engine outputs `got` against onnxruntime outputs `ref` (both name -> array), every output."""
    where = f"{family}{' ' + what if what else ''}"
    assert set(got) == set(ref), f"{where}: output names {sorted(got)} != onnxruntime's {sorted(ref)}"
    for name, r in ref.items():
        g = np.asarray(got[name])
        assert g.dtype == r.dtype, f"{where} output {name!r}: dtype {g.dtype}, onnxruntime {r.dtype}"
        assert g.shape == r.shape, f"{where} output {name!r}: shape {g.shape}, onnxruntime {r.shape}"
        if r.dtype.kind in "iub":
            bad = int(np.count_nonzero(g != r))
            assert bad == 0, f"{where} output {name!r}: {bad} of {r.size} integer elements differ"
        else:
            limit = tol.MODEL_FP16_REL if r.dtype == np.float16 else tol.MODEL_FP32_REL
            err = max_rel_err(g, r)
            assert err <= limit, f"{where} output {name!r}: max relative error {err:.3g} > {limit:.3g}"
        if name in mz.CLASSIFIER_OUTPUTS.get(family, ()):
            ga, ra = np.argmax(g, axis=-1), np.argmax(r, axis=-1)
            assert np.array_equal(ga, ra), f"{where} output {name!r}: argmax {ga.ravel()} != {ra.ravel()}"


# --- the models themselves (no engine needed) -----------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_model_is_valid_and_runs_on_onnxruntime(family):
    m = model(family)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == mz.IR_VERSION
    sess = ort_session(m)
    for dims in mz.DYNAMIC_DIMS.get(family, ({},)):
        feeds = mz.FAMILIES[family].make_inputs(m, 0, **dims)
        out = ort_run(sess, feeds)
        for name, v in out.items():
            assert v.size > 0, f"{family} {name}: empty output"
            if v.dtype.kind == "f":
                assert np.isfinite(v).all(), f"{family} {name}: non-finite values"
                assert np.abs(v).max() > 0, f"{family} {name}: all zeros (activations vanished)"
        # an argmax comparison only means something when the top class stands clear of the runner-up by far more
        # than the tolerance: require 100x the float32 tolerance
        for name in mz.CLASSIFIER_OUTPUTS.get(family, ()):
            v = out[name].astype(np.float64).reshape(-1, out[name].shape[-1])
            top2 = np.sort(v, axis=-1)[:, -2:]
            gap = float((top2[:, 1] - top2[:, 0]).min() / np.abs(v).max())
            assert gap > 100 * tol.MODEL_FP32_REL, f"{family} {name}: top-2 gap {gap:.2e} too small for argmax"


def test_symbolic_dims_are_symbolic():
    """The dynamic families really declare symbolic input dims (else the one-Session test proves nothing)."""
    for family, settings in mz.DYNAMIC_DIMS.items():
        if family == "control_flow":
            continue
        params = {d.dim_param for vi in model(family).graph.input for d in vi.type.tensor_type.shape.dim
                  if d.dim_param}
        assert set(settings[0]) <= params and set(settings[1]) <= params, (family, params)
        feeds = [mz.FAMILIES[family].make_inputs(model(family), 0, **s) for s in settings]
        assert [v.shape for v in feeds[0].values()] != [v.shape for v in feeds[1].values()], family


def test_control_flow_inputs_take_both_branches():
    m = model("control_flow")
    sums = [float(mz.make_control_flow_inputs(m, 0, **s)["x"].sum()) for s in mz.DYNAMIC_DIMS["control_flow"]]
    assert sums[0] > 0 > sums[1]


@pytest.mark.skipif(quick(), reason="ENGINE_TEST_QUICK=1: this checks onnxruntime itself, not engine")
@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"qdq"}))
def test_onnxruntime_optimizations_keep_float_models(family):
    m = model(family)
    feeds = mz.FAMILIES[family].make_inputs(m, 0, **first_dims(family))
    assert_agree(family, ort_run(ort_session(m, optimize=True), feeds), ort_run(ort_session(m), feeds),
                 "onnxruntime optimized vs unoptimized")


# --- engine against onnxruntime ------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_engine_supports_every_node(family):
    """engine.check lists no unsupported node (separates 'cannot run' from 'runs and disagrees' below)."""
    problems = engine.check(model(family))
    assert not problems, f"{family}: " + "; ".join(str(p) for p in problems)


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_run_agrees_with_onnxruntime(family):
    m = model(family)
    feeds = mz.FAMILIES[family].make_inputs(m, 0, **first_dims(family))
    ref = ort_run(ort_session(m), feeds)
    got = engine.run(m, feeds)
    assert isinstance(got, dict), type(got)
    assert_agree(family, got, ref, "engine.run")


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_without_passes_agrees_with_onnxruntime(family):
    """Graph passes (fusions, BatchNormalization folding) and constant folding off: the plain op-by-op path must
    agree too, so a fusion cannot hide a wrong op (or the other way round)."""
    m = model(family)
    feeds = mz.FAMILIES[family].make_inputs(m, 0, **first_dims(family))
    ref = ort_run(ort_session(m), feeds)
    opts = engine.SessionOptions(passes="none", fold_constants=False)
    assert_agree(family, engine.Session(m, opts).run(feeds), ref, "passes and folding off")


@pytest.mark.parametrize("family", sorted(mz.DYNAMIC_DIMS))
def test_one_session_runs_two_sizes(family):
    """Symbolic batch / sequence / image dims (and for control_flow both If branches) through ONE Session, and
    the first size again after the second (a cached plan for a size must not leak into another)."""
    m = model(family)
    sess = engine.Session(m)
    ref_sess = ort_session(m)
    a, b = mz.DYNAMIC_DIMS[family]
    for dims in (a, b, a):
        feeds = mz.FAMILIES[family].make_inputs(m, 1, **dims)
        assert_agree(family, sess.run(feeds), ort_run(ref_sess, feeds), f"Session {dims}")


@pytest.mark.parametrize("family", ["resnet", "bert", "face_detection", "vad"])
def test_onnxruntime_call_form(family):
    """Session.run(None, feed) -> list in output order; run([names], feed) -> that subset in that order;
    .inputs / .outputs name what onnxruntime names."""
    m = model(family)
    feeds = mz.FAMILIES[family].make_inputs(m, 0, **first_dims(family))
    ref_sess = ort_session(m)
    ref = ort_run(ref_sess, feeds)
    sess = engine.Session(m)
    assert [i.name for i in sess.inputs] == [i.name for i in ref_sess.get_inputs()]
    assert [o.name for o in sess.outputs] == [o.name for o in ref_sess.get_outputs()]
    for i, ri in zip(list(sess.inputs) + list(sess.outputs), ref_sess.get_inputs() + ref_sess.get_outputs()):
        assert i.type == ri.type, (i.name, i.type, ri.type)
    for i, ri in zip(sess.inputs, ref_sess.get_inputs()):
        assert len(i.shape) == len(ri.shape), (i.name, i.shape, ri.shape)
        assert [d if isinstance(d, int) else None for d in i.shape] == \
            [d if isinstance(d, int) else None for d in ri.shape], (i.name, i.shape, ri.shape)
    out = sess.run(None, feeds)
    assert isinstance(out, list) and len(out) == len(ref)
    assert_agree(family, dict(zip(ref, out)), ref, "Session.run(None, feed)")
    names = list(ref)[::-1]
    out = sess.run(names, feeds)
    assert isinstance(out, list) and len(out) == len(names)
    assert_agree(family, dict(zip(names, out)), {n: ref[n] for n in names}, "Session.run(reversed names, feed)")


def test_input_and_model_forms(tmp_path):
    """engine.run takes the model as a path, bytes or ModelProto, the inputs as a dict, a list in input order
    or one array, and output_names selects outputs."""
    m = model("resnet")
    feeds = mz.FAMILIES["resnet"].make_inputs(m, 0)
    (x,) = feeds.values()
    ref = ort_run(ort_session(m), feeds)
    path = tmp_path / "resnet.onnx"
    path.write_bytes(m.SerializeToString())
    for form, mm, inp in (("path str", str(path), feeds), ("pathlib", path, feeds),
                          ("bytes", m.SerializeToString(), feeds), ("list", m, [x]), ("array", m, x)):
        assert_agree("resnet", engine.run(mm, inp), ref, f"model/input form {form}")
    mb = model("bert")
    feeds = mz.FAMILIES["bert"].make_inputs(mb, 0)
    ref = ort_run(ort_session(mb), feeds)
    got = engine.run(mb, list(feeds.values()), output_names=["logits"])
    assert list(got) == ["logits"]
    assert_agree("bert", got, {"logits": ref["logits"]}, "list inputs + output_names")


@pytest.mark.parametrize("family", ["resnet", "mobilenetv2", "bert", "ocr_rec"])
def test_two_threads_agree(family):
    m = model(family)
    feeds = mz.FAMILIES[family].make_inputs(m, 0, **first_dims(family))
    ref = ort_run(ort_session(m), feeds)
    engine.set_num_threads(2)  # the autouse fixture in conftest.py restores the pool size
    assert_agree(family, engine.Session(m).run(feeds), ref, "2 threads")


@pytest.mark.parametrize("family", ["resnet", "resnet_bottleneck"])
def test_residual_blocks_are_fused(family):
    """fold_batchnorm, fuse_conv_add and fuse_activation leave no BatchNormalization, Add or Relu in a ResNet: each
    residual block ends in one FusedConv whose input 3 is the shortcut and whose activation is the block's Relu."""
    m = model(family)
    adds = sum(n.op_type == "Add" for n in m.graph.node)
    assert adds >= 2
    nodes = [st.node for st in engine.Session(m)._plan.steps]
    ops = {n.op_type for n in nodes}
    assert not ops & {"BatchNormalization", "Add", "Relu"}, ops
    residual = [n for n in nodes if n.op_type == "FusedConv" and len(n.inputs) == 4]
    assert len(residual) == adds and all(n.attrs.get("activation") == "relu" for n in residual)

"""engine.Session / engine.run / engine.check: loading, planning, inputs, errors, threads."""
from __future__ import annotations

import os
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import engine
from engine.errors import EngineError


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _mlp():
    """x[N,4] -> MatMul W[4,3] -> Add b -> Relu -> y[N,3]"""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    m = _model([h.make_node("MatMul", ["x", "w"], ["t"], name="mm"), h.make_node("Add", ["t", "b"], ["u"], name="add"),
                h.make_node("Relu", ["u"], ["y"], name="relu")],
               [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])], [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])],
               [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return m, (lambda x: np.maximum(x @ w + b, 0))


def _shape_chain():
    """x[N,S,8] -> Reshape to [N*S... via Shape->Gather->Concat] -> y[N, S*8]: the PyTorch export pattern."""
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "ax0"], ["n1"]), h.make_node("Concat", ["n1", "m1"], ["shape"], axis=0),
             h.make_node("Reshape", ["x", "shape"], ["r"]), h.make_node("Relu", ["r"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "i0"), numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([-1], np.int64), "m1")]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", "S", 8])],
                  [h.make_tensor_value_info("y", T.FLOAT, ["N", None])], inits)


# ------------------------------------------------------------------------------------------------- loading
def test_run_from_proto_bytes_and_path(tmp_path):
    m, ref = _mlp()
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    for src in (m, m.SerializeToString(), str(p), p):
        out = engine.run(src, {"x": x})
        np.testing.assert_allclose(out["y"], ref(x), rtol=1e-5, atol=1e-6)


def test_input_forms_and_ort_form():
    m, ref = _mlp()
    s = engine.Session(m)
    x = np.ones((2, 4), np.float32)
    a = s.run({"x": x})["y"]
    np.testing.assert_array_equal(s.run([x])["y"], a)
    np.testing.assert_array_equal(s.run(x)["y"], a)
    (b,) = s.run(None, {"x": x})
    np.testing.assert_array_equal(b, a)
    (c,) = s.run(["y"], {"x": x})
    np.testing.assert_array_equal(c, a)
    assert [i.name for i in s.get_inputs()] == ["x"] and s.get_inputs()[0].shape == ("N", 4)
    assert s.inputs[0].dtype == np.float32 and s.outputs[0].shape == ("N", 3)
    assert s.get_inputs()[0].type == "tensor(float)"


def test_external_data_is_memory_mapped(tmp_path):
    m, ref = _mlp()
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()  # onnx.save below moves it to the external file
    big = np.arange(4096, dtype=np.float32).reshape(1024, 4)
    m.graph.initializer.append(numpy_helper.from_array(big, "big"))
    m.graph.node.append(h.make_node("MatMul", ["big", "w"], ["z"]))
    m.graph.output.append(h.make_tensor_value_info("z", T.FLOAT, [1024, 3]))
    onnx.save(m, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert os.path.exists(tmp_path / "weights.bin")
    s = engine.Session(str(tmp_path / "ext.onnx"), options=engine.SessionOptions(fold_constants=False))
    arr = s._plan.consts["big"]
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert type(base).__name__ == "mmap", f"external weights were copied (base {type(base)})"
    x = np.ones((2, 4), np.float32)
    out = s.run({"x": x})
    np.testing.assert_allclose(out["y"], ref(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["z"], big @ w, rtol=1e-5, atol=1e-5)  # sums of +-values: absolute error
    # from bytes, the external file cannot be found: a clear error
    with pytest.raises(engine.ModelLoadError, match="external"):
        engine.Session(onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False).SerializeToString())


def test_external_data_outside_model_dir_is_refused(tmp_path):
    m, _ = _mlp()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = T.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")
    p = tmp_path / "evil.onnx"
    p.write_bytes(m.SerializeToString())
    with pytest.raises(engine.ModelLoadError, match="leaves the model's directory"):
        engine.Session(str(p))


# -------------------------------------------------------------------------------------------------- errors
def test_input_errors_name_the_input():
    m, _ = _mlp()
    s = engine.Session(m)
    with pytest.raises(engine.InvalidInputError, match=r"missing input.*'x'"):
        s.run({})
    with pytest.raises(engine.InvalidInputError, match=r"unknown input name.*'q'"):
        s.run({"x": np.ones((1, 4), np.float32), "q": np.ones(1)})
    with pytest.raises(engine.InvalidInputError, match=r"'x'.*expected dtype float32, got float64"):
        s.run({"x": np.ones((1, 4))})
    with pytest.raises(engine.InvalidInputError, match=r"'x'.*expected rank 2.*got rank 1"):
        s.run({"x": np.ones(4, np.float32)})
    with pytest.raises(engine.InvalidInputError, match=r"'x'.*dimension 1 must be 4.*got 5"):
        s.run({"x": np.ones((1, 5), np.float32)})
    with pytest.raises(engine.InvalidInputError, match="unknown output name"):
        s.run({"x": np.ones((1, 4), np.float32)}, output_names=["nope"])
    with pytest.raises(engine.InvalidInputError, match="expected a numpy array"):
        s.run({"x": "hello"})


def test_symbolic_dims_must_agree():
    m = _model([h.make_node("Add", ["a", "b"], ["y"])],
               [h.make_tensor_value_info("a", T.FLOAT, ["N", 3]), h.make_tensor_value_info("b", T.FLOAT, ["N", 3])],
               [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])])
    s = engine.Session(m)
    with pytest.raises(engine.InvalidInputError, match=r"'b'.*'N'.*is 3.*input 'a' gave 'N' = 2"):
        s.run({"a": np.ones((2, 3), np.float32), "b": np.ones((3, 3), np.float32)})


def test_check_lists_every_problem_with_node_names():
    m = _model([h.make_node("FancyOp", ["x"], ["t"], name="first_bad"),
                h.make_node("Relu", ["t"], ["u"], name="fine"),
                h.make_node("OtherOp", ["u"], ["y"], name="second_bad", domain="com.example")],
               [h.make_tensor_value_info("x", T.FLOAT, [2])], [h.make_tensor_value_info("y", T.FLOAT, [2])])
    m.opset_import.append(h.make_opsetid("com.example", 1))
    problems = engine.check(m)
    names = " ".join(str(p) for p in problems)
    assert "first_bad" in names and "second_bad" in names and "com.example" in names, names
    assert "fine" not in names
    with pytest.raises(engine.UnsupportedModelError) as ei:
        engine.Session(m)
    assert len(ei.value.problems) == len(problems) and "first_bad" in str(ei.value)
    mm, _ = _mlp()
    assert engine.check(mm) == []


def test_bad_attribute_is_reported_not_crashed():
    m = _model([h.make_node("Transpose", ["x"], ["y"], perm=[0, 5])],
               [h.make_tensor_value_info("x", T.FLOAT, [2, 3])], [h.make_tensor_value_info("y", T.FLOAT, [3, 2])])
    with pytest.raises(EngineError):
        engine.run(m, {"x": np.ones((2, 3), np.float32)})


def test_corrupt_and_truncated_files_raise(tmp_path):
    m, _ = _mlp()
    data = m.SerializeToString()
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(data), 40).tolist()))
    x = np.ones((1, 4), np.float32)
    for cut in cuts:
        try:
            engine.run(data[:cut], {"x": x})
        except (EngineError, ValueError, TypeError):
            pass  # any clear exception; a crash would kill the test process
    for _ in range(40):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), 3):
            b[pos] = int(rng.integers(0, 256))
        try:
            engine.run(bytes(b), {"x": x})
        except (EngineError, ValueError, TypeError):
            pass
    with pytest.raises(engine.ModelLoadError):
        engine.Session(b"this is not an onnx model at all")
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(engine.ModelLoadError):
        engine.Session(str(p))
    with pytest.raises(FileNotFoundError):
        engine.Session(str(tmp_path / "missing.onnx"))


def test_crafted_huge_shapes_raise():
    t = onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[1 << 31, 1 << 31])
    t.raw_data = b"\0" * 16
    m = _model([h.make_node("Identity", ["w"], ["y"])], [], [h.make_tensor_value_info("y", T.FLOAT, None)], [t])
    with pytest.raises(engine.ModelLoadError, match="'w'"):
        engine.Session(m)
    t2 = onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[4, 4])
    t2.raw_data = b"\0" * 12  # too short
    m2 = _model([h.make_node("Identity", ["w"], ["y"])], [], [h.make_tensor_value_info("y", T.FLOAT, None)], [t2])
    with pytest.raises(engine.ModelLoadError, match="raw data has 12 bytes"):
        engine.Session(m2)
    # a runtime shape that overflows
    m3 = _model([h.make_node("Reshape", ["x", "s"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, [4]),
                h.make_tensor_value_info("s", T.INT64, [3])], [h.make_tensor_value_info("y", T.FLOAT, None)])
    with pytest.raises(EngineError):
        engine.run(m3, {"x": np.ones(4, np.float32), "s": np.array([1 << 62, 1 << 62, 4], np.int64)})


# ------------------------------------------------------------------------------------------------ planning
def test_constant_folding_and_dead_nodes():
    c = numpy_helper.from_array(np.arange(3, dtype=np.float32), "c")
    m = _model([h.make_node("Relu", ["c"], ["rc"]), h.make_node("Add", ["rc", "rc"], ["k"]),
                h.make_node("Add", ["x", "k"], ["y"]), h.make_node("Neg", ["x"], ["dead"])],
               [h.make_tensor_value_info("x", T.FLOAT, [3])], [h.make_tensor_value_info("y", T.FLOAT, [3])], [c])
    s = engine.Session(m)
    assert [st.node.op_type for st in s._plan.steps] == ["Add"], "constant nodes not folded or dead node kept"
    np.testing.assert_array_equal(s.run({"x": np.ones(3, np.float32)})["y"], [1, 3, 5])
    s2 = engine.Session(m, engine.SessionOptions(fold_constants=False))
    assert len(s2._plan.steps) == 3
    np.testing.assert_array_equal(s2.run({"x": np.ones(3, np.float32)})["y"], [1, 3, 5])


@pytest.mark.parametrize("specialize", [True, False])
def test_shape_chain_per_signature(specialize):
    s = engine.Session(_shape_chain(), engine.SessionOptions(specialize_shapes=specialize))
    rng = np.random.default_rng(0)
    for shape in [(2, 3, 8), (5, 1, 8), (2, 3, 8), (1, 7, 8)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = s.run({"x": x})["y"]
        np.testing.assert_array_equal(y, np.maximum(x.reshape(shape[0], -1), 0))
    if specialize:
        plans = s._plan._specialized
        assert len(plans) == 3  # one per distinct signature, reused for the repeat
        template, program = next(iter(plans.values()))
        assert [p[4].node.op_type for p in program] == ["Reshape", "Relu"], "shape subgraph not pre-computed"


def test_outputs_are_never_the_models_weights():
    c = numpy_helper.from_array(np.arange(3, dtype=np.float32), "c")
    m = _model([h.make_node("Identity", ["c"], ["y"])], [], [h.make_tensor_value_info("y", T.FLOAT, [3])], [c])
    s = engine.Session(m)
    y = s.run({})["y"]
    y[:] = 7  # writable, and a copy
    np.testing.assert_array_equal(s.run({})["y"], [0, 1, 2])


def test_unsorted_graph_is_sorted_and_cycles_are_reported():
    m, ref = _mlp()
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(reversed(nodes))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(engine.run(m, {"x": x})["y"], ref(x), rtol=1e-5, atol=1e-6)
    cyc = _model([h.make_node("Relu", ["b"], ["a"]), h.make_node("Relu", ["a"], ["b"])],
                 [h.make_tensor_value_info("x", T.FLOAT, [1])], [h.make_tensor_value_info("b", T.FLOAT, [1])])
    with pytest.raises(engine.ModelLoadError, match="cycle"):
        engine.Session(cyc)


def test_runtime_error_names_the_node():
    m = _model([h.make_node("MatMul", ["a", "b"], ["y"], name="the_matmul")],
               [h.make_tensor_value_info("a", T.FLOAT, None), h.make_tensor_value_info("b", T.FLOAT, None)],
               [h.make_tensor_value_info("y", T.FLOAT, None)])
    with pytest.raises(engine.RunError, match="the_matmul"):
        engine.run(m, {"a": np.ones((2, 3), np.float32), "b": np.ones((4, 5), np.float32)})


# ----------------------------------------------------------------------------------------- control flow
def test_if_loop_scan_with_outer_scope_values():
    then_g = h.make_graph([h.make_node("Add", ["x", "one"], ["t"])], "then", [], [h.make_tensor_value_info("t", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Sub", ["x", "one"], ["e"])], "else", [], [h.make_tensor_value_info("e", T.FLOAT, [2])])
    body = h.make_graph([h.make_node("Mul", ["acc", "x"], ["acc2"]), h.make_node("Identity", ["c"], ["c2"]),
                         h.make_node("Identity", ["acc2"], ["scan_out"])], "body",
                        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("c", T.BOOL, []),
                         h.make_tensor_value_info("acc", T.FLOAT, [2])],
                        [h.make_tensor_value_info("c2", T.BOOL, []), h.make_tensor_value_info("acc2", T.FLOAT, [2]),
                         h.make_tensor_value_info("scan_out", T.FLOAT, [2])])
    sbody = h.make_graph([h.make_node("Add", ["s", "xi"], ["s2"]), h.make_node("Identity", ["s2"], ["o"])], "sbody",
                         [h.make_tensor_value_info("s", T.FLOAT, [2]), h.make_tensor_value_info("xi", T.FLOAT, [2])],
                         [h.make_tensor_value_info("s2", T.FLOAT, [2]), h.make_tensor_value_info("o", T.FLOAT, [2])])
    one = numpy_helper.from_array(np.ones(2, np.float32), "one")
    m = _model([h.make_node("If", ["cond"], ["r"], then_branch=then_g, else_branch=else_g),
                h.make_node("Loop", ["n", "", "x"], ["acc_final", "accs"], body=body),
                h.make_node("Scan", ["x", "seq"], ["ssum", "partials"], body=sbody, num_scan_inputs=1)],
               [h.make_tensor_value_info("cond", T.BOOL, []), h.make_tensor_value_info("x", T.FLOAT, [2]),
                h.make_tensor_value_info("n", T.INT64, []), h.make_tensor_value_info("seq", T.FLOAT, [3, 2])],
               [h.make_tensor_value_info("r", T.FLOAT, [2]), h.make_tensor_value_info("acc_final", T.FLOAT, [2]),
                h.make_tensor_value_info("accs", T.FLOAT, [None, 2]), h.make_tensor_value_info("ssum", T.FLOAT, [2]),
                h.make_tensor_value_info("partials", T.FLOAT, [3, 2])], [one])
    x = np.array([2, 3], np.float32)
    seq = np.arange(6, dtype=np.float32).reshape(3, 2)
    s = engine.Session(m)
    for cond in (True, False):
        out = s.run({"cond": np.array(cond), "x": x, "n": np.array(3, np.int64), "seq": seq})
        np.testing.assert_array_equal(out["r"], x + 1 if cond else x - 1)
        np.testing.assert_array_equal(out["acc_final"], x ** 4)
        np.testing.assert_array_equal(out["accs"], np.stack([x ** 2, x ** 3, x ** 4]))
        np.testing.assert_array_equal(out["ssum"], x + seq.sum(0))
        np.testing.assert_array_equal(out["partials"], x + np.cumsum(seq, 0))


# ------------------------------------------------------------------------------------------------ threads
def test_one_session_many_threads():
    s = engine.Session(_shape_chain())
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1 + i % 3, 2 + i % 2, 8)).astype(np.float32) for i in range(12)]
    want = [s.run({"x": x})["y"] for x in xs]
    errors, got = [], {}

    def work(k):
        try:
            for r in range(20):
                i = (k + r) % len(xs)
                y = s.run({"x": xs[i]})["y"]
                if not np.array_equal(y, want[i]):
                    errors.append((k, i))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def _alias_models():
    """Models whose outputs are, before the copy in Session.run, the caller's input array or views of it."""
    x = h.make_tensor_value_info("x", T.FLOAT, [2, 3])
    shape = numpy_helper.from_array(np.array([3, 2], np.int64), "shape")
    ax = numpy_helper.from_array(np.array([0], np.int64), "ax")
    yield "identity", _model([h.make_node("Identity", ["x"], ["y"])], [x], [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    # the Identity is removed by drop_identity: y is the Reshape of x, a view of the input
    yield "dropped identity + reshape", _model(
        [h.make_node("Identity", ["x"], ["t"]), h.make_node("Reshape", ["t", "shape"], ["y"])], [x],
        [h.make_tensor_value_info("y", T.FLOAT, [3, 2])], [shape])
    yield "unsqueeze", _model([h.make_node("Unsqueeze", ["x", "ax"], ["y"])], [x],
                              [h.make_tensor_value_info("y", T.FLOAT, [1, 2, 3])], [ax])
    yield "two outputs of one value", _model(
        [h.make_node("Relu", ["x"], ["r"]), h.make_node("Identity", ["r"], ["y"]), h.make_node("Identity", ["r"], ["z"])],
        [x], [h.make_tensor_value_info("y", T.FLOAT, [2, 3]), h.make_tensor_value_info("z", T.FLOAT, [2, 3])])


@pytest.mark.parametrize("passes", ["all", "none"])
def test_outputs_never_alias_inputs_or_each_other(passes):
    for what, m in _alias_models():
        s = engine.Session(m, engine.SessionOptions(passes=passes))
        for _ in range(2):  # the first run builds the specialised plan, the second uses it
            x = np.arange(6, dtype=np.float32).reshape(2, 3)
            keep = x.copy()
            out = s.run({"x": x})
            for name, y in out.items():
                assert not np.shares_memory(y, x), (what, name)
                y[...] = -1  # mutating an output leaves the input alone
                np.testing.assert_array_equal(x, keep, err_msg=what)
            if len(out) == 2:
                assert not np.shares_memory(out["y"], out["z"]), what
            out = s.run({"x": x})
            x[...] = 5  # mutating the input leaves an earlier output alone
            for name, y in out.items():
                np.testing.assert_array_equal(y.reshape(-1), np.maximum(keep.reshape(-1), 0), err_msg=what)


def test_outputs_computed_from_shapes_are_fresh_each_run():
    # Shape's output is pre-computed once per input signature: each run must hand out its own copy
    m = _model([h.make_node("Shape", ["x"], ["s"]), h.make_node("Relu", ["x"], ["y"])],
               [h.make_tensor_value_info("x", T.FLOAT, ["N"])],
               [h.make_tensor_value_info("s", T.INT64, [1]), h.make_tensor_value_info("y", T.FLOAT, ["N"])])
    s = engine.Session(m)
    x = np.ones(4, np.float32)
    for _ in range(3):
        out = s.run({"x": x})
        np.testing.assert_array_equal(out["s"], [4])
        out["s"][:] = 99

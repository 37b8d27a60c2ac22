"""The bundled demo and the command line around it.

- scripts/make_demo_model.py: its data set renderer, training gradients, .npz writer and ONNX export are
  deterministic and correct on small inputs (the full run takes ~50 s: ENGINE_TEST_REGEN=1 runs it and compares
  with the committed files).
- engine/data/demo_cnn.onnx and demo_digits.npz (the committed outputs, shipped in the wheel): declared as the
  README says, small, and a numpy reference of the CNN reaches the accuracy the model's doc_string claims.
- `python -m engine demo` and `python -m engine run` on engine.Session, checked against that numpy reference and
  against a tiny model built here; command-line mistakes exit with status 2 and one line, no traceback.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import engine
from engine import demo
from engine.testing import quick

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "make_demo_model.py")
# Where `python -m engine` finds the engine under test (the source tree in place, site-packages for a wheel).
ENGINE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(engine.__file__)))



def unsupported_reason(model) -> str | None:
    """Why engine cannot run `model` yet (ops the executor does not implement), or None. Tests of the commands
    on real models skip with this reason while the op work is in progress; engine.check lists every op."""
    problems = engine.check(str(model))
    if problems:
        return "engine does not run these ops yet: " + ", ".join(sorted({p.op_type for p in problems}))
    return None


@pytest.fixture(scope="module")
def demo_runs():
    """Skips the test when this engine cannot run the demo model yet."""
    reason = unsupported_reason(demo.data_path(demo.MODEL_FILE))
    if reason:
        pytest.skip(reason)
needs_script = pytest.mark.skipif(not os.path.isfile(SCRIPT),
                                  reason="scripts/make_demo_model.py is not beside tests/ (e.g. a wheel test copy)")


@pytest.fixture(scope="module")
def mk():
    spec = importlib.util.spec_from_file_location("make_demo_model", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cli(*args, timeout=300):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ENGINE_PARENT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# --- numpy reference of the demo CNN, read from the ONNX file (NCHW, independent of the script's NHWC code) ---
def _conv3x3(x, w, b):
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # N C H W 3 3
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True) + b[None, :, None, None]


def _maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def reference_probs(x: np.ndarray) -> np.ndarray:
    onnx = pytest.importorskip("onnx", reason="onnx is needed to read the demo model's weights")
    from onnx import numpy_helper

    m = onnx.load(demo.data_path(demo.MODEL_FILE))
    p = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    eps = next(a.f for n in m.graph.node if n.op_type == "BatchNormalization" for a in n.attribute
               if a.name == "epsilon")
    h = _conv3x3(x.astype(np.float64), p["conv1.weight"], p["conv1.bias"])
    s = (p["bn1.scale"] / np.sqrt(p["bn1.var"] + eps))[None, :, None, None]
    h = (h - p["bn1.mean"][None, :, None, None]) * s + p["bn1.bias"][None, :, None, None]
    h = _maxpool2(np.maximum(h, 0))
    h = _maxpool2(np.maximum(_conv3x3(h, p["conv2.weight"], p["conv2.bias"]), 0))
    z = h.reshape(len(h), -1) @ p["fc.weight"].T + p["fc.bias"]
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


# --- the script --------------------------------------------------------------------------------------------
@needs_script
def test_renderer_is_deterministic_and_seed_dependent(mk):
    a_x, a_y = mk.render_digits(64, np.random.default_rng(5))
    b_x, b_y = mk.render_digits(64, np.random.default_rng(5))
    c_x, _ = mk.render_digits(64, np.random.default_rng(6))
    assert a_x.dtype == np.uint8 and a_x.shape == (64, mk.SIZE, mk.SIZE)
    assert a_y.dtype == np.uint8 and a_y.shape == (64,) and a_y.max() <= 9
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_y, b_y)
    assert not np.array_equal(a_x, c_x)
    # Each image shows a digit: the bright (ink) pixels are a real part of the picture but not most of it.
    ink = (a_x.astype(int) - np.median(a_x, axis=(1, 2), keepdims=True)) > 80
    frac = ink.mean(axis=(1, 2))
    assert frac.min() > 0.05 and frac.max() < 0.6, (frac.min(), frac.max())


@needs_script
def test_glyphs_are_all_different(mk):
    bank = mk.glyph_bank().reshape(20, -1)
    assert len({row.tobytes() for row in bank}) == 20


@needs_script
def test_backward_matches_finite_differences(mk):
    rng = np.random.default_rng(0)
    p = {k: v.astype(np.float64) for k, v in mk.init_params(rng).items()}
    p["gamma"] = rng.uniform(0.5, 1.5, p["gamma"].shape)
    p["beta"] = rng.normal(0, 0.1, p["beta"].shape)
    x = rng.random((3, mk.SIZE, mk.SIZE, 1))
    y = np.array([1, 4, 7])

    def loss(params):
        bn = {"mean": np.zeros(mk.C1), "var": np.ones(mk.C1)}
        logits, cache = mk.forward(params, x, bn, train=True)
        z = logits - logits.max(1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -lp[np.arange(3), y].mean(), logits, cache

    _, logits, cache = loss(p)
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    prob[np.arange(3), y] -= 1
    grads = mk.backward(p, cache, prob / 3)
    h = 1e-6
    for k in p:
        flat = p[k].reshape(-1)
        for i in rng.choice(flat.size, min(4, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + h
            lp = loss(p)[0]
            flat[i] = old - h
            lm = loss(p)[0]
            flat[i] = old
            num = (lp - lm) / (2 * h)
            assert abs(grads[k].reshape(-1)[i] - num) <= 1e-5 + 1e-4 * abs(num), (k, i, grads[k].reshape(-1)[i], num)


@needs_script
def test_npz_writer_is_byte_reproducible(mk):
    arrays = {"images": np.arange(512, dtype=np.uint8).reshape(2, 16, 16), "labels": np.array([3, 9], np.uint8)}
    a, b = mk.npz_bytes(arrays), mk.npz_bytes(arrays)
    assert a == b
    import io

    with np.load(io.BytesIO(a)) as z:
        assert sorted(z.files) == ["images", "labels"]
        np.testing.assert_array_equal(z["images"], arrays["images"])


@needs_script
def test_export_is_deterministic_and_matches_numpy_forward(mk):
    pytest.importorskip("onnx", reason="the export needs onnx")
    rng = np.random.default_rng(1)
    p = mk.init_params(rng)
    p["b1"] = rng.normal(0, 0.1, p["b1"].shape).astype(np.float32)
    bn = {"mean": rng.normal(0, 0.1, mk.C1).astype(np.float32), "var": rng.uniform(0.5, 2, mk.C1).astype(np.float32)}
    blob = mk.export_onnx(p, bn, "test")
    assert blob == mk.export_onnx(p, bn, "test")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graph for the layout check")
    imgs, _ = mk.render_digits(8, rng)
    ref = mk.predict(p, bn, imgs)
    ref = np.exp(ref - ref.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    got = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"image": mk.to_input(imgs)})[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)


@needs_script
@pytest.mark.skipif(os.environ.get("ENGINE_TEST_REGEN") != "1",
                    reason="regenerating the demo takes ~50 s of training: set ENGINE_TEST_REGEN=1 to run it")
def test_regenerating_gives_the_committed_files(mk, tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr


# --- the committed files -----------------------------------------------------------------------------------
def test_bundled_files_are_small_and_well_formed():
    mpath, dpath = demo.data_path(demo.MODEL_FILE), demo.data_path(demo.DATA_FILE)
    assert os.path.getsize(mpath) < 200_000 and os.path.getsize(dpath) < 300_000
    images, labels = demo.load_test_set()
    assert images.dtype == np.uint8 and images.shape == (1000, 16, 16)
    assert labels.dtype == np.uint8 and labels.shape == (1000,)
    assert set(np.unique(labels)) == set(range(10))


def test_bundled_model_declares_what_the_readme_says():
    onnx = pytest.importorskip("onnx", reason="onnx reads the model file")
    m = onnx.load(demo.data_path(demo.MODEL_FILE))
    onnx.checker.check_model(m)
    assert m.ir_version == 8
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    assert "scripts/make_demo_model.py" in m.doc_string

    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    (inp,), (out,) = m.graph.input, m.graph.output
    assert (inp.name, inp.type.tensor_type.elem_type, dims(inp)) == ("image", onnx.TensorProto.FLOAT, ["N", 1, 16, 16])
    assert (out.name, out.type.tensor_type.elem_type, dims(out)) == ("probs", onnx.TensorProto.FLOAT, ["N", 10])


def test_reference_reaches_the_documented_accuracy():
    onnx = pytest.importorskip("onnx", reason="onnx reads the model file")
    images, labels = demo.load_test_set()
    if quick():  # emulated CPU: a fifth of the set, so only the floor is checked
        images, labels = images[:200], labels[:200]
    acc = float((reference_probs(demo.to_input(images)).argmax(1) == labels).mean())
    assert acc > 0.95
    if not quick():
        doc = onnx.load(demo.data_path(demo.MODEL_FILE)).doc_string
        claimed = float(re.search(r"demo_digits.npz: ([0-9]\.[0-9]+)", doc)[1])
        assert acc == pytest.approx(claimed, abs=0.0015)


# --- python -m engine demo ---------------------------------------------------------------------------------
def test_demo_command_passes_and_reports(demo_runs):
    n = 200 if quick() else 1000  # emulated CPUs (ENGINE_TEST_QUICK=1) run a fifth of the test set
    r = cli("demo", "--runs", "2", "--batch", "100", "--images", str(n))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(rf"^engine: accuracy (\d+)/{n} = ([0-9.]+)$", r.stdout, re.M)
    assert m and int(m[1]) >= 0.97 * n, r.stdout
    assert re.search(r"batch of 1: median latency [0-9.]+ ms over 2 runs", r.stdout)
    assert "demo: OK" in r.stdout
    if importlib.util.find_spec("onnxruntime") is not None:
        d = re.search(r"max \|probs difference\| ([0-9.e+-]+)", r.stdout)
        assert d and float(d[1]) <= demo.MAX_PROB_DIFF, r.stdout


def test_demo_command_fails_below_the_accuracy_floor(demo_runs):
    r = cli("demo", "--runs", "1", "--images", "100", "--no-compare", "--min-accuracy", "1.01")
    assert r.returncode == 1 and "below the sanity threshold" in r.stdout and "demo: FAILED" in r.stdout


def test_demo_session_matches_numpy_reference(demo_runs):
    images, _ = demo.load_test_set()
    x = demo.to_input(images[:64])
    got = engine.Session(demo.data_path(demo.MODEL_FILE)).run({"image": x})["probs"]
    assert got.dtype == np.float32 and got.shape == (64, 10)
    np.testing.assert_allclose(got, reference_probs(x), atol=2e-5)


# --- python -m engine run ----------------------------------------------------------------------------------
@pytest.fixture
def tiny_model(tmp_path):
    """z = relu(x @ w) and s = x + x, with x float32 [B, 3] (symbolic B) and w float32 [3, 2]."""
    onnx = pytest.importorskip("onnx", reason="onnx builds the tiny model")
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Relu", ["xw"], ["z"]),
         helper.make_node("Add", ["x", "x"], ["s"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 2]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, ["B", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "tiny.onnx"
    onnx.save(m, path)
    reason = unsupported_reason(path)
    if reason:
        pytest.skip(reason)
    return path


@pytest.fixture
def ident_model(tmp_path):
    """The same interface as tiny_model with only Identity nodes (z = x, s = w): the command's own logic (files,
    dims, names, errors) on engine.Session with the smallest set of ops."""
    onnx = pytest.importorskip("onnx", reason="onnx builds the model")
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"]), helper.make_node("Identity", ["w"], ["s"])],
        "ident",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 3]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [3, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "ident.onnx"
    onnx.save(m, path)
    reason = unsupported_reason(path)
    if reason:
        pytest.skip(reason)
    return path


def test_run_identity_model_files_npz_output_and_save(ident_model, tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "both.npz", x=x, w=w)
    out = tmp_path / "out.npz"
    r = cli("run", str(ident_model), "--input", f"x={tmp_path / 'x.npy'}", "--repeat", "1", "--save", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x: float32 [2, 3] (declared float32 [B, 3]; from --input)" in r.stdout
    assert "w: float32 [3, 2] (declared float32 [3, 2]; random standard normal)" in r.stdout
    assert re.search(r"^  z: float32 \[2, 3\]$", r.stdout, re.M) and "then 1 runs: median" in r.stdout
    with np.load(out) as z:
        assert sorted(z.files) == ["s", "z"]
        np.testing.assert_array_equal(z["z"], x)
    r = cli("run", str(ident_model), "--input", str(tmp_path / "both.npz"), "--output", "s", "--save", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    with np.load(out) as z:
        assert z.files == ["s"]
        np.testing.assert_array_equal(z["s"], w)


def test_run_tiny_model_with_input_files(tiny_model, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "out.npz"
    r = cli("run", str(tiny_model), "--input", f"x={tmp_path / 'x.npy'}", "--input", f"w={tmp_path / 'w.npy'}",
            "--repeat", "2", "--save", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^  z: float32 \[4, 2\]$", r.stdout, re.M)
    assert re.search(r"^  s: float32 \[4, 3\]$", r.stdout, re.M)
    assert "argmax per row" in r.stdout and "then 2 runs: median" in r.stdout
    with np.load(out) as z:
        np.testing.assert_allclose(z["z"], np.maximum(x.astype(np.float64) @ w, 0), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(z["s"], x + x)


def test_run_random_inputs_use_dims(ident_model, capsys):
    from engine.cli_run import run_model

    assert run_model(str(ident_model), dims=["B=5"], repeat=0) == 0
    out = capsys.readouterr().out
    assert "x: float32 [5, 3] (declared float32 [B, 3]; random standard normal, symbolic dims B=5)" in out
    assert re.search(r"^  z: float32 \[5, 3\]$", out, re.M)
    assert run_model(str(ident_model), repeat=0) == 0
    out = capsys.readouterr().out
    assert "B=1 (default; set it with --dim)" in out and re.search(r"^  z: float32 \[1, 3\]$", out, re.M)


def test_run_demo_model_matches_reference(demo_runs, tmp_path):
    images, _ = demo.load_test_set()
    x = demo.to_input(images[:10])
    np.save(tmp_path / "img.npy", x)
    r = cli("run", demo.data_path(demo.MODEL_FILE), "--input", f"image={tmp_path / 'img.npy'}", "--threads", "1",
            "--save", str(tmp_path / "o.npz"))
    assert r.returncode == 0, r.stdout + r.stderr
    ref = reference_probs(x)
    shown = re.search(r"argmax per row \[([0-9, ]+)\]", r.stdout)[1]
    assert [int(v) for v in shown.split(", ")] == list(ref.argmax(1))
    with np.load(tmp_path / "o.npz") as z:
        np.testing.assert_allclose(z["probs"], ref, atol=2e-5)


@pytest.mark.parametrize("args, message", [
    (["--input", "x=MISSING.npy"], "no such file"),
    (["--input", "nope=W.npy"], "no input named 'nope'"),
    (["--input", "x"], "expected NAME=FILE.npy"),
    (["--input", "=W.npy"], "expected NAME=FILE.npy"),
    (["--input", "w=W.npy", "--input", "w=W.npy"], "given twice"),
    (["--input", "w=BAD.npy"], "cannot read"),
    (["--output", "nope"], "no output named 'nope'"),
    (["--dim", "B"], "expected NAME=SIZE"),
    (["--dim", "B=-3"], "whole number"),
    (["--dim", "Q=2"], "symbolic dimension named 'Q'"),
    (["--repeat", "-1"], "--repeat"),
    (["--threads", "0"], "--threads"),
    (["--input", "w=W3.npy"], "the inputs do not fit the model"),
])
def test_run_usage_errors_exit_2(ident_model, tmp_path, args, message):
    np.save(tmp_path / "W.npy", np.ones((3, 2), np.float32))
    np.save(tmp_path / "W3.npy", np.ones((3, 3), np.float32))  # w is declared [3, 2]
    (tmp_path / "BAD.npy").write_text("not an array")
    args = [a.replace("MISSING", str(tmp_path / "missing")).replace("W.npy", str(tmp_path / "W.npy"))
            .replace("BAD.npy", str(tmp_path / "BAD.npy")) for a in args]
    args = [a.replace("W3.npy", str(tmp_path / "W3.npy")) for a in args]
    r = cli("run", str(ident_model), *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_run_missing_model_exits_2(tmp_path):
    r = cli("run", str(tmp_path / "none.onnx"))
    assert r.returncode == 2 and "no such model file" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_run_broken_model_exits_1(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    r = cli("run", str(bad))
    assert r.returncode == 1 and "cannot load" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_info_and_example_still_work():
    r = cli("info")
    assert r.returncode == 0 and "active ISA" in r.stdout, r.stdout + r.stderr
    r = cli("example", "--size", "64")
    assert r.returncode == 0 and "example: OK" in r.stdout, r.stdout + r.stderr


def test_pyproject_ships_every_subpackage_and_the_demo_files():
    """setuptools takes an explicit package list: a subpackage missing from it is silently left out of the wheel
    (engine.ops once was, and the installed engine could not import)."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    path = os.path.join(REPO, "pyproject.toml")
    pkg_dir = os.path.join(REPO, "engine")
    if not (os.path.isfile(path) and os.path.isdir(pkg_dir)):
        pytest.skip("not a source checkout (no pyproject.toml and engine/ beside tests/)")
    with open(path, "rb") as f:
        cfg = tomllib.load(f)["tool"]["setuptools"]
    found = sorted(os.path.relpath(d, REPO).replace(os.sep, ".") for d, _, files in os.walk(pkg_dir)
                   if "__init__.py" in files and "__pycache__" not in d)
    assert sorted(cfg["packages"]) == found
    for name in (demo.MODEL_FILE, demo.DATA_FILE):
        assert f"data/{name}" in cfg["package-data"]["engine"]

"""examples/face_search.py end to end: an ONNX embedding model, its embeddings enrolled in a Gallery, queried; the
script exits 0 only when every known query finds its identity first and no unknown query is accepted."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

import engine

pytest.importorskip("onnx", reason="the example builds its model with onnx.helper")
_PATH = os.path.join(os.path.dirname(__file__), "..", "examples", "face_search.py")
pytestmark = pytest.mark.skipif(not os.path.exists(_PATH), reason="examples/ is in the source checkout, not in the "
                                "installed wheel this suite is running against")


def _example():
    spec = importlib.util.spec_from_file_location("face_search", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["face_search"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_example_on_engine(arch, tmp_path, capsys):
    fs = _example()
    problems = engine.check(fs.build_embedder(arch=arch))
    assert not problems, f"engine cannot run the {arch} embedder: {problems}"
    assert fs.main(["--arch", arch, "--gallery-file", str(tmp_path / "g.egal")]) == 0
    assert "15/15 queries answered correctly" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_example_on_onnxruntime(dtype, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the stand-in runtime is not installed")
    fs = _example()
    assert fs.main(["--runtime", "onnxruntime", "--dtype", dtype, "--gallery-file", str(tmp_path / "g.egal")]) == 0
    out = capsys.readouterr().out
    assert "15/15 queries answered correctly" in out and "reloaded memory-mapped" in out

"""Dispatch and runtime configuration read at import (ENGINE_ISA, ENGINE_NUM_THREADS): each case runs in a fresh
subprocess. Under tools/python-under-cpu the children stay emulated, so the same tests check the emulated CPU."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import engine
from engine._C import _kernels as _k

ROOT = Path(__file__).resolve().parents[1]
X86 = platform.machine().lower() in ("x86_64", "amd64")
TIMEOUT = 300  # seconds; generous for CPU emulation, where one interpreter start costs ~1 s


def run_py(code: str, **env_overrides) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter from the repo root with ENGINE_* taken from env_overrides only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_") or k.startswith("ENGINE_TEST_")}
    env.update({k: v for k, v in env_overrides.items() if v is not None})
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


PROBE = """
import json, numpy as np, engine
from engine._C import _kernels as k
a = np.arange(12, dtype=np.float32).reshape(3, 4); b = np.ones((4, 5), np.float32)
ok = bool((engine.matmul(a, b) == a.sum(1, keepdims=True)).all())
print(json.dumps({"active": k.active_isa(), "kernels": engine.kernel_info(), "threads": engine.get_num_threads(),
                  "live": k.pool_live_workers(), "ok": ok, "info": engine.cpu_info()}))
"""


def probe(**env):
    r = run_py(PROBE, **env)
    assert r.returncode == 0, f"env {env}: exit {r.returncode}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_default_is_best_supported():
    out = probe()
    assert out["active"] == _k.supported_isas()[-1] == out["info"]["max_isa"] or out["active"] == "scalar"
    assert out["ok"]


def test_engine_isa_scalar_everywhere():
    out = probe(ENGINE_ISA="scalar")
    assert out["active"] == "scalar" and out["ok"]
    assert out["kernels"] and all(row["isa"] == "scalar" for row in out["kernels"]), out["kernels"]


@pytest.mark.parametrize("tag", _k.supported_isas())
def test_engine_isa_each_supported(tag):
    out = probe(ENGINE_ISA=tag)
    assert out["active"] == tag and out["ok"]
    names = [row["kernel"] for row in out["kernels"]]
    assert {"gemm_f32", "gemv_f32", "bias_act_f32"} <= set(names)
    order = list(_k.ISA_NAMES)
    for row in out["kernels"]:  # no slot above the cap; at least scalar
        assert row["isa"] in _k.supported_isas() and order.index(row["isa"]) <= order.index(tag), row
    if tag == "avx2":  # this build has avx2 variants of every foundation slot
        assert all(row["isa"] == "avx2" for row in out["kernels"]), out["kernels"]


def _import_error(**env) -> str:
    r = run_py("import engine", **env)
    assert r.returncode != 0, f"{env}: import succeeded"
    assert "ImportError" in r.stderr, r.stderr
    return r.stderr


def test_engine_isa_bogus_is_import_error_listing_valid_values():
    err = _import_error(ENGINE_ISA="avx9000")
    assert "avx9000" in err
    for tag in _k.supported_isas():
        assert tag in err.split("avx9000", 1)[1], err


def test_engine_isa_case_and_empty():
    _import_error(ENGINE_ISA="AVX2" if X86 else "NEON")  # tags are lower case, exactly as listed
    out = probe(ENGINE_ISA="")  # empty means unset
    assert out["active"] == _k.supported_isas()[-1]


def _unrunnable():
    tags = []
    for tag in _k.ISA_NAMES:
        if tag not in _k.supported_isas():
            tags.append(tag)
    return tags


@pytest.mark.parametrize("tag", _unrunnable())
def test_engine_isa_unrunnable_is_import_error(tag):
    """avx512 on a CPU without it, neon on x86 (or avx2 under emulated Nehalem): ImportError, never SIGILL."""
    err = _import_error(ENGINE_ISA=tag)
    assert tag in err and "cannot run here" in err, err
    assert "scalar" in err  # the valid values are listed


def test_select_isa_rejects_unrunnable_and_unknown():
    before = _k.active_isa()
    for tag in _unrunnable():
        with pytest.raises(ValueError, match="cannot run here"):
            _k.select_isa(tag)
        assert _k.active_isa() == before
    with pytest.raises(ValueError, match="unknown ISA level 'bogus'"):
        _k.select_isa("bogus")
    with pytest.raises(ValueError, match="unknown"):
        engine.testing.force_isa("bogus").__enter__()
    assert _k.active_isa() == before


def test_force_isa_restores_previous_level_on_error():
    import engine.testing as t

    before = _k.active_isa()
    with pytest.raises(RuntimeError):
        with t.force_isa("scalar"):
            assert _k.active_isa() == "scalar"
            assert all(row["isa"] == "scalar" for row in engine.kernel_info())
            raise RuntimeError
    assert _k.active_isa() == before


def test_cpu_info_keys_and_types():
    info = engine.cpu_info()
    assert set(info) == {"arch", "features", "max_isa", "compiled_isas", "supported_isas", "active_isa",
                         "num_threads", "usable_cpus"}
    assert isinstance(info["arch"], str) and info["arch"]
    assert isinstance(info["features"], dict) and info["features"]
    assert all(isinstance(k, str) and isinstance(v, bool) for k, v in info["features"].items())
    for key in ("max_isa", "active_isa"):
        assert info[key] in _k.ISA_NAMES
    for key in ("compiled_isas", "supported_isas"):
        assert isinstance(info[key], list) and set(info[key]) <= set(_k.ISA_NAMES) and "scalar" in info[key]
    assert set(info["supported_isas"]) <= set(info["compiled_isas"])
    assert info["max_isa"] in info["supported_isas"] or info["max_isa"] not in info["compiled_isas"]
    assert isinstance(info["num_threads"], int) and info["num_threads"] >= 1
    assert isinstance(info["usable_cpus"], int) and 1 <= info["usable_cpus"] <= (os.cpu_count() or 1)
    if X86:
        f = info["features"]
        # the dispatcher's view must agree with itself: avx2 runnable <=> avx2+fma+OS ymm state
        assert ("avx2" in info["supported_isas"]) == (f["avx2"] and f["fma"] and f["os_ymm"])
        assert ("avx512" in info["supported_isas"]) == (
            "avx512" in info["compiled_isas"] and f["avx512f"] and f["avx512bw"] and f["avx512dq"]
            and f["avx512vl"] and f["os_zmm"])


def test_kernel_info_rows():
    rows = engine.kernel_info()
    assert [sorted(r) for r in rows] == [["isa", "kernel"]] * len(rows)
    assert len({r["kernel"] for r in rows}) == len(rows)


def test_python_m_engine_info():
    r = subprocess.run([sys.executable, "-m", "engine", "info"], cwd=ROOT, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"engine {engine.__version__} on ")
    assert f"active ISA:     {_k.active_isa()}" in out
    for row in engine.kernel_info():
        assert any(line.split() == [row["kernel"], row["isa"]] for line in out.splitlines()), out
    r2 = run_py("import engine; engine.show_runtime()", ENGINE_ISA="scalar")
    assert r2.returncode == 0 and "active ISA:     scalar" in r2.stdout


def test_engine_num_threads_env():
    out = probe(ENGINE_NUM_THREADS="3")
    assert out["threads"] == 3 and out["info"]["num_threads"] == 3 and out["ok"]


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "100000"])
def test_engine_num_threads_bad_is_import_error(value):
    err = _import_error(ENGINE_NUM_THREADS=value)
    assert "ENGINE_NUM_THREADS" in err and repr(value) in err


def test_no_thread_started_at_import():
    out = probe()
    # the probe ran one tiny matmul (serial); nothing may have started the pool
    assert out["live"] == 0
    r = run_py("import engine, os, threading\nfrom engine._C import _kernels as k\n"
               "print(k.pool_live_workers(), threading.active_count(), len(os.listdir('/proc/self/task')))")
    assert r.returncode == 0, r.stderr
    live, py_threads, os_threads = map(int, r.stdout.split())
    assert live == 0 and py_threads == 1
    assert os_threads == 1 or not sys.platform.startswith("linux") or os_threads == _baseline_os_threads()


def _baseline_os_threads() -> int:
    """OS threads of a bare `import numpy` interpreter (OpenBLAS may start its own)."""
    r = run_py("import numpy, os\nprint(len(os.listdir('/proc/self/task')))")
    return int(r.stdout)


def test_fma_peak_probe_runs_at_every_level(isa):
    # The benchmarks' measured peak. Its arithmetic is checked lane by lane against fmaf in tests/c (fma_probe_f32);
    # here: the binding reaches the active level's slot and returns a usable rate (no speed is asserted).
    gflops = _k.fma_peak_gflops(0.005)
    assert 0.0 < gflops < 1e5 and gflops == gflops
    assert any(r["kernel"] == "fma_probe_f32" and r["isa"] == isa for r in engine.kernel_info())


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_fma_peak_probe_bad_duration(seconds):
    with pytest.raises(ValueError, match="seconds must be positive"):
        _k.fma_peak_gflops(seconds)

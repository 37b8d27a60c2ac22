"""engine: a CPU inference engine for ONNX models with hand-written SIMD kernels.

The kernel table is chosen once at import from the CPU's features (CPUID/XGETBV on x86-64,
getauxval(AT_HWCAP) on Linux AArch64); ENGINE_ISA caps it, ENGINE_NUM_THREADS sizes the thread pool.
"""
from __future__ import annotations

import os as _os

__version__ = "0.1.0"


def _check_env() -> None:
    v = _os.environ.get("ENGINE_NUM_THREADS")
    if v not in (None, ""):
        try:
            ok = 1 <= int(v) <= 1024
        except ValueError:
            ok = False
        if not ok:
            raise ImportError(f"ENGINE_NUM_THREADS={v!r} is not a whole number from 1 to 1024")


_check_env()

try:
    from engine._C import _kernels as _k  # noqa: E402
except ImportError as e:  # the uncompiled source tree shadows the installed package
    if "_kernels" not in str(e):
        raise
    raise ImportError(
        f"engine's compiled extension is missing from {_os.path.dirname(__file__)}: this is the source tree, "
        "not an installed or built copy. Build in place with `pip install -e .` (or `python setup.py build_ext "
        "--inplace`), or run from another directory to use the installed package.") from e

_k.init()  # raises ImportError listing the valid values if ENGINE_ISA is bad

from engine.linalg import gemm, matmul  # noqa: E402
from engine.similarity import Gallery, cdist, cosine_similarity, l2_normalize  # noqa: E402


def cpu_info() -> dict:
    """What the CPU offers and what this build can use.

    Keys: "arch", "features" ({name: bool}), "max_isa" (best level the CPU runs), "compiled_isas" (levels in
    this build), "supported_isas" (compiled and runnable here), "active_isa" (the level in use),
    "num_threads" (pool size), "usable_cpus" (affinity mask and cgroup quota).
    """
    import platform

    return {
        "arch": platform.machine(),
        "features": _k.cpu_features(),
        "max_isa": _k.cpu_max_isa(),
        "compiled_isas": _k.compiled_isas(),
        "supported_isas": _k.supported_isas(),
        "active_isa": _k.active_isa(),
        "num_threads": _k.get_num_threads(),
        "usable_cpus": _k.usable_cpus(),
    }


def kernel_info() -> list[dict]:
    """One dict per kernel slot: {"kernel": name, "isa": level providing it}."""
    return _k.kernel_info()


def get_num_threads() -> int:
    """Threads engine's pool uses for one call (the calling thread included)."""
    return _k.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the pool size for this process (n >= 1). Takes effect at the next parallel call."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
        raise ValueError(f"set_num_threads: n must be an int from 1 to 1024, got {n!r}")
    _k.set_num_threads(n)


def show_runtime() -> None:
    """Prints cpu_info() and kernel_info() (what `python -m engine info` shows)."""
    from engine.__main__ import print_info

    print_info()


__all__ = ["__version__", "cpu_info", "kernel_info", "get_num_threads", "set_num_threads", "gemm", "matmul",
           "show_runtime", "cosine_similarity", "cdist", "l2_normalize", "Gallery"]

from engine.errors import (  # noqa: E402
    EngineError, InvalidInputError, ModelLoadError, RunError, UnsupportedModelError)

# The ONNX executor imports onnx (model parsing); it is loaded on first use, so the kernels (engine.matmul,
# engine.cosine_similarity, ...) work where onnx is not installed.
_SESSION_NAMES = ("Problem", "Session", "SessionOptions", "TensorInfo", "check", "run")


def __getattr__(name):
    if name in _SESSION_NAMES:
        from engine import session

        value = getattr(session, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ += ["Session", "SessionOptions", "TensorInfo", "Problem", "run", "check", "EngineError", "ModelLoadError",
            "UnsupportedModelError", "InvalidInputError", "RunError"]

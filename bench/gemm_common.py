"""Shared pieces of the GEMM benchmarks (`bench_gemm.py`, `compare_gemm.py`): shapes, inputs, float64 reference,
the onnxruntime MatMul models, and what numpy's BLAS is doing about threads.

Importing this module imports numpy. Code that must control numpy's OpenBLAS thread count through
OPENBLAS_NUM_THREADS has to set that variable before the import (compare_gemm.py does so in a subprocess).
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

# (M, N, K). Square sizes go from L1-resident to DRAM; the inference shapes are what real models run:
# classifier heads and an LLM-style GEMV (M=1), ResNet-50 convolutions as im2col GEMMs (M = H*W of the feature map,
# N = output channels, K = 9 * input channels) and BERT-base-ish projections (M = 128 tokens).
SQUARE_SIZES = (64, 128, 256, 512, 1024, 2048)
SQUARE_SHAPES = tuple((n, n, n) for n in SQUARE_SIZES)
INFERENCE_SHAPES = (
    (1, 1000, 512),  # ResNet-18 classifier, batch 1 (GEMV)
    (1, 4096, 4096),  # 4096-wide linear layer, batch 1 (GEMV, weight-bandwidth bound)
    (3136, 64, 576),  # ResNet-50 conv2_x 3x3, 56x56 feature map, im2col
    (784, 128, 1152),  # ResNet-50 conv3_x 3x3, 28x28
    (196, 256, 2304),  # ResNet-50 conv4_x 3x3, 14x14
    (49, 512, 4608),  # ResNet-50 conv5_x 3x3, 7x7
    (128, 384, 384),  # BERT-small projection, 128 tokens
    (128, 1536, 384),  # BERT-small FFN up-projection, 128 tokens
)
ALL_SHAPES = SQUARE_SHAPES + INFERENCE_SHAPES
SHAPE_SETS = {"square": SQUARE_SHAPES, "inference": INFERENCE_SHAPES, "all": ALL_SHAPES}

# The subset for smoke runs (ENGINE_BENCH_QUICK=1 / --quick): one small and one mid square, a GEMV, a conv GEMM.
QUICK_SHAPES = ((64, 64, 64), (256, 256, 256), (1, 1000, 512), (784, 128, 1152))

IMPLS = ("engine", "numpy", "ort_inputs", "ort_prepacked")
IMPL_DOC = {
    "engine": "engine.matmul(A, B)",
    "numpy": "A @ B (numpy's BLAS)",
    "ort_inputs": "onnxruntime MatMul, A and B both graph inputs (B packed on every call: same work as engine)",
    "ort_prepacked": "onnxruntime MatMul, B an initializer (ORT pre-packs the weights once at session creation)",
}


def quick_from_env() -> bool:
    """ENGINE_BENCH_QUICK=1 (or true/yes/on) asks for the smoke subset."""
    return os.environ.get("ENGINE_BENCH_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def flops(shape: tuple[int, int, int]) -> int:
    m, n, k = shape
    return 2 * m * n * k


def shape_id(shape: tuple[int, int, int]) -> str:
    m, n, k = shape
    return f"{m}x{n}x{k}"


def make_inputs(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (MxK) and B (KxN), float32, uniform in [-1, 1), fixed seed per shape."""
    m, n, k = shape
    rng = np.random.default_rng([seed, m, n, k])
    a = rng.uniform(-1.0, 1.0, (m, k)).astype(np.float32)
    b = rng.uniform(-1.0, 1.0, (k, n)).astype(np.float32)
    return a, b


def reference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A @ B in float64, |A| @ |B| in float64): the exact-ish product and the scale of each entry's rounding error."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


# float32 summation of K products has error bounded by about K * eps * (|A| @ |B|) in the worst case and grows like
# sqrt(K) * eps for random signs. 1e-5 relative to |A| @ |B| is >= 50x the error we see from any correct float32
# GEMM at these sizes, and still far below what a dropped or doubled product (about 0.25 on average) produces.
CHECK_RTOL = 1e-5


def check_result(name: str, c, ref: np.ndarray, scale: np.ndarray) -> None:
    """Raises AssertionError naming the implementation if c differs from the float64 reference."""
    c = np.asarray(c)
    if c.shape != ref.shape:
        raise AssertionError(f"{name}: output shape {c.shape}, expected {ref.shape}")
    if c.dtype != np.float32:
        raise AssertionError(f"{name}: output dtype {c.dtype}, expected float32")
    err = np.abs(c.astype(np.float64) - ref)
    bound = CHECK_RTOL * scale + 1e-30
    bad = err > bound
    if bad.any() or not np.isfinite(c).all():
        i = np.unravel_index(int(np.argmax(err / bound)), err.shape)
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {c.size} entries differ from the float64 reference; worst at {i}: "
            f"got {c[i]!r}, expected {ref[i]!r} (|err| {err[i]:.3g} > {bound[i]:.3g})")


# --- onnxruntime -------------------------------------------------------------------------------------------------

def _ort_session_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


def _matmul_model(shape: tuple[int, int, int], b_const: np.ndarray | None) -> bytes:
    """One MatMul node Y = A @ B. B is a graph input, or an initializer when b_const is given."""
    from onnx import TensorProto, helper, numpy_helper

    m, n, k = shape
    a_info = helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])
    b_info = helper.make_tensor_value_info("B", TensorProto.FLOAT, [k, n])
    y_info = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])
    node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    if b_const is None:
        graph = helper.make_graph([node], "gemm", [a_info, b_info], [y_info])
    else:
        graph = helper.make_graph([node], "gemm_prepacked", [a_info], [y_info],
                                  initializer=[numpy_helper.from_array(b_const, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="engine-bench")
    model.ir_version = 8  # old enough for any onnxruntime >= 1.14
    return model.SerializeToString()


def ort_matmul_inputs(shape: tuple[int, int, int], threads: int):
    """fn(a, b) -> c running an ORT session whose MatMul gets both operands as inputs (no weight pre-packing)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(_matmul_model(shape, None), _ort_session_options(threads),
                                providers=["CPUExecutionProvider"])

    def run(a, b):
        return sess.run(None, {"A": a, "B": b})[0]

    return run


def ort_matmul_prepacked(shape: tuple[int, int, int], threads: int, b: np.ndarray):
    """fn(a) -> c running an ORT session with B as an initializer, which ORT's CPU MatMul pre-packs once."""
    import onnxruntime as ort

    sess = ort.InferenceSession(_matmul_model(shape, b), _ort_session_options(threads),
                                providers=["CPUExecutionProvider"])

    def run(a):
        return sess.run(None, {"A": a})[0]

    return run


# --- numpy's BLAS threads ----------------------------------------------------------------------------------------

def _openblas_lib():
    """numpy's OpenBLAS as a ctypes handle plus its symbol prefix/suffix, found in this process's mappings."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        if not path.startswith("/"):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            if hasattr(lib, f"{prefix}get_num_threads{suffix}"):
                return lib, prefix, suffix
    return None


def numpy_blas_threads() -> int | None:
    """Threads numpy's OpenBLAS uses for one call right now, or None if that cannot be asked (not OpenBLAS)."""
    found = _openblas_lib()
    if found is None:
        return None
    lib, prefix, suffix = found
    fn = getattr(lib, f"{prefix}get_num_threads{suffix}")
    fn.restype = ctypes.c_int
    return int(fn())


def numpy_blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
    except Exception:  # numpy < 1.25 has no mode="dicts"
        return "unknown BLAS"


def threadpoolctl_limits():
    """threadpoolctl.threadpool_limits if threadpoolctl is installed (it is not a dependency), else None."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits


# --- peak --------------------------------------------------------------------------------------------------------

# float32 flops per cycle per core for the ISA engine runs, assuming 2 FMA pipes: pipes x lanes x 2. Only used to
# say which clock a measured peak implies, and as the fallback when no measurement is available.
FLOPS_PER_CYCLE = {"avx512": 64, "avx2": 32, "neon": 16, "scalar": 2}


def cpu_mhz() -> float | None:
    """The 'cpu MHz' of the first CPU in /proc/cpuinfo (on VMs usually the nominal clock, not the boost clock)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def measured_peak(threads: int = 1, seconds: float = 0.1, rounds: int = 3) -> float:
    """Per-core float32 peak in GFLOP/s, measured now with the active ISA's FMA probe (independent FMA chains, no
    memory traffic; engine._C._kernels.fma_peak_gflops). `threads` Python threads run it at once, each on its own
    core while the GIL is released, so a clock that drops when both cores are busy counts. Best of `rounds`, mean
    over the threads. /proc/cpuinfo's 'cpu MHz' is no substitute: VMs report the nominal clock (on this machine
    2.45 GHz where the cores run at about 3.1), which overstates "% of peak" by a quarter."""
    import threading

    from engine._C import _kernels as k

    best = 0.0
    for _ in range(rounds):
        got = [0.0] * threads

        def run(i):
            got[i] = k.fma_peak_gflops(seconds)

        ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = max(best, sum(got) / threads)
    return best


def peak_note(peak: float, isa: str, how: str) -> str:
    """One line saying what the per-core peak is and which clock it implies for the ISA's flops per cycle."""
    fpc = FLOPS_PER_CYCLE.get(isa)
    clock = f" = {fpc} flops/cycle ({isa}, 2 FMA pipes) x {peak / fpc:.2f} GHz" if fpc else ""
    return f"FMA peak {peak:.1f} GFLOP/s per core{clock} ({how})"

"""THE tolerance table of the test suite: every numeric comparison takes its tolerance from here.

Each entry carries a one-line justification. Loosen one entry at a time and record why and what was measured.
Measured numbers below: Zen 3, numpy 2.4 float64 reference, 400k points on [-20, 20] plus +-88, +-100,
denormals and +-0 (kernel run through the K=0 GEMM path, i.e. the bias+activation epilogue alone).
"""
from __future__ import annotations

# ---- accumulations (GEMM, GEMV, batched matmul) ------------------------------------------------------------
# |got - ref64| <= GEMM_C * (K + 3) * eps32 * (|alpha| |A|@|B| + |beta C| + |bias|) * Lipschitz(act)
# (engine.testing.gemm_error_bound). Justification: the worst-case float32 dot-product error is K*u*sum|ab| with
# u = eps32/2 in any summation order, so c = 2 (in units of eps32 = 2u) is 4x the worst case and still scales with
# K and magnitude; the +3 covers alpha scaling, beta*C and the bias addition.
GEMM_C = 2.0

# ---- activations (bias + activation epilogue) vs float64 NumPy ---------------------------------------------
# name -> (atol, rtol). EXACT means bitwise equal to the scalar ISA AND to the same formula in float32 numpy.
EXACT = "exact"
ACTIVATION = {
    None: EXACT,          # identity: the epilogue must not touch the value
    "relu": EXACT,        # a compare and a select: no rounding
    "relu6": EXACT,       # clip(0, 6): compares only
    "clip": EXACT,        # compares only
    "leaky_relu": EXACT,  # one float32 multiply, correctly rounded in every ISA
    # measured max |err|/(1+|ref|): scalar 4.4e-8, avx2 4.7e-8 (abs 8.9e-8 near x=8.7) -> 20x margin
    "sigmoid": (1e-6, 1e-6),
    # measured max |err|/(1+|ref|): scalar 1.0e-7, avx2 1.2e-7 (abs 1.3e-6 at x=13.8, i.e. 1 ulp of 13.8)
    "silu": (1e-6, 1e-6),
    "swish": (1e-6, 1e-6),  # alias of silu
    # measured max |err|/(1+|ref|): scalar (libm erff) 8.3e-8, avx2 (erfc polynomial) 6.9e-8
    "gelu": (1e-6, 1e-6),
    # measured max |err|/(1+|ref|): scalar (libm tanhf) 8.1e-8, avx2 9.4e-8
    "gelu_tanh": (1e-6, 1e-6),
    # x * clamp(x/6 + 1/2): the avx2 twin fuses x*(1/6)+1/2 into one FMA, the scalar one rounds twice, so not
    # bitwise (measured: <= 4097 ulp apart near the clamp edge, where the product is tiny); max |err|/(1+|ref|)
    # 6.8e-8 for both
    "hardswish": (1e-6, 1e-6),
}


def activation_tol(name) -> tuple[float, float]:
    """(atol, rtol) of an activation; (0, 0) for exact ones."""
    t = ACTIVATION[name]
    return (0.0, 0.0) if t == EXACT else t


def is_exact(name) -> bool:
    return ACTIVATION[name] == EXACT


# ---- exact data movement ------------------------------------------------------------------------------------
# GEMM through different ISAs is NOT bitwise equal (different tile shapes change the summation grouping and the
# SIMD kernels use FMA): compared to float64 with the bound above and to the scalar ISA with twice the bound
# (both are within the bound of the exact value).
ISA_VS_SCALAR_FACTOR = 2.0
# 1 vs 2 threads with the same ISA: every C block is computed by the same kernel over the same K blocks in the
# same order, only on another thread -> bitwise equal.
THREADS_BITWISE = True

# ---- whole models against onnxruntime (tests/test_models.py) ------------------------------------------------
# max|engine - ort| / max(max|ort|, MODEL_TINY) per output. Issue 3's bar for float32 models: "about 1e-4".
# Measured on the model_zoo families: onnxruntime (optimizations off) against onnx.reference (numpy) <= 1.1e-6,
# so 1e-4 leaves two orders of magnitude for another summation order and fused kernels.
MODEL_FP32_REL = 1e-4
MODEL_TINY = 1e-30  # only guards all-zero outputs
# float16 outputs: one float16 ulp of the largest element (eps16 = 2^-10): a 1e-7 float32 difference can flip the
# rounding of an element to the neighbouring half.
MODEL_FP16_REL = 2.0 ** -10
# Integer outputs (QuantizeLinear, Shape, ArgMax...) are compared exactly: model_zoo's QDQ model uses powers of
# two for all scales so that every float value in it is exact whatever the summation order.

# ---- op kernels (engine.kernels; tests/kernels/test_ops_kernels.py) ----------------------------------------
# Elementwise activations of engine.kernels.activation vs float64: name -> (atol, rtol); EXACT = bitwise equal to
# scalar and to the float32 formula. Measured max |err|/(1+|ref|) on Zen 3 over [-20, 20] + specials: see each.
OPS_ACTIVATION = dict(ACTIVATION)
OPS_ACTIVATION.update({
    # SIMD: Eigen's rational x P(x^2)/Q(x^2) (one division, no exp): measured 3.9e-7; scalar libm tanhf 1.3e-7
    "tanh": (1e-6, 1e-6),
    # p0*x + p1 in two float roundings (no FMA in any ISA) then compares: bitwise equal to scalar; vs float64 the
    # two roundings: |err| <= eps (|p0 x| + |p1|), covered by atol 1e-6 on the [0, 1] range
    "hardsigmoid": (1e-6, 0.0),
    # expm1 through 2^n q + (2^n - 1): measured 6.8e-8 relative; below -87 it is -alpha exactly
    "elu": (1e-6, 1e-6),
    # max(x, 0) + log1p(exp(-|x|)): measured 1.3e-7; 0 (instead of a denormal) below -87
    "softplus": (1e-6, 1e-6),
    # the shared exp approximation, about 2 ulp, relative (values span the float range); results below FLT_MIN
    # (x < -87.3) are flushed to 0 by the SIMD ISAs: atol = FLT_MIN
    "exp": (1.1754944e-38, 1e-6),
})
# softmax: exp(x - max) with x - max rounded in float (relative error eps |x - max| / 2 through exp), and the sum
# in float with several vector accumulators (~ n eps / lanes): bound (SOFTMAX_C + n / 4 + |x - max|) * eps * |ref|.
SOFTMAX_C = 8.0
# layer/RMS norm: mean and variance summed in float32 with vector accumulators: bound
# NORM_C * (16 + n / 4) * eps * (|x - mean| + mean|x|) * inv_std * |scale| + 2 eps |y| (the final multiply-add).
NORM_C = 1.0
# average pooling sums at most kh*kw taps in float: (taps + 1) eps mean|x|; max pooling is exact.
# depthwise conv: (taps + 2) eps (|bias| + sum |w x|), then the activation (Lipschitz + its own tolerance).
# binary ops, im2col, max pooling, avg pooling across ISAs: bitwise (one IEEE operation per element, or copies).

# ---- similarity (engine.similarity, csrc/kernels/sim) ---------------------------------------------------------
# Dot products and squared norms accumulate like GEMM: |got - ref64| <= SIM_C * (d + 1) * eps32 * sum|a b|. The same
# c = 2 reasoning as GEMM_C (worst case d*u*sum|ab|, u = eps32/2, so 4x margin).
SIM_C = 2.0
# Cosine: relative errors of ab, |a|^2, |b|^2 (each <= (d+1) u) and the final divide/sqrts propagate as
# |d cos| <= SIM_C * (d + 4) * eps32 * (sum|a b| / (|a| |b|) + 1).
# f16 storage: the inputs are rounded to binary16 once (relative 2^-11 each), so a similarity computed from f16
# copies of float32 embeddings differs from the float64 one of the originals: measured max 1.0e-4 at d = 128 and
# 5.5e-5 at d = 512 (10k random normal pairs, engine.cosine_similarity); 1e-3 is a 10x margin.
F16_COS_ATOL = 1e-3
# int8 storage (symmetric per-row scale 127/max|x|): each element carries up to half a quantization step. Measured
# max |cos_i8 - cos_f64| 3.4e-3 at d = 128 and 1.9e-3 at d = 512 (same pairs); 1e-2 is a 3x margin.
I8_COS_ATOL = 1e-2
# Search results against a float64 brute force: the scores of the returned rows must be within the cosine bound,
# and a returned row may differ from the reference only where the reference's scores are within SEARCH_TIE_ATOL
# of each other (near-ties legitimately swap under float32 rounding).
SEARCH_TIE_ATOL = 1e-5

/* eng_kernels.h: kernel function types, the dispatch table and every ISA variant's table. */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include "eng/eng_common.h"
#include "eng/eng_isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- activations (fused epilogues) ---- */
typedef enum eng_act_kind {
  ENG_ACT_NONE = 0,
  ENG_ACT_RELU = 1,       /* max(x, 0) */
  ENG_ACT_CLIP = 2,       /* min(max(x, p0), p1); Relu6 is CLIP(0, 6) */
  ENG_ACT_LEAKY_RELU = 3, /* x >= 0 ? x : p0 * x */
  ENG_ACT_SIGMOID = 4,    /* 1 / (1 + exp(-x)) */
  ENG_ACT_SILU = 5,       /* x * sigmoid(x) (Swish) */
  ENG_ACT_GELU = 6,       /* 0.5 x (1 + erf(x / sqrt 2)) */
  ENG_ACT_GELU_TANH = 7,  /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
  ENG_ACT_HARDSWISH = 8,  /* x * min(max(x / 6 + 0.5, 0), 1) */
  /* added with the op kernels (csrc/kernels/ops): */
  ENG_ACT_TANH = 9,         /* tanh(x) */
  ENG_ACT_HARDSIGMOID = 10, /* min(max(p0 * x + p1, 0), 1), no FMA (ONNX HardSigmoid alpha, beta) */
  ENG_ACT_ELU = 11,         /* x >= 0 ? x : p0 * expm1(x) */
  ENG_ACT_SOFTPLUS = 12,    /* log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) */
  ENG_ACT_EXP = 13,         /* exp(x) */
  ENG_ACT_COUNT = 14,
} eng_act_kind_t;

typedef struct eng_act {
  int kind;     /* eng_act_kind_t */
  float p0, p1; /* parameters, see eng_act_kind_t */
} eng_act_t;

/* y[j] = act(y[j] + (bias ? bias[j] : 0) + bias_s) for j < n. In place; no alignment needed. */
typedef void (*eng_bias_act_f32_fn)(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act);

/* ---- GEMM ----
 * Micro-kernel contract: a is an MR x kc panel packed k-major (a[p*MR + i]), b a kc x NR panel packed
 * k-major (b[p*NR + j]); both zero-padded to the full tile. Computes for i < m <= MR, j < n <= NR:
 *   c[i*ldc + j] = alpha * sum_p a[p*MR+i] * b[p*NR+j] + beta * c[i*ldc + j]
 * and when beta == 0 it never reads c (so NaN or garbage in c does not leak). kc may be 0. */
typedef void (*eng_gemm_ukr_f32_fn)(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b,
                                    float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta);

/* The same product with A read in place from a row-major matrix instead of a packed panel: row i < m of the
 * tile is a + i*lda, its k-th element a[i*lda + p]. Rows m..MR-1 are never read. Packing A costs as much as
 * the product when N is small (each element of A is used only N times), which is what this variant avoids. */
typedef void (*eng_gemm_ukr_arow_f32_fn)(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                                         float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta);

/* The GEMM epilogue applied to a tile as it is stored (fused variants below): after c = alpha * AB + beta * c,
 *   c[i*ldc + j] = act((c[i*ldc + j] + (bias_row ? bias_row[i] : 0)) + (bias_col ? bias_col[j] : 0))
 * in that order, which is what eng_bias_act_f32_fn computes row by row (so results are bitwise the same). bias_row
 * and bias_col point at the tile's first row's and first column's bias. */
typedef struct eng_gemm_epi {
  const float *bias_row, *bias_col;
  const eng_act_t *act;
} eng_gemm_epi_t;
typedef void (*eng_gemm_ukr_epi_f32_fn)(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b,
                                        float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                        const eng_gemm_epi_t *epi);
typedef void (*eng_gemm_ukr_arow_epi_f32_fn)(size_t kc, const float *ENG_RESTRICT a, size_t lda,
                                             const float *ENG_RESTRICT b, float *ENG_RESTRICT c, size_t ldc, size_t m,
                                             size_t n, float alpha, float beta, const eng_gemm_epi_t *epi);

#define ENG_GEMM_TAIL_COLS 4
#define ENG_GEMM_TAIL_KC_MAX 512 /* the driver's transposed tail is a stack buffer of TAIL_COLS x this many floats */
typedef void (*eng_gemm_ukr_tail_f32_fn)(size_t kc, const float *ENG_RESTRICT a, size_t lda,
                                         const float *ENG_RESTRICT bt, float *ENG_RESTRICT c, size_t ldc, size_t m,
                                         size_t n, float alpha, float beta, const eng_gemm_epi_t *epi);

typedef struct eng_gemm_f32_impl {
  unsigned mr, nr;               /* register tile */
  size_t mc, kc, nc;             /* cache blocking: mc % mr == 0, nc % nr == 0 */
  eng_gemm_ukr_f32_fn ukr;       /* the micro-kernel on packed A */
  eng_gemm_ukr_arow_f32_fn ukr_arow; /* optional (NULL): A read in place, used when A is not transposed */
  /* optional (NULL): ukr / ukr_arow with the epilogue fused into the store of the last K block. Without them the
   * driver runs bias_act_f32 over the finished rows; with K small (1x1 convolutions) that pass and its calls cost
   * 20-57% of the GEMM. */
  eng_gemm_ukr_epi_f32_fn ukr_epi;
  eng_gemm_ukr_arow_epi_f32_fn ukr_arow_epi;
  /* optional (NULL): the last, partial column panel when it has at most ENG_GEMM_TAIL_COLS columns and A is not
   * transposed. The full-width tile would spend a whole tile's FMAs on a column or two (a 7x7 plane is 3 tiles and 1
   * column), so the tail is done as dot products along k: A's rows read in place (row i at a + i*lda), B given
   * transposed (bt: n rows of kc floats, the driver makes it once per K block), epi applied when not NULL. */
  eng_gemm_ukr_tail_f32_fn ukr_tail;
} eng_gemm_f32_impl_t;

/* GEMV with a row vector: y[j] = alpha * sum_p x[p] * op(B)[p][j] + beta * y[j], j < n, p < k.
 * op(B) is B (k x n, row stride ldb) or, when trans_b, B^T with B stored n x k (row stride ldb).
 * beta == 0 never reads y. x and y are contiguous and must not alias b. */
typedef void (*eng_gemv_f32_fn)(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x, const float *ENG_RESTRICT b,
                                size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y);

/* ---- op kernels (csrc/kernels/ops; drivers with threading in ops_driver.c, API in eng_ops.h) ----
 * All float32, no alignment needed, sizes in elements. */

/* y[i] = act(x[i]) for i < n. x == y (in place) is allowed; partial overlap is not. */
typedef void (*eng_act_f32_fn)(size_t n, const float *x, float *y, const eng_act_t *act);

typedef enum eng_binary_op {
  ENG_BIN_ADD = 0,
  ENG_BIN_SUB = 1,
  ENG_BIN_MUL = 2,
  ENG_BIN_DIV = 3,
  ENG_BIN_MAX = 4, /* (b > a || b is NaN) ? b : a: NaN propagates, ties give a */
  ENG_BIN_MIN = 5, /* (b < a || b is NaN) ? b : a */
  ENG_BIN_COUNT = 6,
} eng_binary_op_t;

/* y[i] = a[i] op b[i], i < n. y may equal a or b. Bitwise equal in every ISA (one IEEE operation). */
typedef void (*eng_binary_f32_fn)(int op, size_t n, const float *a, const float *b, float *y);
/* y[i] = rev ? s op a[i] : a[i] op s, i < n. y may equal a. */
typedef void (*eng_binary_s_f32_fn)(int op, size_t n, const float *a, float s, float *y, int rev);

/* Softmax of one row of n: y = exp(x - max) / sum, or (log) y = x - max - log(sum). y may equal x. */
typedef void (*eng_softmax_f32_fn)(size_t n, const float *x, float *y, int log);

/* Normalization of one row of n (n >= 1):
 *   layer (rms == 0): y = (x - mean) * inv_std * scale + bias, inv_std = 1 / sqrt(var + eps), var = mean((x - mean)^2)
 *   rms   (rms != 0): y = x * inv_std * scale + bias,          inv_std = 1 / sqrt(mean(x^2) + eps), mean = 0
 * scale / bias: n floats or NULL (1 / 0). stats: NULL or 2 floats receiving {mean, inv_std}. y may equal x. */
typedef void (*eng_norm_f32_fn)(size_t n, const float *x, const float *scale, const float *bias, float eps, int rms,
                                float *y, float *stats);

/* Sum (op 0) or max (op 1) of n floats; the max propagates NaN; n == 0 gives 0 / -inf. */
typedef enum eng_reduce_op { ENG_REDUCE_SUM = 0, ENG_REDUCE_MAX = 1 } eng_reduce_op_t;
typedef float (*eng_reduce_f32_fn)(int op, size_t n, const float *x);

/* 2-D window geometry of pooling and convolution on one H x W plane (NCHW). Output oh x ow; output (i, j)
 * reads input rows i*sh - pt + a*dh (a < kh) and columns j*sw - pl + b*dw (b < kw); taps outside [0,h) x [0,w)
 * are padding. pb, pr: bottom/right pads (only the avg-pool divisor with count_include_pad looks at them).
 * The caller computes oh, ow (ONNX formulas, ceil_mode) and checks every size is >= 1 (h, w, oh, ow may be 0). */
typedef struct eng_win2d {
  size_t h, w, oh, ow;
  size_t kh, kw, sh, sw, dh, dw;
  size_t pt, pl, pb, pr;
} eng_win2d_t;

typedef enum eng_pool_kind { ENG_POOL_MAX = 0, ENG_POOL_AVG = 1, ENG_POOL_AVG_INCLUDE_PAD = 2 } eng_pool_kind_t;

/* One plane of 2-D pooling: y (oh x ow) from x (h x w).
 *   max: max over the taps inside the image (NaN propagates); -inf if no tap is inside.
 *   avg: sum over the taps inside / their count (0 taps: NaN); avg_include_pad: divides by the taps inside the
 *   padded image [-pt, h + pb) x [-pl, w + pr) instead (ONNX count_include_pad = 1). */
typedef void (*eng_pool2d_f32_fn)(int kind, const eng_win2d_t *g, const float *x, float *y);

/* One plane of depthwise 2-D convolution (one input channel per output channel): y (oh x ow) =
 * act(bias + sum over taps inside the image of w[a*kw + b] * x[tap]); w holds kh*kw floats. */
typedef void (*eng_dwconv2d_f32_fn)(const eng_win2d_t *g, const float *x, const float *w, float bias, const eng_act_t *act,
                                    float *y);

/* ---- depthwise conv over several channels (channel-blocked) ----
 * nc planes of consecutive channels of one image: plane k reads x + k*h*w with the weights w + k*kh*kw and the bias
 * bias ? bias[k] : 0, and writes y + k*oh*ow, each exactly as eng_dwconv2d_f32_fn (the same tolerance against the
 * scalar twin). The SIMD variants compute small planes a block of VL channels at a time from a channel-interleaved
 * padded copy (one vector = one output position of VL channels), larger ones plane by plane. Unaliased; nc may be 0. */
typedef void (*eng_dwconv2d_multi_f32_fn)(const eng_win2d_t *g, size_t nc, const float *x, const float *w,
                                          const float *bias, const eng_act_t *act, float *y);

/* ---- similarity (dot, squared norm, cosine, row L2-normalization, gallery scans) ----
 * dtypes: f32; f16 stored as IEEE binary16 bits (uint16_t) and accumulated in f32; i8 accumulated in int32.
 * Vectors are contiguous, no alignment needed, n may be 0 (sums are 0). Accumulation order differs between
 * ISAs (several vector accumulators, FMA), so f32/f16 results match the scalar twin within the usual
 * n*eps*sum|a b| bound, never bitwise. i8 results are exact integers: ISAs agree bitwise.
 * i8 contract: n <= ENG_SIM_I8_MAX_N, so the int32 sums cannot overflow (|a b| <= 128*128 = 2^14). */
#define ENG_SIM_I8_MAX_N ((size_t)1 << 16)
typedef float (*eng_dot_f32_fn)(size_t n, const float *a, const float *b);
typedef float (*eng_sqnorm_f32_fn)(size_t n, const float *a);
/* cos = dot(a, b) / sqrt(|a|^2 |b|^2); 0 when either vector is all zero (never NaN for finite input). */
typedef float (*eng_cos_f32_fn)(size_t n, const float *a, const float *b);
typedef float (*eng_dot_f16_fn)(size_t n, const uint16_t *a, const uint16_t *b);
typedef float (*eng_sqnorm_f16_fn)(size_t n, const uint16_t *a);
typedef float (*eng_cos_f16_fn)(size_t n, const uint16_t *a, const uint16_t *b);
typedef int32_t (*eng_dot_i8_fn)(size_t n, const int8_t *a, const int8_t *b);
typedef int32_t (*eng_sqnorm_i8_fn)(size_t n, const int8_t *a);
typedef float (*eng_cos_i8_fn)(size_t n, const int8_t *a, const int8_t *b);
/* y_i = x_i / |x_i| for rows i < m of n elements (row strides ldx, ldy >= n, in elements); an all-zero row
 * stays zero. y may be x (in place) but must not partially overlap it. The f16 variant computes in f32 and
 * rounds the result to nearest even binary16. */
typedef void (*eng_l2norm_rows_f32_fn)(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy);
typedef void (*eng_l2norm_rows_f16_fn)(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy);
/* Gallery scans: out[i] = dot(q, g + i*ldg) for rows i < rows, d elements each (ldg >= d). The f16 scan
 * takes an f32 query against f16 rows; the i8 scan an i8 query against i8 rows. out must not alias. */
typedef void (*eng_scan_f32_fn)(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out);
typedef void (*eng_scan_f16_fn)(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out);
typedef void (*eng_scan_i8_fn)(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out);
/* binary16 <-> f32 conversion of n elements; f32 -> f16 rounds to nearest even (overflow gives inf, NaN
 * stays NaN). Bitwise identical in every ISA. */
typedef void (*eng_cvt_f16_f32_fn)(size_t n, const uint16_t *x, float *y);
typedef void (*eng_cvt_f32_f16_fn)(size_t n, const float *x, uint16_t *y);
/* Floating-point throughput probe (csrc/kernels/probe; the benchmarks' measured peak, _kernels.fma_peak_gflops):
 * L independent lanes, L <= ENG_FMA_PROBE_MAX_LANES, each run iters steps of x[l] = x[l] * b + c from the value
 * in x[l], final values written back. Returns L (flops done: 2 L iters). Every SIMD tier fuses (fmaf, one
 * rounding); the scalar tier, which assumes no FMA instruction, multiplies then adds (two roundings). */
#define ENG_FMA_PROBE_MAX_LANES 256
typedef size_t (*eng_fma_probe_f32_fn)(uint64_t iters, float b, float c, float *x);

/* ---- implicit-GEMM convolution (csrc/kernels/conv; driver and API in eng_conv.h) ----
 * The convolution is a GEMM whose B operand is never built: row p of B (one tap: input channel, kernel row and
 * column) is the image itself, shifted by off[p] elements, because the driver lays the padded input out so that
 * every output pixel of a wide output row reads its taps at the same relative offsets (see conv_driver.c).
 * Micro-kernel contract: a is an MR x kc panel packed k-major (a[p*MR + i], rows >= m zero-padded), x points at
 * the first output column of the tile, off[p] (p < kc) are element offsets. For i < m <= MR, j < n <= NR:
 *   c[i*ldc + j] = sum_p a[p*MR + i] * x[off[p] + j]  (+ c[i*ldc + j] when accumulate)
 * It reads x[off[p] + j] for every j < NR even when n < NR (the caller guarantees those floats exist), never
 * reads c unless accumulate, and writes only the m x n corner. Sums run over p in increasing order. */
typedef void (*eng_conv_ukr_f32_fn)(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                                    float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate);
/* ukr with the epilogue (eng_gemm_epi_t, bias_col unused) applied to the tile as it is stored: for the last tap
 * block when there is no residual to add before the activation. */
typedef void (*eng_conv_ukr_epi_f32_fn)(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                                        float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate,
                                        const eng_gemm_epi_t *epi);
typedef struct eng_conv_f32_impl {
  unsigned mr, nr;        /* register tile */
  size_t kc;              /* taps per block (the A block MR x kc stays in L1, M x kc in L2) */
  eng_conv_ukr_f32_fn ukr;
  eng_conv_ukr_epi_f32_fn ukr_epi; /* optional (NULL): the driver then runs bias_act_f32 over finished rows */
} eng_conv_f32_impl_t;

/* ---- the table ---- */
typedef struct ENG_ALIGN(64) eng_kernels {
#define ENG_KERNEL(name, type) type name;
#include "eng/eng_kernel_list.h"
#undef ENG_KERNEL
} eng_kernels_t;

enum {
#define ENG_KERNEL(name, type) ENG_SLOT_##name,
#include "eng/eng_kernel_list.h"
#undef ENG_KERNEL
  ENG_KERNEL_COUNT
};

/* One table per compiled ISA group (table_<isa>.c); slots left NULL fall back to a lower level. */
extern const eng_kernels_t eng_kernels_scalar;
extern const eng_kernels_t eng_kernels_avx2;
extern const eng_kernels_t eng_kernels_avx512;
extern const eng_kernels_t eng_kernels_neon;

/* ---- variants (named eng_<op>_<dtype>_<isa>) ---- */
#define ENG_DECLARE_VARIANTS(isa)                                                                         \
  extern const eng_gemm_f32_impl_t eng_gemm_f32_##isa;                                                    \
  extern const eng_conv_f32_impl_t eng_conv_f32_##isa;                                                    \
  void eng_gemv_f32_##isa(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x,                   \
                          const float *ENG_RESTRICT b, size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y); \
  void eng_bias_act_f32_##isa(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act);         \
  void eng_act_f32_##isa(size_t n, const float *x, float *y, const eng_act_t *act);                              \
  void eng_binary_f32_##isa(int op, size_t n, const float *a, const float *b, float *y);                         \
  void eng_binary_s_f32_##isa(int op, size_t n, const float *a, float s, float *y, int rev);                     \
  void eng_softmax_f32_##isa(size_t n, const float *x, float *y, int log);                                       \
  void eng_norm_f32_##isa(size_t n, const float *x, const float *scale, const float *bias, float eps, int rms,    \
                          float *y, float *stats);                                                               \
  float eng_reduce_f32_##isa(int op, size_t n, const float *x);                                                  \
  void eng_pool2d_f32_##isa(int kind, const eng_win2d_t *g, const float *x, float *y);                           \
  void eng_dwconv2d_f32_##isa(const eng_win2d_t *g, const float *x, const float *w, float bias,                  \
                              const eng_act_t *act, float *y);                                           \
  float eng_dot_f32_##isa(size_t n, const float *a, const float *b);                                    \
  float eng_sqnorm_f32_##isa(size_t n, const float *a);                                                 \
  float eng_cos_f32_##isa(size_t n, const float *a, const float *b);                                    \
  float eng_dot_f16_##isa(size_t n, const uint16_t *a, const uint16_t *b);                              \
  float eng_sqnorm_f16_##isa(size_t n, const uint16_t *a);                                              \
  float eng_cos_f16_##isa(size_t n, const uint16_t *a, const uint16_t *b);                              \
  int32_t eng_dot_i8_##isa(size_t n, const int8_t *a, const int8_t *b);                                 \
  int32_t eng_sqnorm_i8_##isa(size_t n, const int8_t *a);                                               \
  float eng_cos_i8_##isa(size_t n, const int8_t *a, const int8_t *b);                                   \
  void eng_l2norm_rows_f32_##isa(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy); \
  void eng_l2norm_rows_f16_##isa(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy); \
  void eng_scan_f32_##isa(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out); \
  void eng_scan_f16_##isa(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out); \
  void eng_scan_i8_##isa(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out); \
  void eng_cvt_f16_f32_##isa(size_t n, const uint16_t *x, float *y);                                    \
  void eng_cvt_f32_f16_##isa(size_t n, const float *x, uint16_t *y);                                    \
  size_t eng_fma_probe_f32_##isa(uint64_t iters, float b, float c, float *x);                           \
  void eng_dwconv2d_multi_f32_##isa(const eng_win2d_t *g, size_t nc, const float *x, const float *w,    \
                                    const float *bias, const eng_act_t *act, float *y);
ENG_DECLARE_VARIANTS(scalar)
ENG_DECLARE_VARIANTS(avx2)
ENG_DECLARE_VARIANTS(avx512)
ENG_DECLARE_VARIANTS(neon)
#undef ENG_DECLARE_VARIANTS

#ifdef __cplusplus
}
#endif
#endif /* ENG_KERNELS_H */

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
  ENG_ACT_COUNT = 9,
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

typedef struct eng_gemm_f32_impl {
  unsigned mr, nr;               /* register tile */
  size_t mc, kc, nc;             /* cache blocking: mc % mr == 0, nc % nr == 0 */
  eng_gemm_ukr_f32_fn ukr;       /* the micro-kernel on packed A */
  eng_gemm_ukr_arow_f32_fn ukr_arow; /* optional (NULL): A read in place, used when A is not transposed */
} eng_gemm_f32_impl_t;

/* GEMV with a row vector: y[j] = alpha * sum_p x[p] * op(B)[p][j] + beta * y[j], j < n, p < k.
 * op(B) is B (k x n, row stride ldb) or, when trans_b, B^T with B stored n x k (row stride ldb).
 * beta == 0 never reads y. x and y are contiguous and must not alias b. */
typedef void (*eng_gemv_f32_fn)(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x, const float *ENG_RESTRICT b,
                                size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y);

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
  void eng_gemv_f32_##isa(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x,                   \
                          const float *ENG_RESTRICT b, size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y); \
  void eng_bias_act_f32_##isa(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act);
ENG_DECLARE_VARIANTS(scalar)
ENG_DECLARE_VARIANTS(avx2)
ENG_DECLARE_VARIANTS(avx512)
ENG_DECLARE_VARIANTS(neon)
#undef ENG_DECLARE_VARIANTS

#ifdef __cplusplus
}
#endif
#endif /* ENG_KERNELS_H */

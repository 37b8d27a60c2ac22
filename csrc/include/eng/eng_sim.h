/* eng_sim.h: similarity search on top of the similarity kernels (csrc/kernels/sim/sim_driver.c, core
 * library, ISA-neutral): row-wise cosine of two batches, pairwise distance matrices and the fused gallery
 * search (query normalization + scan + top-k, without materializing the n x m score matrix). */
#ifndef ENG_SIM_H
#define ENG_SIM_H

#include "eng/eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_sim_dtype { ENG_SIM_F32 = 0, ENG_SIM_F16 = 1, ENG_SIM_I8 = 2 } eng_sim_dtype_t;
typedef enum eng_sim_metric { ENG_SIM_COSINE = 0, ENG_SIM_DOT = 1, ENG_SIM_L2SQ = 2 } eng_sim_metric_t;

/* out[i] = cos(a_i, b_i) for rows i < m of d elements (row strides lda, ldb in elements; dtype gives the
 * element type of a and b: float, uint16_t binary16 or int8_t). Rows run on the pool when parallel and the
 * work is large. i8 needs d <= ENG_SIM_I8_MAX_N. */
eng_status_t eng_sim_rowwise_cos(const eng_kernels_t *kt, int dtype, size_t m, size_t d, const void *a, size_t lda,
                                 const void *b, size_t ldb, float *out, int parallel);

/* out (m x n, row stride ldo) = metric(A_i, B_j) for A (m x d, lda) and B (n x d, ldb), f32:
 * DOT: A_i . B_j (one GEMM); COSINE: the dot scaled by 1/|A_i| 1/|B_j| (0 for a zero row), clamped to [-1, 1];
 * L2SQ: max(|A_i|^2 + |B_j|^2 - 2 A_i . B_j, 0). */
eng_status_t eng_sim_cdist_f32(const eng_kernels_t *kt, int metric, size_t m, size_t n, size_t d, const float *a,
                               size_t lda, const float *b, size_t ldb, float *out, size_t ldo, int parallel);

typedef struct eng_sim_search_args {
  int dtype;              /* eng_sim_dtype_t of the gallery */
  size_t n, d;            /* gallery rows and dimension */
  const void *g;          /* gallery, n rows of d elements, row stride ldg (elements) */
  size_t ldg;
  const float *g_scale;   /* i8 only (else NULL): score = dot_i32 * q_factor * g_scale[row] */
  size_t m;               /* queries: m rows of d float32, row stride ldq */
  const float *q;
  size_t ldq;
  int normalize;          /* 1: L2-normalize each query first (cosine against a normalized gallery) */
  size_t k;               /* results per query, 1 <= k <= n */
  float *scores;          /* m x k, best first */
  int64_t *idx;           /* m x k gallery row numbers; ties go to the lower row number */
} eng_sim_search_args_t;

/* The fused search: queries normalized (and, for an i8 gallery, quantized to int8 with a per-query scale),
 * the gallery scanned in cache-sized row blocks (one scan kernel pass per query while the block is in L2, or
 * for many queries against an f32/f16 gallery a GEMM of the block with all queries), each block's scores
 * folded into per-thread top-k heaps, the heaps merged. Rows are split across the pool when parallel. */
eng_status_t eng_sim_search(const eng_kernels_t *kt, const eng_sim_search_args_t *a, int parallel);

#ifdef __cplusplus
}
#endif
#endif /* ENG_SIM_H */

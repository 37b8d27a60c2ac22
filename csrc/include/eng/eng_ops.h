/* eng_ops.h: threaded drivers of the op kernels (csrc/kernels/ops/ops_driver.c, core library).
 * Each validates its sizes, then runs the active table's kernels on the pool when the work is large enough
 * (serially otherwise). Buffers are float32, C-contiguous, unaliased unless stated. */
#ifndef ENG_OPS_H
#define ENG_OPS_H

#include "eng/eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = act(x), n elements; x == y allowed. */
eng_status_t eng_act_run_f32(size_t n, const float *x, float *y, const eng_act_t *act);

/* Broadcast binary op on an output viewed as d[0] x d[1] x d[2] (row-major, d[2] innermost). Operand a's element
 * (i, j, k) is a[i*as[0] + j*as[1] + k*as[2]] with as[2] in {0, 1} (0: broadcast along that axis), same for b.
 * y is contiguous and may equal a or b when that operand is not broadcast (all its strides are the dense ones). */
eng_status_t eng_binary_run_f32(int op, const size_t d[3], const float *a, const size_t as[3], const float *b,
                                const size_t bs[3], float *y);

/* Softmax over the last axis of rows x n; y may equal x. */
eng_status_t eng_softmax_run_f32(size_t rows, size_t n, const float *x, float *y, int log);

/* Layer / RMS normalization of rows x n (see eng_norm_f32_fn); mean, inv_std: NULL or `rows` floats each. */
eng_status_t eng_norm_run_f32(size_t rows, size_t n, const float *x, const float *scale, const float *bias, float eps,
                              int rms, float *y, float *mean, float *inv_std);

/* 2-D pooling of `planes` planes (N*C) of h x w into oh x ow each (kind: eng_pool_kind_t). */
eng_status_t eng_pool2d_run_f32(int kind, const eng_win2d_t *g, size_t planes, const float *x, float *y);

/* Global pooling: y[p] = mean (op ENG_REDUCE_SUM) or max (ENG_REDUCE_MAX) of plane p (hw floats). */
eng_status_t eng_global_pool_run_f32(int op, size_t planes, size_t hw, const float *x, float *y);

/* im2col of one image x (c planes of h x w): col is (c*kh*kw) x (oh*ow), row (ch*kh + a)*kw + b holds tap (a, b) of
 * channel ch for every output position; padding taps are 0. */
eng_status_t eng_im2col_run_f32(const eng_win2d_t *g, size_t c, const float *x, float *col);

/* Depthwise convolution of `planes` planes (a multiple of c: whole images): plane p uses channel ch = p % c: weights
 * w + ch*kh*kw, bias[ch] (bias may be NULL), then act. */
eng_status_t eng_dwconv2d_run_f32(const eng_win2d_t *g, size_t planes, size_t c, const float *x, const float *w,
                                  const float *bias, const eng_act_t *act, float *y);

#ifdef __cplusplus
}
#endif
#endif /* ENG_OPS_H */

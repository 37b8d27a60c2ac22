/* eng_convt.h: 2-D transposed convolution (ONNX ConvTranspose) on float32, NCHW: a GEMM per image and group into
 * a column matrix, then col2im (a scatter-add of the columns into the output image, with the bias).
 * Implemented in csrc/kernels/convt/convt_driver.c (core library: ISA-neutral, baseline flags; the GEMM runs on
 * the active table's micro-kernels through eng_gemm_f32 / eng_gemm_batch_f32, col2im is plain C threaded over
 * channels with eng_parallel_for). Buffers are C-contiguous and unaliased. */
#ifndef ENG_CONVT_H
#define ENG_CONVT_H

#include "eng/eng_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Geometry of one 2-D transposed convolution (or col2im). Input position (i, j) of X (h x w) and kernel tap (a, b)
 * land on output position (i*sh + a*dh - pt, j*sw + b*dw - pl) of Y (oh x ow); positions outside Y are dropped.
 * pt, pl are ONNX's begin pads; they may be negative (an output_shape larger than the natural size under
 * SAME_LOWER/SAME_UPPER: the output starts before the first tap). The end pads and output_padding only show
 * through oh, ow, which the caller computes (ONNX's formulas); any oh, ow >= 0 is valid. */
typedef struct eng_convt2d {
  size_t h, w;           /* input spatial size (columns of the column matrix: h*w) */
  size_t oh, ow;         /* output spatial size */
  size_t kh, kw, sh, sw; /* kernel, strides (>= 1) */
  size_t dh, dw;         /* dilations (>= 1) */
  ptrdiff_t pt, pl;      /* begin pads (top, left), may be negative */
} eng_convt2d_t;

/* col2im: col is (c*kh*kw) x (h*w), row (ch*kh + a)*kw + b holding tap (a, b) of channel ch for every input
 * position; y (c planes of oh x ow) = bias[ch] (0 if bias is NULL) + the sum of the taps landing on each output
 * position, added in the order (a, b, i, j). */
eng_status_t eng_col2im_run_f32(const eng_convt2d_t *g, size_t c, const float *col, const float *bias, float *y);

/* Transposed convolution of n images: x is n x c x (h*w), y is n x m x (oh*ow), bias NULL or m floats.
 * wt are the weights pre-arranged as groups matrices of (m/groups*kh*kw) x (c/groups), row-major: matrix gi, row
 * (mo*kh + a)*kw + b, column ci is ONNX's W[gi*c/groups + ci, mo, a, b]. c and m must be multiples of groups.
 * Allocates a column workspace of about ENGINE_CONVT_BLOCK_KB KiB (environment, default 512; 0: a whole image;
 * more when one input row needs it); ENG_ERR_NOMEM if that fails. */
eng_status_t eng_convt2d_run_f32(const eng_convt2d_t *g, size_t n, size_t c, size_t m, size_t groups, const float *x,
                                 const float *wt, const float *bias, float *y);

#ifdef __cplusplus
}
#endif
#endif /* ENG_CONVT_H */

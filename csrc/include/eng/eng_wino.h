/* eng_wino.h: Winograd F(4x4, 3x3) convolution, float32 NCHW, 3x3 kernel, stride 1, dilation 1, group 1, any
 * padding (csrc/kernels/wino/wino_driver.c, core library).
 *
 * Points 0, 1, -1, 2, -2 and infinity (Lavin & Gray 2016): each 6x6 input tile d gives a 4x4 output tile
 *   Y = A^T [ sum_ic (G g G^T) .* (B^T d B) ] A
 * so one output tile costs 36 multiplies per (oc, ic) pair instead of 144. The 36 element-wise products over the
 * channels are 36 GEMMs M[p] (oc x tiles) = U[p] (oc x ic) @ V[p] (ic x tiles), run on the active table's GEMM
 * micro-kernels (eng_gemm_f32_with), so every ISA uses its own kernels; the transforms are plain C. */
#ifndef ENG_WINO_H
#define ENG_WINO_H

#include "eng/eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_WINO_POS 36 /* 6 x 6 transformed positions per tile */

/* u (36 x oc x ic, position-major: u[(p*oc + o)*ic + c]) = G g G^T of every 3x3 filter g = w[o, c] (w: oc x ic x
 * 3 x 3, ONNX layout). Computed in double and rounded once. */
eng_status_t eng_wino_weights_f32(size_t oc, size_t ic, const float *w, float *u);

/* y (n x oc x oh x ow) = act(conv(x, w) + bias + z) with x (n x ic x h x w), u from eng_wino_weights_f32, bias NULL or
 * oc floats, z NULL or a residual shaped like y (added after the bias, before the activation), pads (top, left,
 * bottom, right); oh = h + pt + pb - 2 and ow = w + pl + pr - 2 must be >= 1. Images run one after another; within
 * an image, blocks of tiles run on the pool. x, u, bias and z must not overlap y. */
eng_status_t eng_wino_conv_f32(size_t n, size_t ic, size_t h, size_t w, size_t oc, const size_t pads[4],
                               const float *x, const float *u, const float *bias, const float *z,
                               const eng_act_t *act, float *y);

/* Tiles per block the driver would use (for tests and benchmarks); 0 if the sizes are invalid. */
size_t eng_wino_block_tiles(size_t ic, size_t oc, size_t tiles);

#ifdef __cplusplus
}
#endif
#endif /* ENG_WINO_H */

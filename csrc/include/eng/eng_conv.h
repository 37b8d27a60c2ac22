/* eng_conv.h: 2-D convolution on the implicit-GEMM kernels (csrc/kernels/conv/conv_driver.c, core library).
 *
 * NCHW float32 in and out, any kernel size, stride, dilation, padding and group count (depthwise convolutions
 * have their own direct kernel, eng_dwconv2d_run_f32, which is faster for them). The weights are packed once
 * (eng_conv2d_pack_f32, at session build) for the micro-kernel of the table they will run with; the packed
 * layout depends on that table's register tile, so a table change needs a repack (the Python wrapper checks). */
#ifndef ENG_CONV_H
#define ENG_CONV_H

#include "eng/eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_conv2d {
  size_t n, c, h, w;             /* input N x C x H x W */
  size_t m, group;               /* M output channels; C and M are multiples of group */
  size_t kh, kw, sh, sw, dh, dw; /* kernel, strides, dilations (all >= 1) */
  size_t pt, pl, pb, pr;         /* pads: top, left, bottom, right */
  size_t oh, ow;                 /* output size: must equal (h + pt + pb - (kh - 1) * dh - 1) / sh + 1 (same for w) */
} eng_conv2d_t;

/* Floats of the packed weights for table kt (0 if the geometry is invalid or the size overflows). */
size_t eng_conv2d_packed_size(const eng_kernels_t *kt, const eng_conv2d_t *g);
/* Packs w (M x C/group x kh x kw, C-contiguous) into wp (eng_conv2d_packed_size floats). */
eng_status_t eng_conv2d_pack_f32(const eng_kernels_t *kt, const eng_conv2d_t *g, const float *w, float *wp);
/* y = act(conv(x, w) + bias + z): bias is NULL or M floats; z is NULL or a residual of y's shape (N x M x oh x ow).
 * Neither x nor z may overlap y. Runs on the pool when parallel is non-zero. */
eng_status_t eng_conv2d_run_f32(const eng_kernels_t *kt, const eng_conv2d_t *g, const float *x, const float *wp,
                                const float *bias, const float *z, const eng_act_t *act, float *y, int parallel);

#ifdef __cplusplus
}
#endif
#endif /* ENG_CONV_H */

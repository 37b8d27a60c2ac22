/* convt_driver.c: 2-D transposed convolution (ONNX ConvTranspose, float32 NCHW) and its col2im (API and contracts
 * in eng/eng_convt.h).
 * ISA-neutral: core library, baseline flags, no intrinsics. The products run on the active table's GEMM
 * micro-kernels (eng_gemm_f32 / eng_gemm_batch_f32, threaded inside); col2im is data movement plus adds in plain C
 * (the compiler vectorizes the stride-1 rows with the baseline SIMD), threaded over output channels with
 * eng_parallel_for. There is no per-ISA twin: the scalar reference is the numpy code in the tests
 * (tests/ops/test_conv_transpose_c.py, col2im_ref), and the result does not depend on the ISA beyond the GEMM's.
 *
 * Y[n] = col2im(Wt @ X[n]): for each image, the column matrix (m*kh*kw) x (h*w) is produced a block of input rows
 * at a time (ENGINE_CONVT_BLOCK_KB, default 512 KiB of columns, so the GEMM's output is still in L2 when col2im
 * reads it back; 0 = the whole image in one block: the off switch), and scattered into Y right away. Each output
 * row is filled with its bias just before the first block that reaches it (so it is still in cache for the adds),
 * then receives the taps in the order (block, a, b, i, j). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_convt.h"
#include "eng/eng_runtime.h"

/* Measured on Zen 3, 1 thread, thread CPU time in ms for k=4 s=2 p=1 layers 64x56x56->32 / 128x28x28->64 /
 * 32x112x112->16, on a busy machine (+-10%): whole image 3.38 / 3.03 / 6.24, 64 KiB 4.05 / 3.55 / 4.48 (the GEMM's N
 * gets small), 256 KiB 3.30 / 3.44 / 4.06, 512 KiB 3.31 / 2.72 / 4.05, 1 MiB 3.19 / 2.78 / 3.92. */
#define CONVT_BLOCK_BYTES_DEFAULT ((size_t)512 * 1024)
#define MIN_TASK_WORK ((size_t)32768) /* elements of work per task, as in ops_driver.c */

static size_t block_bytes(void) {
  const char *e = getenv("ENGINE_CONVT_BLOCK_KB");
  if (!e || !*e) return CONVT_BLOCK_BYTES_DEFAULT;
  char *end;
  unsigned long long v = strtoull(e, &end, 10);
  if (*end) return CONVT_BLOCK_BYTES_DEFAULT;
  if (v == 0) return SIZE_MAX; /* one block per image */
  return v > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)v * 1024;
}

/* Checks the geometry and that every index the loops form fits (sizes in size_t, coordinates in ptrdiff_t). */
static eng_status_t convt_valid(const eng_convt2d_t *g, size_t *in_plane, size_t *out_plane, size_t *taps) {
  if (!g || g->kh == 0 || g->kw == 0 || g->sh == 0 || g->sw == 0 || g->dh == 0 || g->dw == 0)
    return ENG_ERR_INVALID_ARG;
  if (!eng_mul_size(g->h, g->w, in_plane) || !eng_mul_size(g->oh, g->ow, out_plane) ||
      !eng_mul_size(g->kh, g->kw, taps))
    return ENG_ERR_OVERFLOW;
  /* coordinates i*sh + a*dh - pt (and the same for columns) must fit in ptrdiff_t: each term below PTRDIFF_MAX/4 */
  const size_t lim = (size_t)PTRDIFF_MAX / 4;
  size_t a, b;
  if (!eng_mul_size(g->h, g->sh, &a) || !eng_mul_size(g->kh, g->dh, &b) || a > lim || b > lim || g->oh > lim)
    return ENG_ERR_OVERFLOW;
  if (!eng_mul_size(g->w, g->sw, &a) || !eng_mul_size(g->kw, g->dw, &b) || a > lim || b > lim || g->ow > lim)
    return ENG_ERR_OVERFLOW;
  if (g->pt > (ptrdiff_t)lim || g->pt < -(ptrdiff_t)lim || g->pl > (ptrdiff_t)lim || g->pl < -(ptrdiff_t)lim)
    return ENG_ERR_OVERFLOW;
  return ENG_OK;
}

static size_t n_tasks(size_t units, size_t per_unit) { return eng_task_count(units, per_unit, MIN_TASK_WORK); }

/* ---------------------------------------------------------------- col2im */

typedef struct col2im_job {
  const eng_convt2d_t *g;
  const float *col; /* row ch*taps + a*kw + b; column (i - i0)*w + j; ld floats per row */
  size_t ld;
  size_t i0, i1;    /* the input rows this block of columns covers */
  const float *bias;
  float *y;         /* channel planes of oh*ow */
  size_t channels;
  size_t init_lo, init_hi; /* output rows to fill with the bias (or 0) first: those no earlier block reached */
} col2im_job_t;

static void add_row(float *ENG_RESTRICT y, const float *ENG_RESTRICT s, size_t n) {
  for (size_t k = 0; k < n; k++) y[k] += s[k];
}

static void add_row_s2(float *ENG_RESTRICT y, const float *ENG_RESTRICT s, size_t n) {
  for (size_t k = 0; k < n; k++) y[2 * k] += s[k];
}

/* Output columns of input columns j for a tap with column offset off (= b*dw - pl): j*sw + off, valid for j in
 * [*lo, *hi) (inside [0, ow) and [0, w)). */
static void col_range(ptrdiff_t off, ptrdiff_t sw, ptrdiff_t OW, ptrdiff_t W, ptrdiff_t *lo, ptrdiff_t *hi) {
  ptrdiff_t jlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  ptrdiff_t jhi = OW - 1 - off < 0 ? 0 : (OW - 1 - off) / sw + 1;
  if (jhi > W) jhi = W;
  if (jlo > jhi) jlo = jhi;
  *lo = jlo;
  *hi = jhi;
}

/* Stride 2, dilation 1: taps b and b+1 land on neighbouring output columns (2j + off, 2j + off + 1), so the pair
 * is added as one contiguous, interleaved run (vectorized with unpack shuffles) instead of two strided ones. */
static void add_pair_s2(float *ENG_RESTRICT y, const float *ENG_RESTRICT s0, const float *ENG_RESTRICT s1, size_t n) {
  for (size_t k = 0; k < n; k++) {
    y[2 * k] += s0[k];
    y[2 * k + 1] += s1[k];
  }
}

static void col2im_channel(const col2im_job_t *jb, size_t ch) {
  const eng_convt2d_t *g = jb->g;
  const size_t taps = g->kh * g->kw, ohw = g->oh * g->ow;
  const ptrdiff_t OH = (ptrdiff_t)g->oh, OW = (ptrdiff_t)g->ow, sw = (ptrdiff_t)g->sw, W = (ptrdiff_t)g->w;
  const int pairs = g->sw == 2 && g->dw == 1;
  float *yp = jb->y + ch * ohw;
  if (jb->init_lo < jb->init_hi) {
    float *r0 = yp + jb->init_lo * g->ow;
    const size_t cnt = (jb->init_hi - jb->init_lo) * g->ow;
    if (!jb->bias)
      memset(r0, 0, cnt * sizeof(float));
    else
      for (size_t k = 0; k < cnt; k++) r0[k] = jb->bias[ch];
  }
  for (size_t a = 0; a < g->kh; a++) {
    for (size_t b = 0; b < g->kw; b++) {
      const float *src = jb->col + (ch * taps + a * g->kw + b) * jb->ld;
      const ptrdiff_t off = (ptrdiff_t)(b * g->dw) - g->pl;
      ptrdiff_t jlo, jhi, qlo = 0, qhi = 0, plo = 0, phi = 0;
      col_range(off, sw, OW, W, &jlo, &jhi);
      const float *src1 = NULL;
      if (pairs && b + 1 < g->kw) { /* taps b, b+1: the common range [plo, phi) together, the rest of each alone */
        col_range(off + 1, sw, OW, W, &qlo, &qhi);
        plo = qlo > jlo ? qlo : jlo;
        phi = qhi < jhi ? qhi : jhi;
        if (plo < phi) src1 = src + jb->ld;
      }
      for (size_t i = jb->i0; i < jb->i1; i++) {
        const ptrdiff_t oy = (ptrdiff_t)(i * g->sh + a * g->dh) - g->pt;
        if (oy < 0 || oy >= OH) continue;
        const size_t so = (i - jb->i0) * g->w;
        float *yr = yp + oy * OW; /* output column c is yr[c]; every index below is inside [0, ow) */
        if (src1) {
          for (ptrdiff_t j = jlo; j < plo; j++) yr[j * 2 + off] += src[so + (size_t)j];
          for (ptrdiff_t j = qlo; j < (qhi < plo ? qhi : plo); j++) yr[j * 2 + off + 1] += src1[so + (size_t)j];
          add_pair_s2(yr + plo * 2 + off, src + so + (size_t)plo, src1 + so + (size_t)plo, (size_t)(phi - plo));
          for (ptrdiff_t j = phi; j < jhi; j++) yr[j * 2 + off] += src[so + (size_t)j];
          for (ptrdiff_t j = (qlo > phi ? qlo : phi); j < qhi; j++) yr[j * 2 + off + 1] += src1[so + (size_t)j];
          continue;
        }
        if (jlo >= jhi) continue;
        const float *sp = src + so + (size_t)jlo;
        float *yo = yr + jlo * sw + off;
        const size_t len = (size_t)(jhi - jlo);
        if (sw == 1)
          add_row(yo, sp, len);
        else if (sw == 2)
          add_row_s2(yo, sp, len);
        else
          for (size_t k = 0; k < len; k++) yo[k * (size_t)sw] += sp[k];
      }
      if (src1) b++; /* tap b+1 is done */
    }
  }
}

static void col2im_task(void *p, size_t task, size_t tasks) {
  const col2im_job_t *jb = (const col2im_job_t *)p;
  size_t q = jb->channels / tasks, r = jb->channels % tasks;
  size_t lo = task * q + (task < r ? task : r), hi = lo + q + (task < r ? 1 : 0);
  for (size_t ch = lo; ch < hi; ch++) col2im_channel(jb, ch);
}

static void run_col2im(col2im_job_t *jb) {
  size_t per = jb->g->kh * jb->g->kw * (jb->i1 - jb->i0) * jb->g->w + (jb->init_hi - jb->init_lo) * jb->g->ow;
  size_t t = n_tasks(jb->channels, per);
  if (t == 0) return;
  if (t == 1)
    col2im_task(jb, 0, 1);
  else
    eng_parallel_for(t, col2im_task, jb);
}

eng_status_t eng_col2im_run_f32(const eng_convt2d_t *g, size_t c, const float *col, const float *bias, float *y) {
  size_t in_plane, out_plane, taps, rows, t;
  eng_status_t s = convt_valid(g, &in_plane, &out_plane, &taps);
  if (s != ENG_OK) return s;
  if (!eng_mul_size(c, taps, &rows) || !eng_mul_size(rows, in_plane, &t) || !eng_mul_size(c, out_plane, &t))
    return ENG_ERR_OVERFLOW;
  if (c == 0 || out_plane == 0) return ENG_OK;
  if (!y || (in_plane && !col)) return ENG_ERR_INVALID_ARG;
  col2im_job_t jb = {g, col, in_plane, 0, g->h, bias, y, c, 0, g->oh};
  if (in_plane == 0) jb.i1 = 0; /* no columns: every plane is its bias */
  run_col2im(&jb);
  return ENG_OK;
}

/* ---------------------------------------------------------------- transposed convolution */

eng_status_t eng_convt2d_run_f32(const eng_convt2d_t *g, size_t n, size_t c, size_t m, size_t groups, const float *x,
                                 const float *wt, const float *bias, float *y) {
  size_t in_plane, out_plane, taps, t;
  eng_status_t s = convt_valid(g, &in_plane, &out_plane, &taps);
  if (s != ENG_OK) return s;
  if (groups == 0 || c % groups || m % groups) return ENG_ERR_INVALID_ARG;
  const size_t cg = c / groups, mg = m / groups;
  size_t rows, x_img, y_img;
  if (!eng_mul_size(m, taps, &rows) || !eng_mul_size(rows, cg, &t) || !eng_mul_size(c, in_plane, &x_img) ||
      !eng_mul_size(m, out_plane, &y_img) || !eng_mul_size(n, x_img, &t) || !eng_mul_size(n, y_img, &t) ||
      !eng_mul_size(rows, in_plane, &t))
    return ENG_ERR_OVERFLOW;
  if (n == 0 || m == 0 || out_plane == 0) return ENG_OK;
  if (!y || (cg && in_plane && (!x || !wt))) return ENG_ERR_INVALID_ARG;
  if (cg == 0 || in_plane == 0) { /* no input values: every output plane is its bias */
    col2im_job_t jb = {g, NULL, 0, 0, 0, bias, NULL, m, 0, g->oh};
    for (size_t img = 0; img < n; img++) {
      jb.y = y + img * y_img;
      run_col2im(&jb);
    }
    return ENG_OK;
  }

  eng_gemm_args_t ga;
  memset(&ga, 0, sizeof ga);
  ga.alpha = 1.0f;
  ga.beta = 0.0f;
  ga.k = cg;
  ga.lda = cg;
  ga.ldb = in_plane;
  ga.act.kind = ENG_ACT_NONE;

  /* 1x1 kernel, stride 1, no shift, same size: Y[n] (per group) = Wt @ X[n] + bias straight into Y */
  if (taps == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 && g->oh == g->h && g->ow == g->w) {
    ga.m = mg;
    ga.n = in_plane;
    ga.ldc = in_plane;
    ga.bias_kind = bias ? ENG_BIAS_ROW : ENG_BIAS_NONE;
    for (size_t img = 0; img < n; img++)
      for (size_t gi = 0; gi < groups; gi++) {
        ga.a = wt + gi * mg * cg;
        ga.b = x + img * x_img + gi * cg * in_plane;
        ga.c = y + img * y_img + gi * mg * out_plane;
        ga.bias = bias ? bias + gi * mg : NULL;
        if ((s = eng_gemm_f32(&ga)) != ENG_OK) return s;
      }
    return ENG_OK;
  }

  /* input rows per block: the block's columns take about block_bytes() (at least one row) */
  size_t row_bytes, rb = g->h;
  if (!eng_mul_size(rows, g->w, &row_bytes) || !eng_mul_size(row_bytes, sizeof(float), &row_bytes))
    return ENG_ERR_OVERFLOW;
  size_t budget = block_bytes();
  if (budget != SIZE_MAX) {
    rb = row_bytes ? budget / row_bytes : g->h;
    if (rb < 1) rb = 1;
    if (rb > g->h) rb = g->h;
  }
  size_t col_elems;
  if (!eng_mul_size(rows, rb * g->w, &col_elems) || col_elems > SIZE_MAX / sizeof(float)) return ENG_ERR_OVERFLOW;
  float *col = (float *)malloc(col_elems * sizeof(float));
  int64_t *offs = NULL;
  if (!col) return ENG_ERR_NOMEM;
  if (groups > 1) {
    offs = (int64_t *)malloc(3 * groups * sizeof(int64_t));
    if (!offs) {
      free(col);
      return ENG_ERR_NOMEM;
    }
  }
  ga.m = mg * taps;
  ga.a = wt;
  ga.bias_kind = ENG_BIAS_NONE;
  col2im_job_t jb = {g, col, 0, 0, 0, bias, NULL, m, 0, 0};
  for (size_t img = 0; img < n && s == ENG_OK; img++) {
    jb.y = y + img * y_img;
    size_t done = 0; /* output rows [0, done) hold their bias plus the taps added so far */
    for (size_t i0 = 0; i0 < g->h; i0 += rb) {
      const size_t i1 = i0 + rb < g->h ? i0 + rb : g->h, nb = (i1 - i0) * g->w;
      /* rows this block reaches end before (i1-1)*sh + (kh-1)*dh - pt + 1; the last block fills the rest too, so
       * the bias is written just before the first adds and the rows stay in cache between the two */
      ptrdiff_t reach = (ptrdiff_t)((i1 - 1) * g->sh + (g->kh - 1) * g->dh) - g->pt + 1;
      size_t upto = i1 == g->h || reach >= (ptrdiff_t)g->oh ? g->oh : reach < 0 ? 0 : (size_t)reach;
      if (upto < done) upto = done;
      jb.init_lo = done;
      jb.init_hi = upto;
      done = upto;
      ga.n = nb;
      ga.ldc = nb;
      ga.b = x + img * x_img + i0 * g->w;
      ga.c = col;
      if (groups == 1) {
        s = eng_gemm_f32(&ga);
      } else {
        for (size_t gi = 0; gi < groups; gi++) {
          offs[gi] = (int64_t)(gi * mg * taps * cg);
          offs[groups + gi] = (int64_t)(gi * cg * in_plane);
          offs[2 * groups + gi] = (int64_t)(gi * mg * taps * nb);
        }
        s = eng_gemm_batch_f32(&ga, groups, offs, offs + groups, offs + 2 * groups);
      }
      if (s != ENG_OK) break;
      jb.ld = nb;
      jb.i0 = i0;
      jb.i1 = i1;
      run_col2im(&jb);
    }
  }
  free(offs);
  free(col);
  return s;
}

/* convt_driver.c: 2-D transposed convolution (ONNX ConvTranspose, float32 NCHW) and its col2im (API and contracts
 * in eng/eng_convt.h).
 * ISA-neutral: core library, baseline flags, no intrinsics. The products run on the active table's GEMM
 * micro-kernels (eng_gemm_f32 / eng_gemm_batch_f32, threaded inside); col2im is data movement plus adds in plain C
 * (the compiler vectorizes the stride-1 rows with the baseline SIMD), threaded over output channels with
 * eng_parallel_for. There is no per-ISA twin: the scalar reference is the numpy code in the tests
 * (tests/ops/test_conv_transpose_c.py, col2im_ref), and the result does not depend on the ISA beyond the GEMM's.
 *
 * Y[n] = col2im(Wt @ X[n]): for each image, the column matrix (m*kh*kw) x (h*w) is produced a block of input rows
 * at a time (ENGINE_CONVT_BLOCK_KB, default 256 KiB of columns, so the GEMM's output is still in L2 when col2im
 * reads it back; 0 = the whole image in one block: the off switch), and scattered into Y right away. Each output
 * plane is first filled with its bias, then receives the taps in the order (block, a, b, i, j). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_convt.h"
#include "eng/eng_runtime.h"

#define CONVT_BLOCK_BYTES_DEFAULT ((size_t)256 * 1024)
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

static size_t n_tasks(size_t units, size_t per_unit) {
  if (units <= 1) return units;
  size_t work;
  if (!eng_mul_size(units, per_unit ? per_unit : 1, &work)) work = SIZE_MAX;
  size_t threads = (size_t)eng_get_num_threads();
  size_t t = work / MIN_TASK_WORK, cap = threads <= 1 ? 1 : 4 * threads;
  if (t > cap) t = cap;
  if (t > units) t = units;
  return t ? t : 1;
}

/* ---------------------------------------------------------------- col2im */

typedef struct col2im_job {
  const eng_convt2d_t *g;
  const float *col; /* row ch*taps + a*kw + b; column (i - i0)*w + j; ld floats per row */
  size_t ld;
  size_t i0, i1;    /* the input rows this block of columns covers */
  const float *bias;
  float *y;         /* channel planes of oh*ow */
  size_t channels;
  int init;         /* fill each plane with its bias (or 0) before adding */
} col2im_job_t;

static void add_row(float *ENG_RESTRICT y, const float *ENG_RESTRICT s, size_t n) {
  for (size_t k = 0; k < n; k++) y[k] += s[k];
}

static void add_row_s2(float *ENG_RESTRICT y, const float *ENG_RESTRICT s, size_t n) {
  for (size_t k = 0; k < n; k++) y[2 * k] += s[k];
}

static void col2im_channel(const col2im_job_t *jb, size_t ch) {
  const eng_convt2d_t *g = jb->g;
  const size_t taps = g->kh * g->kw, ohw = g->oh * g->ow;
  const ptrdiff_t OH = (ptrdiff_t)g->oh, OW = (ptrdiff_t)g->ow, sw = (ptrdiff_t)g->sw, W = (ptrdiff_t)g->w;
  float *yp = jb->y + ch * ohw;
  if (jb->init) {
    const float v = jb->bias ? jb->bias[ch] : 0.0f;
    if (!jb->bias)
      memset(yp, 0, ohw * sizeof(float));
    else
      for (size_t k = 0; k < ohw; k++) yp[k] = v;
  }
  for (size_t a = 0; a < g->kh; a++) {
    for (size_t b = 0; b < g->kw; b++) {
      const float *src = jb->col + (ch * taps + a * g->kw + b) * jb->ld;
      /* output column of input column j: j*sw + off; valid j: [jlo, jhi) */
      const ptrdiff_t off = (ptrdiff_t)(b * g->dw) - g->pl;
      ptrdiff_t jlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
      ptrdiff_t jhi = OW - 1 - off < 0 ? 0 : (OW - 1 - off) / sw + 1;
      if (jhi > W) jhi = W;
      if (jlo >= jhi) continue;
      const size_t len = (size_t)(jhi - jlo);
      for (size_t i = jb->i0; i < jb->i1; i++) {
        const ptrdiff_t oy = (ptrdiff_t)(i * g->sh + a * g->dh) - g->pt;
        if (oy < 0 || oy >= OH) continue;
        const float *s = src + (i - jb->i0) * g->w + (size_t)jlo;
        float *yr = yp + (size_t)(oy * OW + off + jlo * sw); /* >= 0 and inside the row by the choice of jlo, jhi */
        if (sw == 1)
          add_row(yr, s, len);
        else if (sw == 2)
          add_row_s2(yr, s, len);
        else
          for (size_t k = 0; k < len; k++) yr[k * (size_t)sw] += s[k];
      }
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
  const size_t ohw = jb->g->oh * jb->g->ow;
  size_t per = jb->g->kh * jb->g->kw * (jb->i1 - jb->i0) * jb->g->w + (jb->init ? ohw : 0);
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
  col2im_job_t jb = {g, col, in_plane, 0, g->h, bias, y, c, 1};
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
    col2im_job_t jb = {g, NULL, 0, 0, 0, bias, NULL, m, 1};
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
  col2im_job_t jb = {g, col, 0, 0, 0, bias, NULL, m, 1};
  for (size_t img = 0; img < n && s == ENG_OK; img++) {
    jb.y = y + img * y_img;
    jb.init = 1;
    for (size_t i0 = 0; i0 < g->h; i0 += rb) {
      const size_t i1 = i0 + rb < g->h ? i0 + rb : g->h, nb = (i1 - i0) * g->w;
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
      jb.init = 0;
    }
  }
  free(offs);
  free(col);
  return s;
}

/* ops_driver.c: threaded drivers of the op kernels (API in eng/eng_ops.h).  ISA-neutral: core library,
 * baseline flags; every kernel call goes through the active table (eng_active).
 * Work is cut into contiguous ranges of units (rows, planes, or 1024-element blocks) so that each task gets at
 * least MIN_TASK_WORK elements of work (below that a pool wake-up costs more than it saves) and there are at most
 * 4 tasks per thread (load balance). A single task runs on the calling thread without touching the pool. */
#include <math.h>
#include <string.h>

#include "eng/eng_dispatch.h"
#include "eng/eng_ops.h"
#include "eng/eng_runtime.h"

#define MIN_TASK_WORK ((size_t)32768) /* elements of work (about one load each) per task */
#define BLOCK ((size_t)1024)          /* elementwise ranges are cut in blocks of 1024 floats (whole cache lines) */

static size_t n_tasks(size_t units, size_t per_unit) { return eng_task_count(units, per_unit, MIN_TASK_WORK); }

typedef void (*range_fn)(void *ctx, size_t lo, size_t hi);
typedef struct range_job {
  range_fn fn;
  void *ctx;
  size_t units;
} range_job_t;

static void range_task(void *p, size_t task, size_t tasks) {
  range_job_t *j = (range_job_t *)p;
  size_t q = j->units / tasks, r = j->units % tasks;
  size_t lo = task * q + (task < r ? task : r), hi = lo + q + (task < r ? 1 : 0);
  if (lo < hi) j->fn(j->ctx, lo, hi);
}

/* Runs fn over the units [0, units) in contiguous ranges, on the pool when the work is large enough. */
static void run_ranges(size_t units, size_t per_unit, range_fn fn, void *ctx) {
  size_t t = n_tasks(units, per_unit);
  if (t == 0) return;
  if (t == 1) {
    fn(ctx, 0, units);
    return;
  }
  range_job_t j = {fn, ctx, units};
  eng_parallel_for(t, range_task, &j);
}

static int act_valid(const eng_act_t *act) { return act && act->kind >= 0 && act->kind < ENG_ACT_COUNT; }

/* Transcendental activations cost ~10-20 loads per element. */
static size_t act_cost(int kind) {
  switch (kind) {
    case ENG_ACT_NONE: case ENG_ACT_RELU: case ENG_ACT_CLIP: case ENG_ACT_LEAKY_RELU: case ENG_ACT_HARDSWISH:
    case ENG_ACT_HARDSIGMOID: return 1;
    default: return 16;
  }
}

/* ---------------------------------------------------------------- activation */

typedef struct act_ctx {
  size_t n;
  const float *x;
  float *y;
  const eng_act_t *act;
} act_ctx_t;

static void act_range(void *p, size_t lo, size_t hi) {
  act_ctx_t *c = (act_ctx_t *)p;
  size_t a = lo * BLOCK, b = hi * BLOCK < c->n ? hi * BLOCK : c->n;
  eng_active.act_f32(b - a, c->x + a, c->y + a, c->act);
}

eng_status_t eng_act_run_f32(size_t n, const float *x, float *y, const eng_act_t *act) {
  if (!act_valid(act)) return ENG_ERR_INVALID_ARG;
  if (n == 0) return ENG_OK;
  if (!x || !y) return ENG_ERR_INVALID_ARG;
  act_ctx_t c = {n, x, y, act};
  run_ranges((n + BLOCK - 1) / BLOCK, BLOCK * act_cost(act->kind), act_range, &c);
  return ENG_OK;
}

/* ---------------------------------------------------------------- binary */

typedef struct bin_ctx {
  int op;
  size_t d[3], as[3], bs[3];
  size_t nblk; /* blocks per row of d[2] */
  const float *a, *b;
  float *y;
} bin_ctx_t;

/* Units are (row, block of BLOCK floats within the row); consecutive blocks of one row go to the kernel as one call. */
static void bin_range(void *p, size_t lo, size_t hi) {
  bin_ctx_t *c = (bin_ctx_t *)p;
  for (size_t u = lo; u < hi;) {
    size_t row = u / c->nblk, blk = u % c->nblk;
    size_t blk_end = c->nblk - blk < hi - u ? c->nblk : blk + (hi - u);
    size_t i0 = row / c->d[1], i1 = row % c->d[1];
    size_t k0 = blk * BLOCK, k1 = blk_end * BLOCK < c->d[2] ? blk_end * BLOCK : c->d[2];
    size_t len = k1 - k0;
    const float *pa = c->a + i0 * c->as[0] + i1 * c->as[1] + k0 * c->as[2];
    const float *pb = c->b + i0 * c->bs[0] + i1 * c->bs[1] + k0 * c->bs[2];
    float *py = c->y + row * c->d[2] + k0;
    if (c->as[2] && c->bs[2])
      eng_active.binary_f32(c->op, len, pa, pb, py);
    else if (c->bs[2])
      eng_active.binary_s_f32(c->op, len, pb, *pa, py, 1);
    else if (c->as[2])
      eng_active.binary_s_f32(c->op, len, pa, *pb, py, 0);
    else {
      float one = *pa;
      eng_active.binary_s_f32(c->op, 1, &one, *pb, &one, 0);
      for (size_t k = 0; k < len; k++) py[k] = one;
    }
    u += blk_end - blk;
  }
}

eng_status_t eng_binary_run_f32(int op, const size_t d[3], const float *a, const size_t as[3], const float *b,
                                const size_t bs[3], float *y) {
  if (op < 0 || op >= ENG_BIN_COUNT || !d || !as || !bs) return ENG_ERR_INVALID_ARG;
  if (as[2] > 1 || bs[2] > 1) return ENG_ERR_INVALID_ARG;
  size_t rows, total;
  if (!eng_mul_size(d[0], d[1], &rows) || !eng_mul_size(rows, d[2], &total)) return ENG_ERR_OVERFLOW;
  if (total == 0) return ENG_OK;
  if (!a || !b || !y) return ENG_ERR_INVALID_ARG;
  bin_ctx_t c = {op, {d[0], d[1], d[2]}, {as[0], as[1], as[2]}, {bs[0], bs[1], bs[2]}, (d[2] + BLOCK - 1) / BLOCK, a, b, y};
  size_t units;
  if (!eng_mul_size(rows, c.nblk, &units)) return ENG_ERR_OVERFLOW;
  run_ranges(units, d[2] < BLOCK ? d[2] : BLOCK, bin_range, &c);
  return ENG_OK;
}

/* ---------------------------------------------------------------- softmax, normalization */

typedef struct rows_ctx {
  size_t n;
  const float *x, *scale, *bias;
  float *y, *mean, *inv_std;
  float eps;
  int flag; /* softmax: log; norm: rms */
} rows_ctx_t;

static void softmax_range(void *p, size_t lo, size_t hi) {
  rows_ctx_t *c = (rows_ctx_t *)p;
  for (size_t r = lo; r < hi; r++) eng_active.softmax_f32(c->n, c->x + r * c->n, c->y + r * c->n, c->flag);
}

eng_status_t eng_softmax_run_f32(size_t rows, size_t n, const float *x, float *y, int log) {
  size_t total;
  if (!eng_mul_size(rows, n, &total)) return ENG_ERR_OVERFLOW;
  if (total == 0) return ENG_OK;
  if (!x || !y) return ENG_ERR_INVALID_ARG;
  rows_ctx_t c = {n, x, NULL, NULL, y, NULL, NULL, 0.0f, log};
  run_ranges(rows, 8 * n, softmax_range, &c);
  return ENG_OK;
}

static void norm_range(void *p, size_t lo, size_t hi) {
  rows_ctx_t *c = (rows_ctx_t *)p;
  float st[2];
  for (size_t r = lo; r < hi; r++) {
    eng_active.norm_f32(c->n, c->x + r * c->n, c->scale, c->bias, c->eps, c->flag, c->y + r * c->n, st);
    if (c->mean) c->mean[r] = st[0];
    if (c->inv_std) c->inv_std[r] = st[1];
  }
}

eng_status_t eng_norm_run_f32(size_t rows, size_t n, const float *x, const float *scale, const float *bias, float eps,
                              int rms, float *y, float *mean, float *inv_std) {
  size_t total;
  if (!eng_mul_size(rows, n, &total)) return ENG_ERR_OVERFLOW;
  if (rows == 0) return ENG_OK;
  if (n == 0 || !x || !y || !(eps >= 0.0f)) return ENG_ERR_INVALID_ARG;
  rows_ctx_t c = {n, x, scale, bias, y, mean, inv_std, eps, rms};
  run_ranges(rows, 3 * n, norm_range, &c);
  return ENG_OK;
}

/* ---------------------------------------------------------------- pooling, convolution helpers */

static eng_status_t win_valid(const eng_win2d_t *g, size_t *in_plane, size_t *out_plane) {
  if (!g || g->kh == 0 || g->kw == 0 || g->sh == 0 || g->sw == 0 || g->dh == 0 || g->dw == 0) return ENG_ERR_INVALID_ARG;
  size_t t;
  if (!eng_mul_size(g->h, g->w, in_plane) || !eng_mul_size(g->oh, g->ow, out_plane) || !eng_mul_size(g->kh, g->kw, &t))
    return ENG_ERR_OVERFLOW;
  /* every tap index must fit in ptrdiff_t: (o*s + k*d) for the largest o and k */
  size_t lim = (size_t)PTRDIFF_MAX / 4, a, b;
  if (!eng_mul_size(g->oh, g->sh, &a) || !eng_mul_size(g->kh, g->dh, &b) || a > lim || b > lim || g->pt > lim ||
      g->pb > lim || g->h > lim)
    return ENG_ERR_OVERFLOW;
  if (!eng_mul_size(g->ow, g->sw, &a) || !eng_mul_size(g->kw, g->dw, &b) || a > lim || b > lim || g->pl > lim ||
      g->pr > lim || g->w > lim)
    return ENG_ERR_OVERFLOW;
  return ENG_OK;
}

typedef struct plane_ctx {
  int kind;
  const eng_win2d_t *g;
  size_t in_plane, out_plane, c;
  const float *x, *w, *bias;
  const eng_act_t *act;
  float *y;
} plane_ctx_t;

static void pool_range(void *p, size_t lo, size_t hi) {
  plane_ctx_t *c = (plane_ctx_t *)p;
  for (size_t q = lo; q < hi; q++) eng_active.pool2d_f32(c->kind, c->g, c->x + q * c->in_plane, c->y + q * c->out_plane);
}

eng_status_t eng_pool2d_run_f32(int kind, const eng_win2d_t *g, size_t planes, const float *x, float *y) {
  size_t in_plane, out_plane, t;
  if (kind < ENG_POOL_MAX || kind > ENG_POOL_AVG_INCLUDE_PAD) return ENG_ERR_INVALID_ARG;
  eng_status_t s = win_valid(g, &in_plane, &out_plane);
  if (s != ENG_OK) return s;
  if (!eng_mul_size(planes, in_plane, &t) || !eng_mul_size(planes, out_plane, &t)) return ENG_ERR_OVERFLOW;
  if (planes == 0 || out_plane == 0) return ENG_OK;
  if (!x || !y) return ENG_ERR_INVALID_ARG;
  plane_ctx_t c = {kind, g, in_plane, out_plane, 0, x, NULL, NULL, NULL, y};
  run_ranges(planes, out_plane * g->kh * g->kw, pool_range, &c);
  return ENG_OK;
}

static void gpool_range(void *p, size_t lo, size_t hi) {
  plane_ctx_t *c = (plane_ctx_t *)p;
  for (size_t q = lo; q < hi; q++) {
    float v = eng_active.reduce_f32(c->kind, c->in_plane, c->x + q * c->in_plane);
    c->y[q] = c->kind == ENG_REDUCE_SUM ? v / (float)c->in_plane : v;
  }
}

eng_status_t eng_global_pool_run_f32(int op, size_t planes, size_t hw, const float *x, float *y) {
  size_t t;
  if (op != ENG_REDUCE_SUM && op != ENG_REDUCE_MAX) return ENG_ERR_INVALID_ARG;
  if (!eng_mul_size(planes, hw, &t)) return ENG_ERR_OVERFLOW;
  if (planes == 0) return ENG_OK;
  if (hw == 0 || !x || !y) return ENG_ERR_INVALID_ARG; /* the mean / max of nothing */
  plane_ctx_t c = {op, NULL, hw, 1, 0, x, NULL, NULL, NULL, y};
  run_ranges(planes, hw, gpool_range, &c);
  return ENG_OK;
}

/* Depthwise units are blocks of DW_BLOCK channels of one image (the last block of an image may be shorter): the
 * channel-blocked kernels work on 4, 8 or 16 channels at a time, so a task boundary inside a block would leave them
 * partial blocks. Consecutive units of one image go to the kernel as one call. */
#define DW_BLOCK ((size_t)16)

static void dw_range(void *p, size_t lo, size_t hi) {
  plane_ctx_t *c = (plane_ctx_t *)p;
  const size_t taps = c->g->kh * c->g->kw, per_img = (c->c + DW_BLOCK - 1) / DW_BLOCK;
  for (size_t u = lo; u < hi;) {
    const size_t img = u / per_img, b = u % per_img, b_end = per_img - b < hi - u ? per_img : b + (hi - u);
    const size_t ch = b * DW_BLOCK, nc = (b_end * DW_BLOCK < c->c ? b_end * DW_BLOCK : c->c) - ch, q = img * c->c + ch;
    eng_active.dwconv2d_multi_f32(c->g, nc, c->x + q * c->in_plane, c->w + ch * taps, c->bias ? c->bias + ch : NULL,
                                  c->act, c->y + q * c->out_plane);
    u += b_end - b;
  }
}

eng_status_t eng_dwconv2d_run_f32(const eng_win2d_t *g, size_t planes, size_t c, const float *x, const float *w,
                                  const float *bias, const eng_act_t *act, float *y) {
  size_t in_plane, out_plane, t;
  if (!act_valid(act) || c == 0) return ENG_ERR_INVALID_ARG;
  eng_status_t s = win_valid(g, &in_plane, &out_plane);
  if (s != ENG_OK) return s;
  if (!eng_mul_size(planes, in_plane, &t) || !eng_mul_size(planes, out_plane, &t)) return ENG_ERR_OVERFLOW;
  if (planes == 0 || out_plane == 0) return ENG_OK;
  if (!x || !w || !y) return ENG_ERR_INVALID_ARG;
  if (planes % c) return ENG_ERR_INVALID_ARG; /* whole images only */
  plane_ctx_t ctx = {0, g, in_plane, out_plane, c, x, w, bias, act, y};
  const size_t blocks = (c + DW_BLOCK - 1) / DW_BLOCK, units = planes / c * blocks, per = c < DW_BLOCK ? c : DW_BLOCK;
  run_ranges(units, per * out_plane * g->kh * g->kw * 2, dw_range, &ctx);
  return ENG_OK;
}

typedef struct im2col_ctx {
  const eng_win2d_t *g;
  const float *x;
  float *col;
} im2col_ctx_t;

/* Rows [lo, hi) of the column matrix: row (ch, a, b) gathers tap (a, b) of channel ch for every output. */
static void im2col_range(void *p, size_t lo, size_t hi) {
  im2col_ctx_t *c = (im2col_ctx_t *)p;
  const eng_win2d_t *g = c->g;
  const size_t taps = g->kh * g->kw, ohw = g->oh * g->ow;
  const ptrdiff_t H = (ptrdiff_t)g->h, Wd = (ptrdiff_t)g->w;
  for (size_t row = lo; row < hi; row++) {
    size_t ch = row / taps, a = (row % taps) / g->kw, b = row % g->kw;
    const float *xp = c->x + ch * g->h * g->w;
    float *out = c->col + row * ohw;
    /* columns j with 0 <= j*sw - pl + b*dw < w: [jlo, jhi) */
    ptrdiff_t off = (ptrdiff_t)(b * g->dw) - (ptrdiff_t)g->pl, sw = (ptrdiff_t)g->sw;
    ptrdiff_t jlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    ptrdiff_t jhi = Wd - 1 - off < 0 ? 0 : (Wd - 1 - off) / sw + 1;
    if (jhi > (ptrdiff_t)g->ow) jhi = (ptrdiff_t)g->ow;
    if (jlo > jhi) jlo = jhi;
    for (size_t i = 0; i < g->oh; i++) {
      float *o = out + i * g->ow;
      ptrdiff_t r = (ptrdiff_t)(i * g->sh) - (ptrdiff_t)g->pt + (ptrdiff_t)(a * g->dh);
      if (r < 0 || r >= H) {
        memset(o, 0, g->ow * sizeof(float));
        continue;
      }
      const ptrdiff_t base = r * Wd + off; /* input index of output column 0 (maybe negative: never read) */
      for (ptrdiff_t j = 0; j < jlo; j++) o[j] = 0.0f;
      if (sw == 1)
        memcpy(o + jlo, xp + base + jlo, (size_t)(jhi - jlo) * sizeof(float));
      else
        for (ptrdiff_t j = jlo; j < jhi; j++) o[j] = xp[base + j * sw];
      for (ptrdiff_t j = jhi; j < (ptrdiff_t)g->ow; j++) o[j] = 0.0f;
    }
  }
}

eng_status_t eng_im2col_run_f32(const eng_win2d_t *g, size_t c, const float *x, float *col) {
  size_t in_plane, out_plane, rows, t;
  eng_status_t s = win_valid(g, &in_plane, &out_plane);
  if (s != ENG_OK) return s;
  if (!eng_mul_size(c, g->kh * g->kw, &rows) || !eng_mul_size(rows, out_plane, &t) || !eng_mul_size(c, in_plane, &t))
    return ENG_ERR_OVERFLOW;
  if (rows == 0 || out_plane == 0) return ENG_OK;
  if (!x || !col) return ENG_ERR_INVALID_ARG;
  im2col_ctx_t ctx = {g, x, col};
  run_ranges(rows, out_plane, im2col_range, &ctx);
  return ENG_OK;
}

#define _POSIX_C_SOURCE 200809L
/* conv_driver.c: ISA-neutral driver of the implicit-GEMM convolution (API in eng_conv.h). Compiled with
 * baseline flags; the SIMD work is the table's conv_f32 micro-kernel (conv_<isa>.c, scalar twin conv_scalar.c)
 * plus its binary/bias_act kernels in the epilogue.
 *
 * The layout trick. Pad the input and split it into stride phases: phase (u, v) holds the padded pixels whose
 * row is u mod sh and column v mod sw, as an image of Hq x Wq. Output pixel (i, j) reads tap (a, b) of
 * channel ch at padded position (i*sh + a*dh, j*sw + b*dw), which is pixel (i + (a*dh)/sh, j + (b*dw)/sw) of
 * phase ((a*dh) % sh, (b*dw) % sw). Number the output pixels "wide", q = i*Wq + j, with Wq - ow garbage
 * columns per row: then tap p = (ch, a, b) of pixel q sits at  off[p] + q  in the phase buffer, the same
 * offset for every pixel. So the GEMM  Y (M x pixels) = W (M x taps) * B (taps x pixels)  has a B whose row p
 * is the phase buffer shifted by off[p]: the micro-kernel loads NR consecutive pixels of it directly; nothing
 * is unrolled (no im2col) and nothing is packed per call but the input's one padded copy. A 1x1 stride-1
 * unpadded convolution whose pixel count is a multiple of NR reads the input itself, with no copy at all.
 *
 * Loop nest per image and group: tasks own a block of output channels x wide columns; each goes over the taps
 * in blocks of kc (the MR x kc weight panel in L1, the task's M x kc weights in L2), over column sub-blocks whose
 * kc image rows fit L1 (L1_IMAGE_FLOATS), over its channel panels, and over the sub-block's column tiles. So one
 * panel writes its MR output rows in sequence. (Tile-outer order writes all M rows at once: their 64-byte pieces,
 * a plane apart, crowd a few L1 sets and evict the image rows; a 1x1 16->96 layer at 112x112 ran 2.3x slower
 * that way.) The tile sums
 * accumulate in the wide output; when the taps are done the task writes its block of y: drops the garbage
 * columns, adds the residual and the bias, applies the activation. When Wq == ow the wide output is y. So it is
 * when ow is a multiple of NR (the 112-wide stems): no tile straddles an output row, so the tiles number the output
 * pixels instead and read phase column q + (q / ow) * (Wq - ow) ("remap"); the copy out of a wide buffer had cost
 * a third of a 3-channel stem's time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_conv.h"
#include "eng/eng_runtime.h"
#include "eng/eng_workspace.h"

/* Weight floats (M x kc of the task) kept in L2 for one tap block. */
#define L2_WEIGHT_FLOATS ((size_t)64 << 10)
/* Output sums (rows x columns of a task's chunk) kept in L2 across the tap blocks. */
#define C_CHUNK_FLOATS ((size_t)32 << 10)
/* Image floats (kc taps x columns) kept in L1 while every panel of the block passes over them. */
#define L1_IMAGE_FLOATS ((size_t)4 << 10)

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* ---- the calling thread's workspace (tap offsets, phases, wide output), kept between calls ----
 * Allocating and freeing megabytes per call lets malloc return the pages to the system and fault them in again
 * on the next call, which cost a 3-channel stem convolution 4x its compute. Up to WS_KEEP_BYTES stay with the
 * thread (slot ENG_WS_CONV of eng_workspace.h, freed when it exits); a larger request is allocated for the call
 * alone. That limit stays here rather than in the shared helper because only this driver's request grows with
 * the input (a whole padded image plus a wide output): the GEMM packs B in slabs of at most 16 MiB and the
 * Winograd blocks are sized for L2, so their kept buffers are bounded by blocking, not by the caller's tensors. */
#define WS_KEEP_BYTES ((size_t)64 << 20)

/* bytes of 64-byte aligned scratch: the thread's kept buffer, or (*owned set) one to free after the call */
static void *ws_get(size_t bytes, void **owned) {
  *owned = NULL;
  if (bytes > WS_KEEP_BYTES) return *owned = eng_ws_alloc_once(bytes);
  return eng_thread_ws(ENG_WS_CONV, bytes);
}

typedef struct geo {
  size_t cg, mg, taps;          /* channels per group in / out, taps per output (cg * kh * kw) */
  size_t hq, wq, plane;         /* phase image size, plane = hq * wq */
  size_t nwide;                 /* output sums per channel: oh * wout */
  size_t wout;                  /* sums per output row: wq (the wide layout), or ow when remapped */
  int remap;                    /* ow % nr == 0 and wq > ow: tiles never straddle an output row, so the sums go
                                   straight to y (no wide buffer, no copy); tile column q reads phase column
                                   in_col(q) = q + (q / ow) * (wq - ow) */
  size_t ph_used[64];           /* phase index (u*sw + v) -> slot in the buffer, or SIZE_MAX */
  size_t n_ph, ph_stride;       /* phases kept, floats per phase (C planes + slack) */
  int direct;                   /* read x itself (1x1, stride 1, no pads, pixel count % NR == 0) */
  size_t panels;                /* MR-row weight panels per group */
} geo_t;

static eng_status_t check_geometry(const eng_kernels_t *kt, const eng_conv2d_t *g) {
  if (!kt || !g || !kt->conv_f32 || !kt->conv_f32->ukr) return ENG_ERR_INVALID_ARG;
  if (g->group == 0 || g->c % g->group || g->m % g->group) return ENG_ERR_INVALID_ARG;
  if (!g->kh || !g->kw || !g->sh || !g->sw || !g->dh || !g->dw) return ENG_ERR_INVALID_ARG;
  size_t t;
  /* every product below stays far from overflow when each factor and the sums are below 2^31 */
  const size_t lim = (size_t)1 << 31;
  const size_t v[] = {g->n, g->c, g->h, g->w, g->m, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->pb, g->pr};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (v[i] >= lim) return ENG_ERR_OVERFLOW;
  size_t span_h = (g->kh - 1) * g->dh + 1, span_w = (g->kw - 1) * g->dw + 1;
  size_t ph = g->h + g->pt + g->pb, pw = g->w + g->pl + g->pr;
  size_t oh = ph >= span_h ? (ph - span_h) / g->sh + 1 : 0, ow = pw >= span_w ? (pw - span_w) / g->sw + 1 : 0;
  if (g->oh != oh || g->ow != ow) return ENG_ERR_INVALID_ARG;
  if (!eng_mul_size(g->c / g->group * g->kh, g->kw, &t) || !eng_mul_size(t, g->m, &t)) return ENG_ERR_OVERFLOW;
  return ENG_OK;
}

static eng_status_t make_geo(const eng_kernels_t *kt, const eng_conv2d_t *g, geo_t *o) {
  const eng_conv_f32_impl_t *im = kt->conv_f32;
  memset(o, 0, sizeof *o);
  o->cg = g->c / g->group;
  o->mg = g->m / g->group;
  o->taps = o->cg * g->kh * g->kw;
  o->panels = (o->mg + im->mr - 1) / im->mr;
  o->hq = g->oh + (g->kh - 1) * g->dh / g->sh;
  o->wq = g->ow + (g->kw - 1) * g->dw / g->sw;
  o->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !g->pt && !g->pl && !g->pb && !g->pr &&
              (g->h * g->w) % im->nr == 0;
  if (o->direct) { /* then hq == h, wq == w */
    o->plane = g->h * g->w;
    o->nwide = o->plane;
    o->wout = o->wq;
    o->n_ph = 1;
    o->ph_stride = 0;
    o->ph_used[0] = 0;
    return ENG_OK;
  }
  if (g->sh * g->sw > 64) return ENG_ERR_UNSUPPORTED; /* strides above 8x8: the caller falls back */
  for (size_t i = 0; i < 64; i++) o->ph_used[i] = SIZE_MAX;
  for (size_t a = 0; a < g->kh; a++)
    for (size_t b = 0; b < g->kw; b++) {
      size_t idx = (a * g->dh % g->sh) * g->sw + b * g->dw % g->sw;
      if (o->ph_used[idx] == SIZE_MAX) o->ph_used[idx] = o->n_ph++;
    }
  /* phase buffer: C planes of hq x wq, then slack: tap offsets overrun the last plane by up to (kw-1)*dw/sw < wq
   * floats at the last column tile, and a partial tile reads nr floats past the last wide pixel */
  size_t cplanes;
  if (!eng_mul_size(o->hq, o->wq, &o->plane) || !eng_mul_size(o->plane, g->c, &cplanes)) return ENG_ERR_OVERFLOW;
  o->nwide = g->oh * o->wq;
  o->wout = o->wq;
  if (o->wq != g->ow && g->ow % kt->conv_f32->nr == 0) { /* the stems: ow = 112 */
    o->remap = 1;
    o->nwide = g->oh * g->ow;
    o->wout = g->ow;
  }
  o->ph_stride = round_up(cplanes + o->wq + kt->conv_f32->nr, 16);
  size_t t;
  if (!eng_mul_size(o->ph_stride, o->n_ph, &t)) return ENG_ERR_OVERFLOW;
  return ENG_OK;
}

size_t eng_conv2d_packed_size(const eng_kernels_t *kt, const eng_conv2d_t *g) {
  if (check_geometry(kt, g) != ENG_OK) return 0;
  size_t mg = g->m / g->group, taps = g->c / g->group * g->kh * g->kw, mr = kt->conv_f32->mr, t;
  size_t rows = (mg + mr - 1) / mr * mr;
  if (!eng_mul_size(rows, taps, &t) || !eng_mul_size(t, g->group, &t)) return 0;
  return t;
}

/* Group gi's weights as panels of mr output channels, tap-major: wp[((gi * panels + q) * taps + p) * mr + i]
 * = w[gi*mg + q*mr + i][p], zero for channels past mg. */
eng_status_t eng_conv2d_pack_f32(const eng_kernels_t *kt, const eng_conv2d_t *g, const float *w, float *wp) {
  eng_status_t s = check_geometry(kt, g);
  if (s != ENG_OK) return s;
  if (!w || !wp) return ENG_ERR_INVALID_ARG;
  const size_t mr = kt->conv_f32->mr, mg = g->m / g->group, taps = g->c / g->group * g->kh * g->kw;
  const size_t panels = (mg + mr - 1) / mr;
  for (size_t gi = 0; gi < g->group; gi++)
    for (size_t q = 0; q < panels; q++) {
      float *dst = wp + (gi * panels + q) * taps * mr;
      for (size_t i = 0; i < mr; i++) {
        size_t row = q * mr + i;
        const float *src = row < mg ? w + (gi * mg + row) * taps : NULL;
        for (size_t p = 0; p < taps; p++) dst[p * mr + i] = src ? src[p] : 0.0f;
      }
    }
  return ENG_OK;
}

/* ---- phase buffers ---- */
typedef struct phase_ctx {
  const eng_conv2d_t *g;
  const geo_t *o;
  const float *x; /* one image */
  float *buf;
} phase_ctx_t;

/* Task t fills channel t % C of phase t / C (tasks only for the phases in use), and its share of slack. */
static void phase_task(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  const phase_ctx_t *c = (const phase_ctx_t *)ctx;
  const eng_conv2d_t *g = c->g;
  const geo_t *o = c->o;
  size_t slot = t / g->c, ch = t % g->c, u = SIZE_MAX, v = 0;
  for (size_t idx = 0; idx < g->sh * g->sw; idx++)
    if (o->ph_used[idx] == slot) u = idx / g->sw, v = idx % g->sw;
  float *dst = c->buf + slot * o->ph_stride + ch * o->plane;
  const float *src = c->x + ch * g->h * g->w;
  /* phase pixel (i, j) = x[i*sh + u - pt][j*sw + v - pl]; columns j in [j0, j1) land inside x */
  size_t j0 = 0, j1 = 0;
  if (v + o->wq * g->sw > g->pl) { /* some column reaches x */
    j0 = g->pl > v ? (g->pl - v + g->sw - 1) / g->sw : 0;
    size_t lim = g->pl + g->w; /* padded columns < lim are inside x */
    j1 = lim > v ? (lim - v + g->sw - 1) / g->sw : 0;
    if (j1 > o->wq) j1 = o->wq;
    if (j0 > j1) j0 = j1;
  }
  for (size_t i = 0; i < o->hq; i++) {
    float *d = dst + i * o->wq;
    size_t r = i * g->sh + u;
    if (r < g->pt || r - g->pt >= g->h || j0 == j1) {
      memset(d, 0, o->wq * sizeof(float));
      continue;
    }
    const float *s = src + (r - g->pt) * g->w;
    memset(d, 0, j0 * sizeof(float));
    if (g->sw == 1) {
      memcpy(d + j0, s + (j0 + v - g->pl), (j1 - j0) * sizeof(float));
    } else if (g->sw == 2) { /* a constant stride the compiler vectorizes (even-lane shuffles): the stems */
      for (size_t j = j0; j < j1; j++) d[j] = s[2 * j + v - g->pl];
    } else {
      for (size_t j = j0; j < j1; j++) d[j] = s[j * g->sw + v - g->pl];
    }
    memset(d + j1, 0, (o->wq - j1) * sizeof(float));
  }
  if (ch == g->c - 1) /* the slack after the last plane */
    memset(c->buf + slot * o->ph_stride + g->c * o->plane, 0, (o->ph_stride - g->c * o->plane) * sizeof(float));
}

/* ---- the product ---- */
typedef struct conv_ctx {
  const eng_kernels_t *kt;
  const eng_conv2d_t *g;
  const geo_t *o;
  const float *xb;      /* phase buffer (or x) of this image, at this group's first channel */
  const int64_t *off;   /* taps offsets (relative to xb) */
  const float *wp;      /* this group's packed weights */
  const float *bias;    /* this group's bias, or NULL */
  const float *z;       /* this group's residual block of this image (mg x oh x ow), or NULL */
  const eng_act_t *act;
  float *cw;            /* wide output of this group (mg x nwide), or y when wout == ow */
  float *y;             /* this group's output block (mg x oh x ow) */
  size_t tm, tn;        /* task grid: tm panel blocks x tn column blocks */
  size_t pb, cb;        /* panels per block, columns per block (multiple of nr) */
  size_t kc, mcp;       /* taps per block, weight panels per block */
} conv_ctx_t;

static inline size_t in_col(const geo_t *o, size_t q) { return o->remap ? q + q / o->wout * (o->wq - o->wout) : q; }

static int has_epilogue(const conv_ctx_t *c) { return c->bias || c->act->kind != ENG_ACT_NONE; }

/* The micro-kernel applies bias and activation itself as it stores the last tap block when the ISA has the fused
 * variant and no residual must come before the activation. */
static int fused_epilogue(const conv_ctx_t *c) { return has_epilogue(c) && !c->z && c->kt->conv_f32->ukr_epi; }

/* Rows [i0, i1) x wide columns [q0, q1) of the finished sums: y = act(cw + z + bias) on the real columns (only
 * the copy out of the wide layout when the micro-kernel already applied bias and activation). */
static void epilogue(const conv_ctx_t *c, size_t i0, size_t i1, size_t q0, size_t q1) {
  const eng_conv2d_t *g = c->g;
  const geo_t *o = c->o;
  const int epi = has_epilogue(c) && !fused_epilogue(c);
  if (!epi && !c->z && c->cw == c->y) return; /* the sums are the output already */
  const size_t ohw = g->oh * g->ow;
  for (size_t i = i0; i < i1; i++) {
    const float *src = c->cw + i * o->nwide;
    float *dst = c->y + i * ohw;
    for (size_t r = q0 / o->wout; r * o->wout < q1 && r < g->oh; r++) {
      size_t a = r * o->wout, j0 = q0 > a ? q0 - a : 0, j1 = q1 - a < g->ow ? q1 - a : g->ow;
      if (j0 >= j1) continue;
      const float *s = src + a + j0;
      float *d = dst + r * g->ow + j0;
      if (c->z)
        c->kt->binary_f32(ENG_BIN_ADD, j1 - j0, s, c->z + i * ohw + r * g->ow + j0, d);
      else if (s != d)
        memmove(d, s, (j1 - j0) * sizeof(float));
      if (epi) c->kt->bias_act_f32(j1 - j0, d, NULL, c->bias ? c->bias[i] : 0.0f, c->act);
    }
  }
}

static void conv_task(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  const conv_ctx_t *c = (const conv_ctx_t *)ctx;
  const eng_conv_f32_impl_t *im = c->kt->conv_f32;
  const geo_t *o = c->o;
  const size_t mr = im->mr, nr = im->nr, taps = o->taps;
  size_t p0 = (t / c->tn) * c->pb, q0 = (t % c->tn) * c->cb;
  if (p0 >= o->panels || q0 >= o->nwide) return;
  size_t p1 = ENG_MIN(o->panels, p0 + c->pb), q1 = ENG_MIN(o->nwide, q0 + c->cb);
  /* column chunks whose sums (rows x chunk) stay in L2 while every tap block adds to them */
  const size_t rows = (p1 - p0) * mr;
  const size_t chunk = ENG_MAX(4 * nr, C_CHUNK_FLOATS / rows / nr * nr);
  const int fused = fused_epilogue(c);
  for (size_t qc = q0; qc < q1; qc += chunk) {
    const size_t qe = ENG_MIN(q1, qc + chunk);
    for (size_t pb0 = p0; pb0 < p1; pb0 += c->mcp) { /* panel blocks: their weights (mcp*mr x kc) stay in L2 */
      const size_t pb1 = ENG_MIN(p1, pb0 + c->mcp);
      for (size_t k0 = 0; k0 < taps; k0 += c->kc) {
        size_t kc = ENG_MIN(c->kc, taps - k0);
        const int fuse = fused && k0 + kc >= taps;
        const size_t sub = ENG_MAX(nr, L1_IMAGE_FLOATS / kc / nr * nr);
        for (size_t qs = qc; qs < qe; qs += sub) {
          const size_t qse = ENG_MIN(qe, qs + sub);
          for (size_t pi = pb0; pi < pb1; pi++) {
            size_t row = pi * mr, mb = ENG_MIN(mr, o->mg - row);
            const float *wpan = c->wp + (pi * taps + k0) * mr;
            eng_gemm_epi_t e = {c->bias ? c->bias + row : NULL, NULL, c->act};
            for (size_t q = qs; q < qse; q += nr) {
              size_t nb = ENG_MIN(nr, qse - q);
              float *cp = c->cw + row * o->nwide + q;
              if (fuse)
                im->ukr_epi(kc, wpan, c->xb + in_col(o, q), c->off + k0, cp, o->nwide, mb, nb, k0 > 0, &e);
              else
                im->ukr(kc, wpan, c->xb + in_col(o, q), c->off + k0, cp, o->nwide, mb, nb, k0 > 0);
            }
          }
        }
      }
    }
    epilogue(c, p0 * mr, ENG_MIN(o->mg, p1 * mr), qc, qe);
  }
}

eng_status_t eng_conv2d_run_f32(const eng_kernels_t *kt, const eng_conv2d_t *g, const float *x, const float *wp,
                                const float *bias, const float *z, const eng_act_t *act, float *y, int parallel) {
  eng_status_t s = check_geometry(kt, g);
  if (s != ENG_OK) return s;
  if (!act || act->kind < 0 || act->kind >= ENG_ACT_COUNT) return ENG_ERR_INVALID_ARG;
  if (g->n == 0 || g->m == 0 || g->oh == 0 || g->ow == 0) return ENG_OK;
  if (!x || !wp || !y) return ENG_ERR_INVALID_ARG;
  geo_t o;
  if ((s = make_geo(kt, g, &o)) != ENG_OK) return s;
  const eng_conv_f32_impl_t *im = kt->conv_f32;
  const size_t ohw = g->oh * g->ow, in_img = g->c * g->h * g->w;
  size_t t;
  if (!eng_mul_size(ohw, g->m, &t) || !eng_mul_size(t, g->n, &t) || !eng_mul_size(in_img, g->n, &t) ||
      !eng_mul_size(o.nwide, g->m, &t))
    return ENG_ERR_OVERFLOW;

  /* buffers: tap offsets, phases (unless direct), the wide output (unless wq == ow) */
  const int wide = o.wout != g->ow;
  const size_t off_bytes = round_up(o.taps * sizeof(int64_t), 64);
  const size_t buf_bytes = o.direct ? 0 : round_up(o.ph_stride * o.n_ph * sizeof(float), 64);
  const size_t cw_bytes = wide ? o.nwide * g->m * sizeof(float) : 0;
  if (off_bytes > SIZE_MAX - buf_bytes - cw_bytes) return ENG_ERR_OVERFLOW;
  void *owned;
  char *ws = (char *)ws_get(off_bytes + buf_bytes + cw_bytes, &owned);
  if (!ws) return ENG_ERR_NOMEM;
  int64_t *off = (int64_t *)ws;
  float *buf = o.direct ? NULL : (float *)(ws + off_bytes);
  float *cw = wide ? (float *)(ws + off_bytes + buf_bytes) : NULL;
  for (size_t ch = 0, p = 0; ch < o.cg; ch++)
    for (size_t a = 0; a < g->kh; a++)
      for (size_t b = 0; b < g->kw; b++, p++) {
        size_t slot = o.direct ? 0 : o.ph_used[(a * g->dh % g->sh) * g->sw + b * g->dw % g->sw];
        off[p] = (int64_t)(slot * o.ph_stride + ch * o.plane + (a * g->dh / g->sh) * o.wq + b * g->dw / g->sw);
      }

  const size_t threads = parallel ? (size_t)eng_get_num_threads() : 1;
  const size_t col_tiles = (o.nwide + im->nr - 1) / im->nr;
  conv_ctx_t c = {kt, g, &o, NULL, off, NULL, NULL, NULL, act, NULL, NULL, 1, 1, o.panels, col_tiles * im->nr, 0, 1};
  /* work per group is mg * nwide * taps; below about 2^20 multiply-adds the pool costs more than it saves */
  const int par = threads > 1 && o.mg * o.nwide * o.taps >= ((size_t)1 << 20);
  if (par) { /* ENG_TASKS_PER_THREAD: column blocks first (each reuses all the weights), then panels */
    size_t target = threads * ENG_TASKS_PER_THREAD;
    c.tn = ENG_MIN(col_tiles, target);
    if (c.tn < target) c.tm = ENG_MIN(o.panels, (target + c.tn - 1) / c.tn);
    c.cb = (col_tiles + c.tn - 1) / c.tn * im->nr;
    c.tn = (o.nwide + c.cb - 1) / c.cb;
    c.pb = (o.panels + c.tm - 1) / c.tm;
    c.tm = (o.panels + c.pb - 1) / c.pb;
  }
  /* tap blocks of the kernel's kc (few tap blocks: each re-reads and re-writes the sums), and panel blocks whose
   * weights (mcp panels x kc taps) fit L2_WEIGHT_FLOATS */
  c.kc = ENG_MIN(im->kc, o.taps);
  c.mcp = ENG_MAX((size_t)1, L2_WEIGHT_FLOATS / (c.kc * im->mr));

  for (size_t n = 0; n < g->n; n++) {
    const float *xn = x + n * in_img;
    if (!o.direct) {
      phase_ctx_t pc = {g, &o, xn, buf};
      size_t tasks = o.n_ph * g->c;
      if (par && tasks > 1)
        eng_parallel_for(tasks, phase_task, &pc);
      else
        for (size_t i = 0; i < tasks; i++) phase_task(&pc, i, tasks);
    }
    for (size_t gi = 0; gi < g->group; gi++) {
      const size_t ch0 = gi * o.cg, m0 = gi * o.mg;
      c.xb = o.direct ? xn + ch0 * o.plane : buf + ch0 * o.plane;
      c.wp = wp + gi * o.panels * im->mr * o.taps;
      c.bias = bias ? bias + m0 : NULL;
      c.z = z ? z + n * g->m * ohw + m0 * ohw : NULL;
      c.y = y + n * g->m * ohw + m0 * ohw;
      c.cw = wide ? cw + m0 * o.nwide : c.y;
      size_t tasks = c.tm * c.tn;
      if (par && tasks > 1)
        eng_parallel_for(tasks, conv_task, &c);
      else
        for (size_t i = 0; i < tasks; i++) conv_task(&c, i, tasks);
    }
  }
  free(owned);
  return ENG_OK;
}

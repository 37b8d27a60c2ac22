#define _POSIX_C_SOURCE 200809L
/* wino_driver.c: Winograd F(4x4, 3x3) convolution driver (API and math in eng/eng_wino.h).
 * ISA-neutral: core library, baseline flags, no intrinsics. The transforms are plain C written over 8 lanes (8 tiles
 * of one tile row side by side) so the compiler vectorizes them at the baseline width; the 36 channel reductions are
 * GEMMs on the active table's micro-kernels (eng_gemm_f32_with), and bias + activation go through the active
 * table's bias_act_f32 slot, so each ISA level runs the same algorithm on its own kernels. No scalar twin is
 * needed: the only ISA-specific code called is the GEMM and bias_act kernels, which have theirs.
 *
 * Blocking: an image's tiles (ceil(oh/4) x ceil(ow/4), row-major) are cut into blocks of TB tiles so that a
 * block's transformed input V (36 x ic x TB) and product M (36 x oc x TB) stay in L2 (WINO_L2_BYTES) between the
 * input transform, the GEMMs and the output transform, instead of materializing the whole image's V.
 * Threading: when the blocks share out evenly among the threads, each block is one task (transform, 36 serial
 * GEMMs, output transform, in a thread-local workspace). With fewer blocks than threads (small images, many
 * channels), or a count that divides badly (3 blocks on 2 threads), blocks run in turn and each step is split
 * instead: the input transform over input channels, the 36 GEMMs over positions (eng_gemm_batch_f32), the output
 * transform over output channels. Both modes compute every output with the same operations in the same order, so
 * results do not depend on the thread count.
 * Profile (Zen 3, AVX2, 1 thread, 64 channels at 56x56): GEMM micro-kernels ~30%, input transform ~15%, output
 * transform ~13%, strip copies ~9%, bias + activation ~4%; at 256 channels the GEMMs are ~50%. */
#include <stdlib.h>
#include <string.h>

#include "eng/eng_dispatch.h"
#include "eng/eng_runtime.h"
#include "eng/eng_wino.h"
#include "eng/eng_workspace.h"

#define P ENG_WINO_POS
#define L 8 /* lanes of the transforms */
/* Per-block budget for V + M; about 3/4 of Zen 3's 512 KiB L2 (U's row panels and the packed V share the rest). */
#define WINO_L2_BYTES ((size_t)384 * 1024)
#define TB_MIN ((size_t)16) /* one AVX2 register tile (NR = 16) wide; narrower GEMMs waste the micro-kernel */
#define TB_MAX ((size_t)256) /* the GEMM driver reads U in place (no packing) up to 256 columns */
/* Position p's slice of V and M starts p * (channels * TB + POS_PAD) floats in: without the pad the 36 slices are
 * often exactly 4 KiB apart (64 channels x 16 tiles), so the transforms' 36 store/load streams would hit one L1
 * set and alias in the store buffer. */
#define POS_PAD ((size_t)16)

/* ---------------------------------------------------------------- thread-local workspace */
/* A 64-byte aligned buffer of at least n floats owned by the calling thread (slot ENG_WS_WINO of
 * eng_workspace.h, kept for the next call), or NULL. It stays in use across the block's GEMMs, which take their
 * own slots. */
static float *ws_get(size_t n) {
  size_t bytes;
  if (!eng_mul_size(n, sizeof(float), &bytes)) return NULL;
  return (float *)eng_thread_ws(ENG_WS_WINO, bytes);
}

/* ---------------------------------------------------------------- weight transform */

eng_status_t eng_wino_weights_f32(size_t oc, size_t ic, const float *w, float *u) {
  static const double G[6][3] = {{1.0 / 4, 0, 0},
                                 {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                 {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                 {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                 {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                 {0, 0, 1}};
  size_t pairs, tot;
  if (!eng_mul_size(oc, ic, &pairs) || !eng_mul_size(pairs, P, &tot)) return ENG_ERR_OVERFLOW;
  if (pairs == 0) return ENG_OK;
  if (!w || !u) return ENG_ERR_INVALID_ARG;
  for (size_t o = 0; o < oc; o++)
    for (size_t c = 0; c < ic; c++) {
      const float *g = w + (o * ic + c) * 9;
      double t[6][3], r[6][6];
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) r[i][j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
      for (int p = 0; p < P; p++) u[((size_t)p * oc + o) * ic + c] = (float)r[p / 6][p % 6];
    }
  return ENG_OK;
}

/* ---------------------------------------------------------------- 1-D transforms over L lanes */

/* r = B^T z for 6 vectors of L lanes: z_k at z + k*zs, r_i at r + i*rs. */
static inline void bt_l(const float *ENG_RESTRICT z, size_t zs, float *ENG_RESTRICT r, size_t rs) {
  for (int l = 0; l < L; l++) {
    float z0 = z[l], z1 = z[zs + l], z2 = z[2 * zs + l], z3 = z[3 * zs + l], z4 = z[4 * zs + l], z5 = z[5 * zs + l];
    r[l] = 4.0f * z0 - 5.0f * z2 + z4;
    r[rs + l] = -4.0f * (z1 + z2) + (z3 + z4);
    r[2 * rs + l] = 4.0f * (z1 - z2) + (z4 - z3);
    r[3 * rs + l] = 2.0f * (z3 - z1) + (z4 - z2);
    r[4 * rs + l] = 2.0f * (z1 - z3) + (z4 - z2);
    r[5 * rs + l] = 4.0f * z1 - 5.0f * z3 + z5;
  }
}

/* r = A^T m for 6 vectors of L lanes in, 4 out. */
static inline void at_l(const float *ENG_RESTRICT m, size_t ms, float *ENG_RESTRICT r, size_t rs) {
  for (int l = 0; l < L; l++) {
    float m0 = m[l], m1 = m[ms + l], m2 = m[2 * ms + l], m3 = m[3 * ms + l], m4 = m[4 * ms + l], m5 = m[5 * ms + l];
    float a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
    r[l] = m0 + a + c;
    r[rs + l] = b + 2.0f * d;
    r[2 * rs + l] = a + 4.0f * c;
    r[3 * rs + l] = b + 8.0f * d + m5;
  }
}

/* ---------------------------------------------------------------- geometry */

typedef struct wino_job {
  size_t ic, oc, h, w, oh, ow, th, tw, tiles, tb, nblocks;
  size_t ld; /* the widest block (the last one may take up to TB_MIN - 1 extra tiles): V/M row length */
  size_t vs, ms; /* floats between positions in V and in M */
  ptrdiff_t pt, pl;
  const float *x, *u, *bias;
  const float *z; /* residual of this image (oc x oh x ow), or NULL */
  const eng_act_t *act;
  float *y;
  int epi; /* bias or activation to apply */
  /* mode B (blocks in turn, steps split): the current block and its buffers */
  size_t t0, nt;
  float *v, *m;
  volatile int status;
} wino_job_t;

/* Widest strip: a block has at most TB_MAX + TB_MIN - 1 tiles; groups of L read up to L - 1 tiles past a segment. */
#define STRIP_W (4 * (TB_MAX + TB_MIN + L) + 4)

/* Input transform of tiles [t0, t0 + nt) of channels [c0, c1) into v[p*vs + c*ld + j] (j = tile - t0).
 * The block's tiles are walked by tile-row segments. For each segment the 6 input rows it reads are copied once into
 * a zero-padded strip (the padding and the right/bottom tile overhang become zeros there), so every tile is read
 * the same way: lane l of a group of L tiles takes column k of strip row a at 4 l + k, a stride-4 deinterleave the
 * compiler vectorizes. */
static void input_transform(const wino_job_t *jb, size_t t0, size_t nt, size_t c0, size_t c1, float *v, size_t ld) {
  const size_t H = jb->h, W = jb->w, tw = jb->tw;
  float strip[6 * STRIP_W];
  float d[P * L], t[P * L], r[P * L];
  for (size_t c = c0; c < c1; c++) {
    const float *xc = jb->x + c * H * W;
    for (size_t tile = t0; tile < t0 + nt;) {
      size_t ty = tile / tw, txa = tile % tw, txb = ENG_MIN(tw, txa + (t0 + nt - tile)), ns = txb - txa;
      size_t ngroups = (ns + L - 1) / L, sw = 4 * ngroups * L + 4; /* <= STRIP_W */
      ptrdiff_t r0 = (ptrdiff_t)(4 * ty) - jb->pt, q0 = (ptrdiff_t)(4 * txa) - jb->pl;
      /* input columns [q0, q0 + sw) of rows r0 .. r0 + 5; inside the image: [qa, qb) */
      ptrdiff_t qa = q0 < 0 ? 0 : q0, qb = q0 + (ptrdiff_t)sw < (ptrdiff_t)W ? q0 + (ptrdiff_t)sw : (ptrdiff_t)W;
      for (int a = 0; a < 6; a++) {
        float *srow = strip + a * STRIP_W;
        ptrdiff_t rr = r0 + a;
        if (rr < 0 || rr >= (ptrdiff_t)H || qa >= qb) {
          memset(srow, 0, sw * sizeof(float));
          continue;
        }
        size_t lead = (size_t)(qa - q0), mid = (size_t)(qb - qa);
        if (lead) memset(srow, 0, lead * sizeof(float));
        memcpy(srow + lead, xc + (size_t)rr * W + (size_t)qa, mid * sizeof(float));
        if (lead + mid < sw) memset(srow + lead + mid, 0, (sw - lead - mid) * sizeof(float));
      }
      for (size_t gi = 0; gi < ngroups; gi++) {
        size_t nl = ENG_MIN((size_t)L, ns - gi * L);
        for (int a = 0; a < 6; a++) {
          const float *sr = strip + a * STRIP_W + 4 * L * gi;
          for (int k = 0; k < 6; k++)
            for (int l = 0; l < L; l++) d[(a * 6 + k) * L + l] = sr[4 * l + k];
        }
        for (int b = 0; b < 6; b++) bt_l(d + b * L, 6 * L, t + b * L, 6 * L); /* columns: t = B^T d */
        for (int a = 0; a < 6; a++) bt_l(t + a * 6 * L, L, r + a * 6 * L, L); /* rows: r = t B */
        float *vc = v + c * ld + (tile - t0) + gi * L;
        for (int p = 0; p < P; p++) {
          float *dst = vc + (size_t)p * jb->vs;
          const float *src = r + p * L;
          if (nl == L)
            for (int l = 0; l < L; l++) dst[l] = src[l];
          else
            for (size_t l = 0; l < nl; l++) dst[l] = src[l];
        }
      }
      tile += ns;
    }
  }
}

/* Output transform of tiles [t0, t0 + nt) for output channels [o0, o1) from m[p*ms + o*ld + j], then bias and
 * activation. By tile-row segments, like the input: groups of L tiles are transformed side by side, interleaved into
 * a strip of 4 output rows (tile l's column b at 4 l + b), and each strip row is copied out cropped to the image and
 * gets its bias + activation while it is in L1. */
static const eng_act_t no_act = {ENG_ACT_NONE, 0.0f, 0.0f};

static void output_transform(const wino_job_t *jb, size_t t0, size_t nt, size_t o0, size_t o1, const float *m,
                             size_t ld) {
  const size_t OH = jb->oh, OW = jb->ow, tw = jb->tw;
  float s[P * L], t[24 * L], r[16 * L], strip[4 * STRIP_W];
  for (size_t o = o0; o < o1; o++) {
    float *yo = jb->y + o * OH * OW;
    const float *mo = m + o * ld;
    float bs = jb->bias ? jb->bias[o] : 0.0f;
    for (size_t tile = t0; tile < t0 + nt;) {
      size_t ty = tile / tw, txa = tile % tw, txb = ENG_MIN(tw, txa + (t0 + nt - tile)), ns = txb - txa;
      size_t ngroups = (ns + L - 1) / L;
      for (size_t gi = 0; gi < ngroups; gi++) {
        size_t nl = ENG_MIN((size_t)L, ns - gi * L);
        const float *mj = mo + (tile - t0) + gi * L;
        for (int p = 0; p < P; p++) {
          const float *src = mj + (size_t)p * jb->ms;
          if (nl == L)
            for (int l = 0; l < L; l++) s[p * L + l] = src[l];
          else
            for (int l = 0; l < L; l++) s[p * L + l] = (size_t)l < nl ? src[l] : 0.0f;
        }
        for (int b = 0; b < 6; b++) at_l(s + b * L, 6 * L, t + b * L, 6 * L); /* columns: t (4x6) = A^T s */
        for (int a = 0; a < 4; a++) at_l(t + a * 6 * L, L, r + a * 4 * L, L); /* rows: r (4x4) = t A */
        for (int a = 0; a < 4; a++) {
          float *sr = strip + a * STRIP_W + 4 * L * gi;
          for (int l = 0; l < L; l++)
            for (int b = 0; b < 4; b++) sr[4 * l + b] = r[(a * 4 + b) * L + l];
        }
      }
      size_t col0 = 4 * txa, ncols = ENG_MIN(4 * ns, OW - col0), rows = ENG_MIN((size_t)4, OH - 4 * ty);
      for (size_t a = 0; a < rows; a++) {
        float *dst = yo + (4 * ty + a) * OW + col0;
        memcpy(dst, strip + a * STRIP_W, ncols * sizeof(float));
        if (jb->z) { /* act((sum + bias) + z), the order of the unfused Conv, Add, activation */
          if (jb->bias) eng_active.bias_act_f32(ncols, dst, NULL, bs, &no_act);
          eng_active.binary_f32(ENG_BIN_ADD, ncols, dst, jb->z + o * OH * OW + (4 * ty + a) * OW + col0, dst);
          if (jb->act->kind != ENG_ACT_NONE) eng_active.act_f32(ncols, dst, dst, jb->act);
        } else if (jb->epi) {
          eng_active.bias_act_f32(ncols, dst, NULL, bs, jb->act);
        }
      }
      tile += ns;
    }
  }
}

/* The 36 GEMMs of one block, serially: m[p] (oc x nt, ld) = u[p] (oc x ic) @ v[p] (ic x nt, ld). */
static eng_status_t block_gemms(const wino_job_t *jb, size_t nt, const float *v, float *m, size_t ld) {
  eng_gemm_args_t g;
  memset(&g, 0, sizeof g);
  g.m = jb->oc;
  g.n = nt;
  g.k = jb->ic;
  g.alpha = 1.0f;
  g.lda = jb->ic;
  g.ldb = ld;
  g.ldc = ld;
  for (int p = 0; p < P; p++) {
    g.a = jb->u + (size_t)p * jb->oc * jb->ic;
    g.b = v + (size_t)p * jb->vs;
    g.c = m + (size_t)p * jb->ms;
    eng_status_t s = eng_gemm_f32_with(&eng_active, &g, 0);
    if (s != ENG_OK) return s;
  }
  return ENG_OK;
}

/* Mode A: one whole block per task. */
static void block_task(void *ctx, size_t b, size_t n) {
  (void)n;
  wino_job_t *jb = (wino_job_t *)ctx;
  size_t t0 = b * jb->tb, nt = b + 1 == jb->nblocks ? jb->tiles - t0 : jb->tb, ld = jb->ld;
  float *v = ws_get(P * (jb->vs + jb->ms)); /* checked for overflow by the caller */
  if (!v) {
    jb->status = ENG_ERR_NOMEM;
    return;
  }
  float *m = v + P * jb->vs;
  input_transform(jb, t0, nt, 0, jb->ic, v, ld);
  eng_status_t s = block_gemms(jb, nt, v, m, ld);
  if (s != ENG_OK) {
    jb->status = (int)s;
    return;
  }
  output_transform(jb, t0, nt, 0, jb->oc, m, ld);
}

/* Mode B steps: channel ranges of the current block. */
static void range_of(size_t total, size_t task, size_t tasks, size_t *lo, size_t *hi) {
  size_t q = total / tasks, r = total % tasks;
  *lo = task * q + (task < r ? task : r);
  *hi = *lo + q + (task < r ? 1 : 0);
}
static void in_task(void *ctx, size_t i, size_t n) {
  wino_job_t *jb = (wino_job_t *)ctx;
  size_t c0, c1;
  range_of(jb->ic, i, n, &c0, &c1);
  input_transform(jb, jb->t0, jb->nt, c0, c1, jb->v, jb->ld);
}
static void out_task(void *ctx, size_t i, size_t n) {
  wino_job_t *jb = (wino_job_t *)ctx;
  size_t o0, o1;
  range_of(jb->oc, i, n, &o0, &o1);
  output_transform(jb, jb->t0, jb->nt, o0, o1, jb->m, jb->ld);
}

static int g_tb_override = -1; /* ENGINE_WINO_TB: fixed tiles per block (benchmarks) */

size_t eng_wino_block_tiles(size_t ic, size_t oc, size_t tiles) {
  if (ic == 0 || oc == 0 || tiles == 0) return 0;
  if (g_tb_override < 0) {
    const char *e = getenv("ENGINE_WINO_TB");
    long v = e ? strtol(e, NULL, 10) : 0;
    g_tb_override = v > 0 && v <= (long)TB_MAX ? (int)v : 0; /* the input strip is sized for TB_MAX */
  }
  size_t tb;
  if (g_tb_override > 0) {
    tb = (size_t)g_tb_override;
  } else {
    size_t per_tile = (ic + oc) * P * sizeof(float); /* ic, oc < 2^32 checked by the caller */
    tb = WINO_L2_BYTES / per_tile / TB_MIN * TB_MIN; /* whole 16-column panels of the micro-kernel */
    tb = ENG_MAX(TB_MIN, ENG_MIN(TB_MAX, tb));
  }
  return tb < tiles ? tb : tiles;
}

eng_status_t eng_wino_conv_f32(size_t n, size_t ic, size_t h, size_t w, size_t oc, const size_t pads[4],
                               const float *x, const float *u, const float *bias, const float *z,
                               const eng_act_t *act, float *y) {
  if (!pads || !act || act->kind < 0 || act->kind >= ENG_ACT_COUNT) return ENG_ERR_INVALID_ARG;
  const size_t lim = (size_t)1 << 31;
  if (ic >= lim || oc >= lim || h >= lim || w >= lim || pads[0] >= lim || pads[1] >= lim || pads[2] >= lim ||
      pads[3] >= lim)
    return ENG_ERR_OVERFLOW;
  if (h + pads[0] + pads[2] < 3 || w + pads[1] + pads[3] < 3 || ic == 0) return ENG_ERR_INVALID_ARG;
  wino_job_t jb;
  memset(&jb, 0, sizeof jb);
  jb.ic = ic;
  jb.oc = oc;
  jb.h = h;
  jb.w = w;
  jb.oh = h + pads[0] + pads[2] - 2;
  jb.ow = w + pads[1] + pads[3] - 2;
  jb.th = (jb.oh + 3) / 4;
  jb.tw = (jb.ow + 3) / 4;
  size_t in_img, out_img, t;
  if (!eng_mul_size(ic, h, &t) || !eng_mul_size(t, w, &in_img) || !eng_mul_size(oc, jb.oh, &t) ||
      !eng_mul_size(t, jb.ow, &out_img) || !eng_mul_size(n, in_img, &t) || !eng_mul_size(n, out_img, &t) ||
      !eng_mul_size(jb.th, jb.tw, &jb.tiles) || !eng_mul_size(oc, ic, &t) || !eng_mul_size(t, P, &t))
    return ENG_ERR_OVERFLOW;
  if (n == 0 || oc == 0) return ENG_OK;
  if (!x || !u || !y) return ENG_ERR_INVALID_ARG;
  jb.tb = eng_wino_block_tiles(ic, oc, jb.tiles);
  size_t ws;
  /* Blocks of tb tiles; a tail of fewer than TB_MIN tiles joins the last block (49 tiles by 16 would otherwise
   * leave one tile, whose GEMMs are GEMVs reading all of U for one column: 5% of the 128x28 layer's time). */
  jb.nblocks = jb.tiles / jb.tb;
  if (jb.nblocks == 0 || jb.tiles % jb.tb >= TB_MIN) jb.nblocks++;
  jb.ld = ENG_MAX(jb.tb, jb.tiles - (jb.nblocks - 1) * jb.tb);
  if (!eng_mul_size(ic + oc, jb.ld, &ws) || ws > SIZE_MAX / 4 || !eng_mul_size(ws + 2 * POS_PAD, P, &ws) ||
      ws > SIZE_MAX / sizeof(float))
    return ENG_ERR_OVERFLOW;
  jb.vs = ic * jb.ld + POS_PAD;
  jb.ms = oc * jb.ld + POS_PAD;
  jb.pt = (ptrdiff_t)pads[0];
  jb.pl = (ptrdiff_t)pads[1];
  jb.u = u;
  jb.bias = bias;
  jb.act = act;
  jb.epi = bias != NULL || act->kind != ENG_ACT_NONE;
  size_t threads = (size_t)eng_get_num_threads();
  /* Mode A (a block per task) when the blocks share out evenly among the threads: the last round of blocks may
   * leave threads idle for at most an eighth of the blocks' time. Otherwise mode B splits each step. (3 blocks on 2
   * threads, ResNet's 128-channel layers at 28x28, left one thread idle a third of the time in mode A.) */
  const size_t rounds = threads ? (jb.nblocks + threads - 1) / threads : 1;
  const int mode_a = threads <= 1 || (jb.nblocks >= threads && (rounds * threads - jb.nblocks) * 8 <= jb.nblocks);

  for (size_t img = 0; img < n; img++) {
    jb.x = x + img * in_img;
    jb.y = y + img * out_img;
    jb.z = z ? z + img * out_img : NULL;
    if (mode_a) {
      if (jb.nblocks == 1 || threads <= 1)
        for (size_t b = 0; b < jb.nblocks && !jb.status; b++) block_task(&jb, b, jb.nblocks);
      else
        eng_parallel_for(jb.nblocks, block_task, &jb);
      if (jb.status) return (eng_status_t)jb.status;
      continue;
    }
    /* Mode B: fewer blocks than threads. The calling thread's workspace holds the block. */
    float *v = ws_get(ws);
    if (!v) return ENG_ERR_NOMEM;
    jb.v = v;
    jb.m = v + P * jb.vs;
    int64_t a_off[P], b_off[P], c_off[P];
    for (int p = 0; p < P; p++) {
      a_off[p] = (int64_t)((size_t)p * oc * ic);
      b_off[p] = (int64_t)((size_t)p * jb.vs);
      c_off[p] = (int64_t)((size_t)p * jb.ms);
    }
    for (size_t b = 0; b < jb.nblocks; b++) {
      jb.t0 = b * jb.tb;
      jb.nt = b + 1 == jb.nblocks ? jb.tiles - jb.t0 : jb.tb;
      size_t ti = ENG_MIN(threads, ic), to = ENG_MIN(threads, oc);
      if (ti > 1) eng_parallel_for(ti, in_task, &jb); else in_task(&jb, 0, 1);
      eng_gemm_args_t g;
      memset(&g, 0, sizeof g);
      g.m = oc;
      g.n = jb.nt;
      g.k = ic;
      g.alpha = 1.0f;
      g.a = u;
      g.lda = ic;
      g.b = jb.v;
      g.ldb = jb.ld;
      g.c = jb.m;
      g.ldc = jb.ld;
      eng_status_t s = eng_gemm_batch_f32(&g, P, a_off, b_off, c_off);
      if (s != ENG_OK) return s;
      if (to > 1) eng_parallel_for(to, out_task, &jb); else out_task(&jb, 0, 1);
    }
  }
  return ENG_OK;
}

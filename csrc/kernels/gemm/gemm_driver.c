#define _POSIX_C_SOURCE 200809L
/* gemm_driver.c: ISA-neutral SGEMM driver (packing, cache blocking, threading, epilogue).
 * Compiled with baseline flags; it reaches SIMD code only through the kernel table it is given, so the
 * same driver runs every ISA's micro-kernel and the scalar one is the reference for all of them.
 *
 * Loop nest (BLIS order): jc over N by NC, pc over K by KC (pack a KC x NC block of op(B) into NR-wide
 * panels), ic over M by MC (pack an MC x KC block of op(A) into MR-high panels), then jr/ir over the
 * register tiles. Bias and activation are applied to each tile right after its last K block, while it is
 * still in L1. Threads split C into disjoint blocks; each packs its own operands into a thread-local
 * workspace, so there is no barrier and no sharing. */
#include <stdlib.h>
#include <string.h>

#include "eng/eng_dispatch.h"
#include "eng/eng_runtime.h"
#include "eng/eng_workspace.h"

/* Work (M*N*K) below which one thread is faster than waking the pool (about 100^3: ~25 us on one core). */
#define PAR_MIN_WORK ((size_t)1 << 20)
/* Minimum output columns per thread for the GEMV paths. */
#define GEMV_MIN_COLS 256

/* ---- thread-local workspaces (eng_workspace.h) ----
 * Slot ENG_WS_GEMM_A holds a thread's packed A block; slot ENG_WS_GEMM_B the packed B that a calling thread
 * shares with the pool for the duration of one call. Both grow and are kept, so steady-state calls do not
 * allocate. Returns at least n floats, 64-byte aligned, or NULL. */
static float *ws_get(eng_ws_slot_t slot, size_t n) {
  size_t bytes;
  if (!eng_mul_size(n, sizeof(float), &bytes)) return NULL;
  return (float *)eng_thread_ws(slot, bytes);
}

/* ---- packing (plain C: it moves O(MK + KN) data against O(MNK) flops) ---- */

/* Packs rows [0, m) x cols [0, k) of op(A) into panels of mr rows, k-major, zero-padded. */
static void pack_a(size_t m, size_t k, const float *a, size_t lda, int trans, unsigned mr, float *dst) {
  for (size_t i0 = 0; i0 < m; i0 += mr) {
    size_t mb = ENG_MIN((size_t)mr, m - i0);
    if (trans) { /* op(A)[i][p] = a[p*lda + i]: mr contiguous floats per p */
      for (size_t p = 0; p < k; p++) {
        const float *src = a + p * lda + i0;
        size_t i = 0;
        for (; i < mb; i++) dst[p * mr + i] = src[i];
        for (; i < mr; i++) dst[p * mr + i] = 0.0f;
      }
    } else { /* op(A)[i][p] = a[i*lda + p]: read rows, write with stride mr */
      for (size_t i = 0; i < mb; i++) {
        const float *src = a + (i0 + i) * lda;
        for (size_t p = 0; p < k; p++) dst[p * mr + i] = src[p];
      }
      for (size_t i = mb; i < mr; i++)
        for (size_t p = 0; p < k; p++) dst[p * mr + i] = 0.0f;
    }
    dst += (size_t)mr * k;
  }
}

/* Packs rows [0, k) x cols [0, n) of op(B) into panels of nr columns, k-major, zero-padded. */
static void pack_b(size_t k, size_t n, const float *b, size_t ldb, int trans, unsigned nr, float *dst) {
  if (!trans) { /* read each row of B once, front to back, scattering nr-wide pieces to their panels */
    size_t full = n / nr, rem = n % nr, panel = (size_t)nr * k;
    for (size_t p = 0; p < k; p++) {
      const float *src = b + p * ldb;
      float *d = dst + p * nr;
      for (size_t q = 0; q < full; q++) memcpy(d + q * panel, src + q * nr, nr * sizeof(float));
      if (rem) {
        float *dr = d + full * panel;
        size_t j = 0;
        for (; j < rem; j++) dr[j] = src[full * nr + j];
        for (; j < nr; j++) dr[j] = 0.0f;
      }
    }
    return;
  }
  for (size_t j0 = 0; j0 < n; j0 += nr) {
    size_t nb = ENG_MIN((size_t)nr, n - j0);
    if (!trans) { /* op(B)[p][j] = b[p*ldb + j]: done below row by row */
      dst += (size_t)nr * k;
      continue;
    } else { /* op(B)[p][j] = b[j*ldb + p] */
      for (size_t j = 0; j < nb; j++) {
        const float *src = b + (j0 + j) * ldb;
        for (size_t p = 0; p < k; p++) dst[p * nr + j] = src[p];
      }
      for (size_t j = nb; j < nr; j++)
        for (size_t p = 0; p < k; p++) dst[p * nr + j] = 0.0f;
    }
    dst += (size_t)nr * k;
  }
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

static int has_epilogue(const eng_gemm_args_t *g) { return g->bias_kind != ENG_BIAS_NONE || g->act.kind != ENG_ACT_NONE; }

/* Applies bias and activation to rows [m0, m1) x cols [n0, n1) of C. */
static void epilogue_block(const eng_kernels_t *kt, const eng_gemm_args_t *g, size_t m0, size_t m1, size_t n0, size_t n1) {
  for (size_t i = m0; i < m1; i++) {
    const float *bc = g->bias_kind == ENG_BIAS_COL ? g->bias + n0 : NULL;
    float bs = g->bias_kind == ENG_BIAS_ROW ? g->bias[i] : 0.0f;
    kt->bias_act_f32(n1 - n0, g->c + i * g->ldc + n0, bc, bs, &g->act);
  }
}

/* ENGINE_GEMM_PACK_A=1 turns off reading A in place (the switch for bisecting), read once. */
static int g_force_pack_a = -1;

/* Reading A in place saves packing it (as costly as the product when the block of C is narrow: each
 * element of A is used only that many times); packing wins when an A block is reused across many column
 * panels, where rows of A at a large stride would also collide in the cache. */
static int use_direct_a(const eng_gemm_f32_impl_t *im, const eng_gemm_args_t *g, size_t ncols) {
  if (g_force_pack_a < 0) {
    const char *e = getenv("ENGINE_GEMM_PACK_A");
    g_force_pack_a = e && e[0] == '1';
  }
  if (!im->ukr_arow || g->trans_a || g_force_pack_a) return 0;
  return ncols <= 256; /* measured on Zen 3: in-place A wins up to 256 columns, packing from 384 up */
}

/* Packed op(B) for the columns [jc, jc + ncb): K x round_up(ncb, nr), stored by K blocks of kc rows; block
 * pc holds its panels of nr columns one after another (kc x nr each), so the panel q of block pc is at
 * bp + pc * ncb_r + q * nr * kc. */
typedef struct gemm_par {
  const eng_kernels_t *kt;
  const eng_gemm_args_t *g;
  float *bp;
  size_t jc, ncb, ncb_r, kc_max;
  size_t k0, k1;            /* the K slab packed in bp */
  size_t mb, nb, tn;        /* task grid: blocks of mb rows x nb columns, tn blocks per row */
  size_t pack_chunk, pack_per_k; /* B packing tasks: chunks of pack_chunk panels, pack_per_k per K block */
  volatile int status;
} gemm_par_t;

static void pack_b_task(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  gemm_par_t *c = (gemm_par_t *)ctx;
  const eng_gemm_args_t *g = c->g;
  const unsigned nr = c->kt->gemm_f32->nr;
  size_t pc = c->k0 + (t / c->pack_per_k) * c->kc_max, q0 = (t % c->pack_per_k) * c->pack_chunk;
  size_t kc = ENG_MIN(c->kc_max, c->k1 - pc);
  size_t j0 = q0 * nr;
  if (j0 >= c->ncb) return;
  size_t ncols = ENG_MIN(c->pack_chunk * nr, c->ncb - j0);
  size_t col = c->jc + j0;
  const float *src = g->trans_b ? g->b + col * g->ldb + pc : g->b + pc * g->ldb + col;
  pack_b(kc, ncols, src, g->ldb, g->trans_b, nr, c->bp + (pc - c->k0) * c->ncb_r + q0 * nr * kc);
}

/* Columns per epilogue group (rounded up to a multiple of nr): an MC x EPI_COLS block of C (144 x 256 floats, 144 KiB for
 * AVX2) stays in L2 until its bias and activation are applied. Per tile, the epilogue's call overhead cost 20-57% of
 * GEMMs with K <= 160 (1x1 convolutions: 960x49x160 with bias + Clip 214 -> 301 us, Zen 3). */
#define EPI_COLS 256

/* One block of C: rows [m0, m1) x columns [n0, n1) (relative to jc), over the K slab, against the shared B. */
static eng_status_t gemm_tile_block(const gemm_par_t *c, size_t m0, size_t m1, size_t n0, size_t n1) {
  const eng_kernels_t *kt = c->kt;
  const eng_gemm_args_t *g = c->g;
  const eng_gemm_f32_impl_t *im = kt->gemm_f32;
  const unsigned mr = im->mr, nr = im->nr;
  const size_t K = g->k, kc_max = c->kc_max;
  const int direct_a = use_direct_a(im, g, n1 - n0);
  size_t mc_max = ENG_MIN(im->mc, round_up(m1 - m0, mr));
  float *ap = NULL;
  if (!direct_a && !(ap = ws_get(ENG_WS_GEMM_A, mc_max * kc_max))) return ENG_ERR_NOMEM;
  const int epi = has_epilogue(g);
  const size_t epi_cols = round_up(EPI_COLS, nr);
  for (size_t pc = c->k0; pc < c->k1; pc += kc_max) {
    size_t kc = ENG_MIN(kc_max, c->k1 - pc);
    float beta = pc == 0 ? g->beta : 1.0f;
    int last = pc + kc >= K;
    /* the last K block stores through the fused epilogue when this ISA has it */
    const int fused = last && epi && (direct_a ? im->ukr_arow_epi != NULL : im->ukr_epi != NULL);
    const float *bk = c->bp + (pc - c->k0) * c->ncb_r;
    /* A narrow last panel (n1 - n0 columns end in tail_nb < nr of them): B's tail columns transposed once per K
     * block for the dot-product tail kernel, used for every row tile. Whether it is used depends only on the shape
     * (not on direct_a, which depends on the thread split): 1 and 2 threads give bitwise the same C. */
    const size_t tail_nb = (n1 - n0) % nr;
    const int tail = tail_nb && tail_nb <= ENG_GEMM_TAIL_COLS && im->ukr_tail && !g->trans_a && kc <= ENG_GEMM_TAIL_KC_MAX;
    float bt[ENG_GEMM_TAIL_COLS * ENG_GEMM_TAIL_KC_MAX];
    if (tail) {
      const float *bpanel = bk + ((n1 - tail_nb) / nr) * nr * kc;
      for (size_t j = 0; j < tail_nb; j++)
        for (size_t p = 0; p < kc; p++) bt[j * kc + p] = bpanel[p * nr + j];
    }
    for (size_t ic = m0; ic < m1; ic += mc_max) {
      size_t mc = ENG_MIN(mc_max, m1 - ic);
      const float *asrc = g->trans_a ? g->a + pc * g->lda + ic : g->a + ic * g->lda + pc;
      if (!direct_a) pack_a(mc, kc, asrc, g->lda, g->trans_a, mr, ap);
      /* Column groups of EPI_COLS: after a group's last K block its bias and activation run row by row over the
       * whole group (still in L2), one kernel call per row instead of one per row of every 16-column tile. */
      for (size_t jg = n0; jg < n1; jg += epi_cols) {
        const size_t jg1 = ENG_MIN(n1, jg + epi_cols);
        for (size_t jr = jg; jr < jg1; jr += nr) {
          size_t nb = ENG_MIN((size_t)nr, jg1 - jr);
          const float *bpanel = bk + (jr / nr) * nr * kc;
          size_t col = c->jc + jr;
          for (size_t ir = 0; ir < mc; ir += mr) {
            size_t mb = ENG_MIN((size_t)mr, mc - ir);
            float *cp = g->c + (ic + ir) * g->ldc + col;
            const eng_gemm_epi_t e = {g->bias_kind == ENG_BIAS_ROW ? g->bias + ic + ir : NULL,
                                      g->bias_kind == ENG_BIAS_COL ? g->bias + col : NULL, &g->act};
            if (tail && nb == tail_nb) {
              im->ukr_tail(kc, g->a + (ic + ir) * g->lda + pc, g->lda, bt, cp, g->ldc, mb, nb, g->alpha, beta,
                           fused ? &e : NULL);
            } else if (fused) {
              if (direct_a)
                im->ukr_arow_epi(kc, asrc + ir * g->lda, g->lda, bpanel, cp, g->ldc, mb, nb, g->alpha, beta, &e);
              else
                im->ukr_epi(kc, ap + ir * kc, bpanel, cp, g->ldc, mb, nb, g->alpha, beta, &e);
            } else if (direct_a) {
              im->ukr_arow(kc, asrc + ir * g->lda, g->lda, bpanel, cp, g->ldc, mb, nb, g->alpha, beta);
            } else {
              im->ukr(kc, ap + ir * kc, bpanel, cp, g->ldc, mb, nb, g->alpha, beta);
            }
          }
        }
        if (last && epi && !fused) epilogue_block(kt, g, ic, ic + mc, c->jc + jg, c->jc + jg1);
      }
    }
  }
  return ENG_OK;
}

static void gemm_tile_task(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  gemm_par_t *c = (gemm_par_t *)ctx;
  size_t m0 = (t / c->tn) * c->mb, n0 = (t % c->tn) * c->nb;
  if (m0 >= c->g->m || n0 >= c->ncb) return;
  eng_status_t s = gemm_tile_block(c, m0, ENG_MIN(c->g->m, m0 + c->mb), n0, ENG_MIN(c->ncb, n0 + c->nb));
  if (s != ENG_OK) c->status = (int)s;
}

/* Packed B per call is capped at this many floats (16 MiB); a larger B is done in slabs of columns and,
 * for a very deep K, of rows. */
#define B_PACK_MAX_FLOATS ((size_t)4 << 20)
/* Row blocks narrower than this lose the L1 reuse of each B panel across the tiles of a block. */
#define MIN_TASK_ROWS 48

/* The blocked algorithm: B packed once per column slab (in parallel), then blocks of C as tasks. With prepacked
 * (the whole op(B) in this table's layout: one slab of all columns and all of K), there is no packing step. */
static eng_status_t gemm_blocked(const eng_kernels_t *kt, const eng_gemm_args_t *g, size_t threads,
                                 const float *prepacked) {
  const eng_gemm_f32_impl_t *im = kt->gemm_f32;
  const unsigned mr = im->mr, nr = im->nr;
  const size_t M = g->m, N = g->n, K = g->k;
  gemm_par_t c = {0};
  c.kt = kt;
  c.g = g;
  c.kc_max = ENG_MIN(im->kc, K);
  size_t slab, kslab;
  if (prepacked) {
    slab = round_up(N, nr);
    kslab = K;
    c.bp = (float *)prepacked; /* only read: no packing task runs */
  } else {
    slab = round_up(ENG_MAX((size_t)nr, B_PACK_MAX_FLOATS / K), nr);
    if (slab > N) slab = round_up(N, nr);
    kslab = ENG_MAX(c.kc_max, B_PACK_MAX_FLOATS / slab / c.kc_max * c.kc_max);
    if (kslab > K) kslab = K;
    float *bp = ws_get(ENG_WS_GEMM_B, kslab * slab); /* <= max(16 MiB, kc x nr) floats: no overflow */
    if (!bp) return ENG_ERR_NOMEM;
    c.bp = bp;
  }
  for (size_t jc = 0; jc < N; jc += slab) {
  for (size_t k0 = 0; k0 < K; k0 += kslab) { /* one slab of packed B per iteration (body not indented) */
    c.jc = jc;
    c.ncb = ENG_MIN(slab, N - jc);
    c.ncb_r = round_up(c.ncb, nr);
    c.k0 = k0;
    c.k1 = ENG_MIN(K, k0 + kslab);
    size_t panels = c.ncb_r / nr, kblocks = (c.k1 - k0 + c.kc_max - 1) / c.kc_max;
    /* B packing tasks: about four per thread, whole panels each */
    size_t want = threads > 1 ? threads * 4 : 1;
    size_t per_k = ENG_MIN(panels, (want + kblocks - 1) / kblocks);
    c.pack_chunk = (panels + per_k - 1) / per_k;
    c.pack_per_k = (panels + c.pack_chunk - 1) / c.pack_chunk;
    size_t ptasks = prepacked ? 0 : kblocks * c.pack_per_k;
    if (threads > 1 && ptasks > 1)
      eng_parallel_for(ptasks, pack_b_task, &c);
    else
      for (size_t t = 0; t < ptasks; t++) pack_b_task(&c, t, ptasks);

    /* Compute tasks: split rows first (no work is repeated), then columns, aiming at ENG_TASKS_PER_THREAD per
     * thread so that a thread that starts late still gets a share. */
    size_t tm = 1, tn = 1;
    if (threads > 1) {
      size_t target = threads * ENG_TASKS_PER_THREAD;
      tm = ENG_MAX((size_t)1, ENG_MIN(target, M / MIN_TASK_ROWS));
      if (tm < target) tn = ENG_MIN(panels, (target + tm - 1) / tm);
    }
    c.mb = round_up((M + tm - 1) / tm, mr);
    c.nb = round_up((c.ncb + tn - 1) / tn, nr);
    c.tn = (c.ncb + c.nb - 1) / c.nb;
    size_t tasks = ((M + c.mb - 1) / c.mb) * c.tn;
    if (tasks > 1)
      eng_parallel_for(tasks, gemm_tile_task, &c);
    else
      gemm_tile_task(&c, 0, 1);
    if (c.status) return (eng_status_t)c.status;
  }
  }
  return ENG_OK;
}

/* ---- GEMV paths (M == 1 or N == 1) ---- */
typedef struct gemv_task {
  const eng_kernels_t *kt;
  size_t n, k, ldb, chunk;
  float alpha, beta;
  const float *x, *b;
  int trans_b;
  float *y;
  const float *bias; /* per output element, or NULL */
  float bias_s;
  const eng_act_t *act;
  int epi;
} gemv_task_t;

static void gemv_task_fn(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  gemv_task_t *c = (gemv_task_t *)ctx;
  size_t j0 = t * c->chunk;
  if (j0 >= c->n) return;
  size_t nb = ENG_MIN(c->chunk, c->n - j0);
  const float *b = c->trans_b ? c->b + j0 * c->ldb : c->b + j0;
  c->kt->gemv_f32(nb, c->k, c->alpha, c->x, b, c->ldb, c->trans_b, c->beta, c->y + j0);
  if (c->epi) c->kt->bias_act_f32(nb, c->y + j0, c->bias ? c->bias + j0 : NULL, c->bias_s, c->act);
}

static void run_gemv(gemv_task_t *t, int parallel) {
  size_t threads = parallel ? (size_t)eng_get_num_threads() : 1;
  size_t tasks = 1;
  if (threads > 1 && t->n * t->k >= PAR_MIN_WORK / 4) tasks = ENG_MIN(threads, (t->n + GEMV_MIN_COLS - 1) / GEMV_MIN_COLS);
  if (tasks < 1) tasks = 1;
  t->chunk = round_up((t->n + tasks - 1) / tasks, 16);
  tasks = (t->n + t->chunk - 1) / t->chunk;
  if (tasks <= 1)
    gemv_task_fn(t, 0, 1);
  else
    eng_parallel_for(tasks, gemv_task_fn, t);
}

/* C (1 x N) = op(A) (1 x K) * op(B): x is row 0 of op(A), y is row 0 of C. */
static eng_status_t gemm_m1(const eng_kernels_t *kt, const eng_gemm_args_t *g, int parallel) {
  float *tmp = NULL;
  if (g->trans_a && g->lda != 1 && g->k > 1) { /* op(A) row 0 is a column of the stored K x 1 matrix */
    tmp = (float *)malloc(g->k * sizeof(float));
    if (!tmp) return ENG_ERR_NOMEM;
    for (size_t p = 0; p < g->k; p++) tmp[p] = g->a[p * g->lda];
  }
  gemv_task_t t = {kt, g->n, g->k, g->ldb, 0, g->alpha, g->beta, tmp ? tmp : g->a, g->b, g->trans_b, g->c,
                   g->bias_kind == ENG_BIAS_COL ? g->bias : NULL, g->bias_kind == ENG_BIAS_ROW ? g->bias[0] : 0.0f,
                   &g->act, has_epilogue(g)};
  run_gemv(&t, parallel);
  free(tmp);
  return ENG_OK;
}

/* C (M x 1) = op(A) * op(B) (K x 1), computed as its transpose y^T = x^T op(A)^T with x = op(B)[:, 0]. */
static eng_status_t gemm_n1(const eng_kernels_t *kt, const eng_gemm_args_t *g, int parallel) {
  size_t M = g->m, K = g->k;
  int need_x = !g->trans_b && g->ldb != 1 && K > 1; /* op(B) column 0 of a stored K x 1 matrix */
  int need_y = g->ldc != 1 && M > 1;
  float *tmp = NULL;
  if (need_x || need_y) {
    tmp = (float *)malloc(((need_x ? K : 0) + (need_y ? M : 0)) * sizeof(float));
    if (!tmp) return ENG_ERR_NOMEM;
  }
  const float *x = g->b;
  float *y = g->c;
  if (need_x) {
    for (size_t p = 0; p < K; p++) tmp[p] = g->b[p * g->ldb];
    x = tmp;
  }
  if (need_y) {
    y = tmp + (need_x ? K : 0);
    if (g->beta != 0.0f)
      for (size_t i = 0; i < M; i++) y[i] = g->c[i * g->ldc];
  }
  /* op(A)^T is K x M: A itself when trans_a (stored K x M), else the transpose of the stored M x K A. */
  gemv_task_t t = {kt, M, K, g->lda, 0, g->alpha, g->beta, x, g->a, !g->trans_a, y,
                   g->bias_kind == ENG_BIAS_ROW ? g->bias : NULL, g->bias_kind == ENG_BIAS_COL ? g->bias[0] : 0.0f,
                   &g->act, has_epilogue(g)};
  run_gemv(&t, parallel);
  if (need_y)
    for (size_t i = 0; i < M; i++) g->c[i * g->ldc] = y[i];
  free(tmp);
  return ENG_OK;
}

/* alpha == 0 or K == 0: C = act(beta * C + bias) without touching A or B. */
static void gemm_scale_only(const eng_kernels_t *kt, const eng_gemm_args_t *g) {
  for (size_t i = 0; i < g->m; i++) {
    float *c = g->c + i * g->ldc;
    if (g->beta == 0.0f)
      memset(c, 0, g->n * sizeof(float));
    else if (g->beta != 1.0f)
      for (size_t j = 0; j < g->n; j++) c[j] *= g->beta;
  }
  if (has_epilogue(g)) epilogue_block(kt, g, 0, g->m, 0, g->n);
}

static eng_status_t validate(const eng_gemm_args_t *g) {
  if (!g) return ENG_ERR_INVALID_ARG;
  size_t M = g->m, N = g->n, K = g->k, tmp;
  /* every element index must fit in size_t (and in the workspace sizes derived from it) */
  if (!eng_mul_size(M, N, &tmp) || !eng_mul_size(M, K, &tmp) || !eng_mul_size(K, N, &tmp)) return ENG_ERR_OVERFLOW;
  if (g->act.kind < 0 || g->act.kind >= ENG_ACT_COUNT) return ENG_ERR_INVALID_ARG;
  if (g->bias_kind < ENG_BIAS_NONE || g->bias_kind > ENG_BIAS_ROW) return ENG_ERR_INVALID_ARG;
  if (M == 0 || N == 0) return ENG_OK;
  if (!g->c || g->ldc < N) return ENG_ERR_INVALID_ARG;
  if (g->bias_kind != ENG_BIAS_NONE && !g->bias) return ENG_ERR_INVALID_ARG;
  if (K == 0 || g->alpha == 0.0f) return ENG_OK;
  if (!g->a || !g->b) return ENG_ERR_INVALID_ARG;
  if (g->lda < (g->trans_a ? M : K) || g->ldb < (g->trans_b ? K : N)) return ENG_ERR_INVALID_ARG;
  if (!eng_mul_size(M > K ? M : K, g->lda, &tmp) || !eng_mul_size(N > K ? N : K, g->ldb, &tmp) ||
      !eng_mul_size(M, g->ldc, &tmp))
    return ENG_ERR_OVERFLOW;
  return ENG_OK;
}

static eng_status_t gemm_run(const eng_kernels_t *kt, const eng_gemm_args_t *g, int parallel, const float *prepacked) {
  eng_status_t s = validate(g);
  if (s != ENG_OK) return s;
  size_t M = g->m, N = g->n, K = g->k;
  if (M == 0 || N == 0) return ENG_OK;
  if (K == 0 || g->alpha == 0.0f) {
    gemm_scale_only(kt, g);
    return ENG_OK;
  }
  if (M == 1) return gemm_m1(kt, g, parallel);
  if (N == 1) return gemm_n1(kt, g, parallel);

  size_t threads = parallel ? (size_t)eng_get_num_threads() : 1;
  size_t work = M * N; /* validated: no overflow */
  work = work > SIZE_MAX / K ? SIZE_MAX : work * K;
  if (work < PAR_MIN_WORK) threads = 1;
  return gemm_blocked(kt, g, threads, prepacked);
}

eng_status_t eng_gemm_f32_with(const eng_kernels_t *kt, const eng_gemm_args_t *g, int parallel) {
  return gemm_run(kt, g, parallel, NULL);
}

eng_status_t eng_gemm_f32(const eng_gemm_args_t *g) { return eng_gemm_f32_with(&eng_active, g, 1); }

size_t eng_gemm_packed_b_floats(const eng_kernels_t *kt, size_t k, size_t n) {
  if (!kt || !kt->gemm_f32 || k == 0 || n == 0) return 0;
  size_t nr = kt->gemm_f32->nr, cols, total;
  if (n > SIZE_MAX - nr) return SIZE_MAX;
  cols = round_up(n, nr);
  if (!eng_mul_size(k, cols, &total) || total > SIZE_MAX / sizeof(float)) return SIZE_MAX;
  return total;
}

eng_status_t eng_gemm_pack_b_f32(const eng_kernels_t *kt, size_t k, size_t n, const float *b, size_t ldb, int trans_b,
                                 float *dst, size_t dst_floats, eng_gemm_packed_b_t *out) {
  if (!kt || !kt->gemm_f32 || !out || k == 0 || n == 0 || !b || !dst) return ENG_ERR_INVALID_ARG;
  size_t need = eng_gemm_packed_b_floats(kt, k, n), tmp;
  if (need == SIZE_MAX || !eng_mul_size(trans_b ? n : k, ldb, &tmp)) return ENG_ERR_OVERFLOW;
  if (ldb < (trans_b ? k : n) || dst_floats < need) return ENG_ERR_INVALID_ARG;
  const eng_gemm_f32_impl_t *im = kt->gemm_f32;
  const size_t kc_max = ENG_MIN(im->kc, k), cols = round_up(n, im->nr);
  for (size_t pc = 0; pc < k; pc += kc_max) { /* block pc holds its panels at dst + pc * cols (gemm_blocked) */
    size_t kc = ENG_MIN(kc_max, k - pc);
    pack_b(kc, n, trans_b ? b + pc : b + pc * ldb, ldb, trans_b, im->nr, dst + pc * cols);
  }
  out->data = dst;
  out->k = k;
  out->n = n;
  out->nr = im->nr;
  out->kc = kc_max;
  return ENG_OK;
}

eng_status_t eng_gemm_prepacked_f32_with(const eng_kernels_t *kt, const eng_gemm_args_t *g,
                                         const eng_gemm_packed_b_t *pb, int parallel) {
  if (!kt || !pb || !pb->data) return ENG_ERR_INVALID_ARG;
  if (g && (pb->k != g->k || pb->n != g->n)) return ENG_ERR_INVALID_ARG;
  const eng_gemm_f32_impl_t *im = kt->gemm_f32;
  int fits = pb->nr == im->nr && pb->kc == ENG_MIN(im->kc, pb->k);
  return gemm_run(kt, g, parallel, fits ? pb->data : NULL);
}

eng_status_t eng_gemm_prepacked_f32(const eng_gemm_args_t *g, const eng_gemm_packed_b_t *pb) {
  return eng_gemm_prepacked_f32_with(&eng_active, g, pb, 1);
}

typedef struct batch_task {
  const eng_gemm_args_t *g;
  const int64_t *a_off, *b_off, *c_off;
  volatile int status;
} batch_task_t;

static void batch_task_fn(void *ctx, size_t i, size_t n) {
  (void)n;
  batch_task_t *t = (batch_task_t *)ctx;
  eng_gemm_args_t g = *t->g;
  g.a += t->a_off[i];
  g.b += t->b_off[i];
  g.c += t->c_off[i];
  eng_status_t s = eng_gemm_f32_with(&eng_active, &g, 0);
  if (s != ENG_OK) t->status = (int)s;
}

eng_status_t eng_gemm_batch_f32(const eng_gemm_args_t *g, size_t batch, const int64_t *a_off, const int64_t *b_off,
                                const int64_t *c_off) {
  eng_status_t s = validate(g);
  if (s != ENG_OK) return s;
  if (batch == 0) return ENG_OK;
  if (!a_off || !b_off || !c_off) return ENG_ERR_INVALID_ARG;
  size_t work = g->m * g->n;
  work = g->k && work > SIZE_MAX / g->k ? SIZE_MAX : work * (g->k ? g->k : 1);
  if (batch == 1 || work >= PAR_MIN_WORK * 4) { /* each problem is big enough to use every thread */
    for (size_t i = 0; i < batch; i++) {
      eng_gemm_args_t one = *g;
      one.a += a_off[i];
      one.b += b_off[i];
      one.c += c_off[i];
      s = eng_gemm_f32_with(&eng_active, &one, 1);
      if (s != ENG_OK) return s;
    }
    return ENG_OK;
  }
  batch_task_t t = {g, a_off, b_off, c_off, 0};
  eng_parallel_for(batch, batch_task_fn, &t);
  return (eng_status_t)t.status;
}

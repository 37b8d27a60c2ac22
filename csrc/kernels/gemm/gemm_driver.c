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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_dispatch.h"
#include "eng/eng_runtime.h"

/* Work (M*N*K) below which one thread is faster than waking the pool. */
#define PAR_MIN_WORK ((size_t)1 << 17)
/* Minimum output columns per thread for the GEMV paths. */
#define GEMV_MIN_COLS 256

/* ---- thread-local workspace, freed when the thread exits ---- */
static pthread_key_t g_ws_key;
static pthread_once_t g_ws_once = PTHREAD_ONCE_INIT;
typedef struct ws {
  void *raw;
  size_t cap; /* floats */
} ws_t;
static void ws_free(void *p) {
  ws_t *w = (ws_t *)p;
  if (w) free(w->raw);
  free(w);
}
static void ws_key_init(void) { pthread_key_create(&g_ws_key, ws_free); }

/* Returns a 64-byte aligned buffer of at least n floats owned by this thread, or NULL. */
static float *ws_get(size_t n) {
  pthread_once(&g_ws_once, ws_key_init);
  ws_t *w = (ws_t *)pthread_getspecific(g_ws_key);
  if (!w) {
    w = (ws_t *)calloc(1, sizeof *w);
    if (!w) return NULL;
    if (pthread_setspecific(g_ws_key, w) != 0) {
      free(w);
      return NULL;
    }
  }
  if (w->cap < n) {
    free(w->raw);
    w->raw = NULL;
    w->cap = 0;
    size_t bytes;
    if (!eng_mul_size(n, sizeof(float), &bytes) || bytes > SIZE_MAX - 64) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes + 64) != 0) return NULL;
    w->raw = p;
    w->cap = n;
  }
  return (float *)w->raw;
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

/* Reading A in place saves packing it (as costly as the product when N is small); packing wins when each
 * A block is reused across many column panels and rows of A would collide in the cache. */
static int use_direct_a(const eng_gemm_f32_impl_t *im, const eng_gemm_args_t *g) {
  if (g_force_pack_a < 0) {
    const char *e = getenv("ENGINE_GEMM_PACK_A");
    g_force_pack_a = e && e[0] == '1';
  }
  if (!im->ukr_arow || g->trans_a || g_force_pack_a) return 0;
  return g->n <= 256; /* measured on Zen 3: in-place A wins up to N = 256, packing from N = 384 up */
}

/* The blocked algorithm on C[m0:m1, n0:n1]. */
static eng_status_t gemm_block(const eng_kernels_t *kt, const eng_gemm_args_t *g, size_t m0, size_t m1, size_t n0, size_t n1) {
  const eng_gemm_f32_impl_t *im = kt->gemm_f32;
  const unsigned mr = im->mr, nr = im->nr;
  const size_t K = g->k;
  size_t mc_max = ENG_MIN(im->mc, round_up(m1 - m0, mr));
  size_t kc_max = ENG_MIN(im->kc, K);
  size_t nc_max = ENG_MIN(im->nc, round_up(n1 - n0, nr));
  size_t a_len = mc_max * kc_max, b_len = kc_max * nc_max;
  float *ws = ws_get(round_up(a_len, 16) + b_len);
  if (!ws) return ENG_ERR_NOMEM;
  float *ap = ws, *bp = ws + round_up(a_len, 16);
  const int epi = has_epilogue(g);
  const int direct_a = use_direct_a(im, g);

  for (size_t jc = n0; jc < n1; jc += nc_max) {
    size_t nc = ENG_MIN(nc_max, n1 - jc);
    for (size_t pc = 0; pc < K; pc += kc_max) {
      size_t kc = ENG_MIN(kc_max, K - pc);
      const float *bsrc = g->trans_b ? g->b + jc * g->ldb + pc : g->b + pc * g->ldb + jc;
      pack_b(kc, nc, bsrc, g->ldb, g->trans_b, nr, bp);
      float beta = pc == 0 ? g->beta : 1.0f;
      int last = pc + kc >= K;
      for (size_t ic = m0; ic < m1; ic += mc_max) {
        size_t mc = ENG_MIN(mc_max, m1 - ic);
        const float *asrc = g->trans_a ? g->a + pc * g->lda + ic : g->a + ic * g->lda + pc;
        if (!direct_a) pack_a(mc, kc, asrc, g->lda, g->trans_a, mr, ap);
        for (size_t jr = 0; jr < nc; jr += nr) {
          size_t nb = ENG_MIN((size_t)nr, nc - jr);
          for (size_t ir = 0; ir < mc; ir += mr) {
            size_t mb = ENG_MIN((size_t)mr, mc - ir);
            float *c = g->c + (ic + ir) * g->ldc + jc + jr;
            if (direct_a)
              im->ukr_arow(kc, asrc + ir * g->lda, g->lda, bp + jr * kc, c, g->ldc, mb, nb, g->alpha, beta);
            else
              im->ukr(kc, ap + ir * kc, bp + jr * kc, c, g->ldc, mb, nb, g->alpha, beta);
            if (last && epi) epilogue_block(kt, g, ic + ir, ic + ir + mb, jc + jr, jc + jr + nb);
          }
        }
      }
    }
  }
  return ENG_OK;
}

typedef struct gemm_task {
  const eng_kernels_t *kt;
  const eng_gemm_args_t *g;
  size_t tn, mstep, nstep;
  volatile int status;
} gemm_task_t;

static void gemm_task_fn(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  gemm_task_t *c = (gemm_task_t *)ctx;
  const eng_gemm_args_t *g = c->g;
  size_t ti = t / c->tn, tj = t % c->tn;
  size_t m0 = ti * c->mstep, n0 = tj * c->nstep;
  if (m0 >= g->m || n0 >= g->n) return;
  size_t m1 = ENG_MIN(g->m, m0 + c->mstep), n1 = ENG_MIN(g->n, n0 + c->nstep);
  eng_status_t s = gemm_block(c->kt, g, m0, m1, n0, n1);
  if (s != ENG_OK) c->status = (int)s;
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
  const float *x = g->a;
  if (g->trans_a && g->lda != 1 && g->k > 1) { /* op(A) row 0 is a column of the stored K x 1 matrix */
    float *tmp = (float *)malloc(g->k * sizeof(float));
    if (!tmp) return ENG_ERR_NOMEM;
    for (size_t p = 0; p < g->k; p++) tmp[p] = g->a[p * g->lda];
    gemv_task_t t = {kt, g->n, g->k, g->ldb, 0, g->alpha, g->beta, tmp, g->b, g->trans_b, g->c,
                     g->bias_kind == ENG_BIAS_COL ? g->bias : NULL, g->bias_kind == ENG_BIAS_ROW ? g->bias[0] : 0.0f,
                     &g->act, has_epilogue(g)};
    run_gemv(&t, parallel);
    free(tmp);
    return ENG_OK;
  }
  gemv_task_t t = {kt, g->n, g->k, g->ldb, 0, g->alpha, g->beta, x, g->b, g->trans_b, g->c,
                   g->bias_kind == ENG_BIAS_COL ? g->bias : NULL, g->bias_kind == ENG_BIAS_ROW ? g->bias[0] : 0.0f,
                   &g->act, has_epilogue(g)};
  run_gemv(&t, parallel);
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

eng_status_t eng_gemm_f32_with(const eng_kernels_t *kt, const eng_gemm_args_t *g, int parallel) {
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

  const eng_gemm_f32_impl_t *im = kt->gemm_f32;
  size_t threads = parallel ? (size_t)eng_get_num_threads() : 1;
  size_t work = M * N; /* validated: no overflow */
  work = work > SIZE_MAX / K ? SIZE_MAX : work * K;
  if (threads <= 1 || work < PAR_MIN_WORK) return gemm_block(kt, g, 0, M, 0, N);

  /* Split C into `threads` blocks along its longer side, keeping tiles whole. With more threads, use a
   * grid whose blocks are as square as the tile counts allow. */
  size_t mt = (M + im->mr - 1) / im->mr, nt = (N + im->nr - 1) / im->nr;
  size_t best_tm = 1, best_tn = threads;
  double best_cost = -1.0;
  for (size_t tm = 1; tm <= threads; tm++) {
    if (threads % tm) continue;
    size_t tn = threads / tm;
    if (tm > mt || tn > nt) continue;
    double bm = (double)((mt + tm - 1) / tm) * im->mr, bn = (double)((nt + tn - 1) / tn) * im->nr;
    double cost = bm * bn * (1.0 / bm + 1.0 / bn); /* packing traffic per block relative to its compute */
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best_tm = tm;
      best_tn = tn;
    }
  }
  if (best_cost < 0) { /* fewer tiles than threads in both directions: split the longer one */
    if (mt >= nt) {
      best_tm = ENG_MIN(threads, mt);
      best_tn = 1;
    } else {
      best_tm = 1;
      best_tn = ENG_MIN(threads, nt);
    }
  }
  gemm_task_t t = {kt, g, best_tn, ((mt + best_tm - 1) / best_tm) * im->mr, ((nt + best_tn - 1) / best_tn) * im->nr, 0};
  eng_parallel_for(best_tm * best_tn, gemm_task_fn, &t);
  return (eng_status_t)t.status;
}

eng_status_t eng_gemm_f32(const eng_gemm_args_t *g) { return eng_gemm_f32_with(&eng_active, g, 1); }

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

/* sim_driver.c: ISA-neutral similarity search driver (core library, baseline flags; no intrinsics).
 * Row-wise cosine, pairwise distance matrices (through eng_gemm_f32_with) and the fused gallery search:
 * query normalization, a blocked scan of the gallery and top-k selection in per-thread heaps, merged at the
 * end. Every kernel is called through the table passed in (the active one from Python), so each ISA level's
 * kernels drive the same algorithm. See eng_sim.h for the contracts. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_runtime.h"
#include "eng/eng_sim.h"
#include "sim_internal.h"

/* A gallery block is sized to stay in L2 (Zen 3: 512 KiB per core; most x86/Arm cores have >= 256 KiB)
 * while every query's scan (or the GEMM) passes over it: the gallery is read from memory once per search. */
#define SIM_BLOCK_BYTES ((size_t)192 * 1024)
/* From this many queries on, an f32/f16 gallery block is multiplied with all queries at once by the GEMM
 * micro-kernels (compute-bound) instead of one scan per query (bound by L2 bandwidth). Measured on Zen 3 (1 thread,
 * 50k x 512, CPU time, ms; scan / GEMM): f32 m=4 12.1/16.3, m=6 18.7/17.4; f16 m=8 16.0/17.2, m=12 22.8/20.2 (the
 * GEMM costs about the same for 2..8 queries: its tiles are 16 queries wide). ENGINE_SIM_GEMM_MIN_QUERIES
 * overrides both (0 turns the GEMM path off: the off switch for bisecting). */
#define SIM_GEMM_MIN_QUERIES_F32 6
#define SIM_GEMM_MIN_QUERIES_F16 10
/* Gallery bytes (as f32) per GEMM block; ENGINE_SIM_GEMM_ROWS sets the rows directly. The block is the GEMM's A,
 * read in place by the micro-kernel (an f16 block is first widened into a per-thread buffer), so it need not fit
 * in L2. The queries (the GEMM's B) are packed once per search. Measured on Zen 3 (1 thread, d = 512, 64 queries,
 * best of 7, GFLOP/s, f32 / f16): 126 rows 76 / 74, 252 rows 82 / 80, 510 rows 74-81 / 80-83 (+-5% noise). */
#define SIM_GEMM_BLOCK_BYTES ((size_t)1 << 20)

static size_t env_size(const char *name, size_t dflt) {
  const char *e = getenv(name);
  if (!e || !*e) return dflt;
  char *end;
  unsigned long long v = strtoull(e, &end, 10);
  return *end ? dflt : (size_t)v;
}
/* Rows per thread below which splitting the gallery costs more than it gains. */
#define SIM_MIN_ROWS_PER_TASK 2048

static size_t dtype_size(int dtype) { return dtype == ENG_SIM_F32 ? 4 : dtype == ENG_SIM_F16 ? 2 : 1; }

/* ---------------------------------------------------------------- row-wise cosine */
typedef struct rowcos_ctx {
  const eng_kernels_t *kt;
  int dtype;
  size_t m, d, lda, ldb, chunk;
  const void *a, *b;
  float *out;
} rowcos_ctx_t;

static void rowcos_rows(const rowcos_ctx_t *c, size_t i0, size_t i1) {
  const eng_kernels_t *kt = c->kt;
  for (size_t i = i0; i < i1; i++) {
    if (c->dtype == ENG_SIM_F32)
      c->out[i] = kt->cos_f32(c->d, (const float *)c->a + i * c->lda, (const float *)c->b + i * c->ldb);
    else if (c->dtype == ENG_SIM_F16)
      c->out[i] = kt->cos_f16(c->d, (const uint16_t *)c->a + i * c->lda, (const uint16_t *)c->b + i * c->ldb);
    else
      c->out[i] = kt->cos_i8(c->d, (const int8_t *)c->a + i * c->lda, (const int8_t *)c->b + i * c->ldb);
  }
}

static void rowcos_task(void *ctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  const rowcos_ctx_t *c = (const rowcos_ctx_t *)ctx;
  size_t i0 = t * c->chunk;
  if (i0 < c->m) rowcos_rows(c, i0, ENG_MIN(c->m, i0 + c->chunk));
}

eng_status_t eng_sim_rowwise_cos(const eng_kernels_t *kt, int dtype, size_t m, size_t d, const void *a, size_t lda,
                                 const void *b, size_t ldb, float *out, int parallel) {
  if (dtype < ENG_SIM_F32 || dtype > ENG_SIM_I8) return ENG_ERR_INVALID_ARG;
  if (dtype == ENG_SIM_I8 && d > ENG_SIM_I8_MAX_N) return ENG_ERR_UNSUPPORTED;
  if (m == 0) return ENG_OK;
  if (!a || !b || !out || (m > 1 && (lda < d || ldb < d))) return ENG_ERR_INVALID_ARG;
  size_t tmp;
  if (!eng_mul_size(m, lda > ldb ? lda : ldb, &tmp)) return ENG_ERR_OVERFLOW;
  rowcos_ctx_t c = {kt, dtype, m, d, lda, ldb, m, a, b, out};
  size_t threads = parallel ? (size_t)eng_get_num_threads() : 1;
  size_t work = m * (d + 16); /* no overflow: m * lda fits */
  if (threads > 1 && work >= 65536) {
    size_t tasks = ENG_MIN(threads * 4, m);
    c.chunk = (m + tasks - 1) / tasks;
    eng_parallel_for((m + c.chunk - 1) / c.chunk, rowcos_task, &c);
  } else {
    rowcos_rows(&c, 0, m);
  }
  return ENG_OK;
}

/* ---------------------------------------------------------------- cdist */
eng_status_t eng_sim_cdist_f32(const eng_kernels_t *kt, int metric, size_t m, size_t n, size_t d, const float *a,
                               size_t lda, const float *b, size_t ldb, float *out, size_t ldo, int parallel) {
  if (metric < ENG_SIM_COSINE || metric > ENG_SIM_L2SQ) return ENG_ERR_INVALID_ARG;
  if (m == 0 || n == 0) return ENG_OK;
  if (!out || ldo < n) return ENG_ERR_INVALID_ARG;
  if (d > 0 && (!a || !b || (m > 1 && lda < d) || (n > 1 && ldb < d))) return ENG_ERR_INVALID_ARG;
  size_t tmp;
  if (!eng_mul_size(m, ldo, &tmp)) return ENG_ERR_OVERFLOW;
  eng_gemm_args_t g;
  memset(&g, 0, sizeof g);
  g.m = m, g.n = n, g.k = d, g.alpha = 1.0f, g.beta = 0.0f;
  g.a = a, g.lda = lda < d ? d : lda, g.b = b, g.ldb = ldb < d ? d : ldb, g.trans_b = 1, g.c = out, g.ldc = ldo;
  eng_status_t s = eng_gemm_f32_with(kt, &g, parallel);
  if (s != ENG_OK || metric == ENG_SIM_DOT) return s;
  float *na = (float *)malloc((m + n) * sizeof(float));
  if (!na) return ENG_ERR_NOMEM;
  float *nb = na + m;
  for (size_t i = 0; i < m; i++) na[i] = d ? kt->sqnorm_f32(d, a + i * lda) : 0.0f;
  for (size_t j = 0; j < n; j++) nb[j] = d ? kt->sqnorm_f32(d, b + j * ldb) : 0.0f;
  if (metric == ENG_SIM_COSINE) {
    for (size_t i = 0; i < m; i++) na[i] = eng_sim_inv_norm(na[i]);
    for (size_t j = 0; j < n; j++) nb[j] = eng_sim_inv_norm(nb[j]);
    for (size_t i = 0; i < m; i++) {
      float *o = out + i * ldo;
      for (size_t j = 0; j < n; j++) {
        float c = o[j] * na[i] * nb[j];
        o[j] = c > 1.0f ? 1.0f : (c < -1.0f ? -1.0f : c);
      }
    }
  } else {
    for (size_t i = 0; i < m; i++) {
      float *o = out + i * ldo;
      for (size_t j = 0; j < n; j++) {
        float v = na[i] + nb[j] - 2.0f * o[j];
        o[j] = v > 0.0f ? v : 0.0f;
      }
    }
  }
  free(na);
  return ENG_OK;
}

/* ---------------------------------------------------------------- top-k heaps
 * A min-heap of (score, row) whose root is the worst kept entry: lower score is worse, and for equal scores
 * the higher row is worse (so ties go to the lower row, whatever the thread split). */
typedef struct heap {
  float *s;
  int64_t *r;
  size_t len, cap;
} heap_t;

static inline int worse(float s1, int64_t r1, float s2, int64_t r2) { return s1 < s2 || (s1 == s2 && r1 > r2); }

static void heap_sift_down(heap_t *h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, w = i;
    if (l < h->len && worse(h->s[l], h->r[l], h->s[w], h->r[w])) w = l;
    if (l + 1 < h->len && worse(h->s[l + 1], h->r[l + 1], h->s[w], h->r[w])) w = l + 1;
    if (w == i) return;
    float ts = h->s[i];
    int64_t tr = h->r[i];
    h->s[i] = h->s[w], h->r[i] = h->r[w];
    h->s[w] = ts, h->r[w] = tr;
    i = w;
  }
}

/* Rows arrive in increasing order within a task, so a full heap only takes a strictly better score. */
static inline void heap_push(heap_t *h, float s, int64_t r) {
  if (h->len < h->cap) {
    size_t i = h->len++;
    while (i > 0) {
      size_t p = (i - 1) / 2;
      if (!worse(s, r, h->s[p], h->r[p])) break;
      h->s[i] = h->s[p], h->r[i] = h->r[p];
      i = p;
    }
    h->s[i] = s, h->r[i] = r;
  } else if (s > h->s[0]) {
    h->s[0] = s, h->r[0] = r;
    heap_sift_down(h, 0);
  }
}

/* Folds nb scores (score of row b0 + i at scores[i]) into the heap. */
static void heap_fold(heap_t *h, const float *scores, size_t nb, int64_t b0) {
  size_t i = 0;
  for (; i < nb && h->len < h->cap; i++) heap_push(h, scores[i], b0 + (int64_t)i);
  float thr = h->len ? h->s[0] : -INFINITY;
  for (; i < nb; i++) {
    float s = scores[i];
    if (s > thr) {
      heap_push(h, s, b0 + (int64_t)i);
      thr = h->s[0];
    }
  }
}

/* Folds a GEMM tile (nb rows of m scores: score of gallery row b0 + i for query j at tile[i * m + j]) into the m
 * heaps, row by row: every heap has seen the same rows, so they fill up together; after that a row is compared
 * with all m thresholds at once (a loop the compiler vectorizes) and only a row with a candidate goes to the heaps.
 * Each heap gets the same pushes in the same order as heap_fold over its column would give it: the same result. */
static void heap_fold_tile(heap_t *h, size_t m, const float *tile, size_t nb, int64_t b0, float *thr) {
  size_t i = 0;
  for (; i < nb && h[0].len < h[0].cap; i++)
    for (size_t j = 0; j < m; j++) heap_push(&h[j], tile[i * m + j], b0 + (int64_t)i);
  if (i == nb) return;
  for (size_t j = 0; j < m; j++) thr[j] = h[j].s[0];
  for (; i < nb; i++) {
    const float *row = tile + i * m;
    int any = 0;
    for (size_t j = 0; j < m; j++) any |= row[j] > thr[j];
    if (!any) continue;
    for (size_t j = 0; j < m; j++)
      if (row[j] > thr[j]) {
        heap_push(&h[j], row[j], b0 + (int64_t)i);
        thr[j] = h[j].s[0];
      }
  }
}

/* ---------------------------------------------------------------- search */
typedef struct search_ctx {
  const eng_kernels_t *kt;
  const eng_sim_search_args_t *a;
  const float *qn;      /* m x d prepared f32 queries (normalized if asked) */
  eng_gemm_packed_b_t qp; /* GEMM path: qn packed once as the GEMM's B (d x m), shared by every block and task */
  const int8_t *qi;     /* i8 gallery: m x d quantized queries */
  const float *qf;      /* i8 gallery: m per-query factors */
  size_t rb;            /* gallery rows per block */
  atomic_size_t next;   /* the next block to claim: tasks take blocks one at a time, in increasing order */
  int use_gemm;
  float *res_s;         /* n_tasks x m x k */
  int64_t *res_r;
  size_t *res_len;      /* n_tasks x m */
  volatile int status;
} search_ctx_t;

static void search_task(void *vctx, size_t t, size_t n_tasks) {
  (void)n_tasks;
  search_ctx_t *c = (search_ctx_t *)vctx;
  const eng_sim_search_args_t *a = c->a;
  const eng_kernels_t *kt = c->kt;
  const size_t m = a->m, d = a->d, k = a->k, rb = c->rb;
  /* scratch: score tile (rb x m), an f32 copy of an f16 block for the GEMM path, an int32 row for i8 */
  size_t tile_n = rb * m, conv_n = (c->use_gemm && a->dtype == ENG_SIM_F16) ? rb * d : 0;
  size_t i32_n = a->dtype == ENG_SIM_I8 ? rb : 0;
  float *tile = (float *)malloc((tile_n + conv_n + m) * sizeof(float) + i32_n * sizeof(int32_t));
  heap_t *heaps = (heap_t *)malloc(m * sizeof(heap_t));
  if (!tile || !heaps) {
    free(tile);
    free(heaps);
    c->status = ENG_ERR_NOMEM;
    return;
  }
  float *conv = tile + tile_n, *thr = conv + conv_n; /* thr: each query's heap threshold (heap_fold_tile) */
  int32_t *i32 = (int32_t *)(thr + m);
  for (size_t j = 0; j < m; j++) {
    heaps[j].s = c->res_s + (t * m + j) * k;
    heaps[j].r = c->res_r + (t * m + j) * k;
    heaps[j].len = 0;
    heaps[j].cap = k;
  }
  const size_t esz = dtype_size(a->dtype);
  /* Blocks are claimed one at a time rather than split up front, so a thread that starts late or is preempted (a
   * shared machine) leaves its share to the others. Each task still sees its rows in increasing order, which
   * heap_push's tie rule relies on; the merge orders by (score, row), so the result does not depend on who took
   * which block. */
  for (;;) {
    size_t b0 = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed) * rb;
    if (b0 >= a->n) break;
    size_t nb = ENG_MIN(rb, a->n - b0);
    const char *gb = (const char *)a->g + b0 * a->ldg * esz;
    if (c->use_gemm) {
      const float *blk = (const float *)gb;
      size_t ldb = a->ldg;
      if (a->dtype == ENG_SIM_F16) {
        for (size_t i = 0; i < nb; i++) kt->cvt_f16_f32(d, (const uint16_t *)gb + i * a->ldg, conv + i * d);
        blk = conv;
        ldb = d;
      }
      /* tile (nb x m) = block (nb x d) . queries^T: the block is the GEMM's A, read in place */
      eng_gemm_args_t g;
      memset(&g, 0, sizeof g);
      g.m = nb, g.n = m, g.k = d, g.alpha = 1.0f, g.beta = 0.0f;
      g.a = blk, g.lda = ldb, g.b = c->qn, g.ldb = d, g.trans_b = 1, g.c = tile, g.ldc = m;
      eng_status_t s = eng_gemm_prepacked_f32_with(kt, &g, &c->qp, 0);
      if (s != ENG_OK) {
        c->status = (int)s;
        break;
      }
      heap_fold_tile(heaps, m, tile, nb, (int64_t)b0, thr);
    } else {
      for (size_t j = 0; j < m; j++) {
        float *row = tile + j * rb;
        if (a->dtype == ENG_SIM_F32) {
          kt->scan_f32(nb, d, c->qn + j * d, (const float *)gb, a->ldg, row);
        } else if (a->dtype == ENG_SIM_F16) {
          kt->scan_f16(nb, d, c->qn + j * d, (const uint16_t *)gb, a->ldg, row);
        } else {
          kt->scan_i8(nb, d, c->qi + j * d, (const int8_t *)gb, a->ldg, i32);
          const float qf = c->qf[j], *gs = a->g_scale + b0;
          for (size_t i = 0; i < nb; i++) row[i] = (float)i32[i] * qf * gs[i];
        }
        heap_fold(&heaps[j], row, nb, (int64_t)b0);
      }
    }
  }
  for (size_t j = 0; j < m; j++) c->res_len[t * m + j] = heaps[j].len;
  free(tile);
  free(heaps);
}

typedef struct cand {
  float s;
  int64_t r;
} cand_t;

static int cand_cmp(const void *x, const void *y) {
  const cand_t *p = (const cand_t *)x, *q = (const cand_t *)y;
  if (p->s != q->s) return p->s > q->s ? -1 : 1;
  return p->r < q->r ? -1 : (p->r > q->r);
}

eng_status_t eng_sim_search(const eng_kernels_t *kt, const eng_sim_search_args_t *a, int parallel) {
  if (!a || a->dtype < ENG_SIM_F32 || a->dtype > ENG_SIM_I8) return ENG_ERR_INVALID_ARG;
  const size_t n = a->n, d = a->d, m = a->m, k = a->k;
  if (m == 0) return ENG_OK;
  if (k == 0 || k > n || d == 0) return ENG_ERR_INVALID_ARG;
  if (!a->g || !a->q || !a->scores || !a->idx || (n > 1 && a->ldg < d) || (m > 1 && a->ldq < d))
    return ENG_ERR_INVALID_ARG;
  if (a->dtype == ENG_SIM_I8 && (!a->g_scale || d > ENG_SIM_I8_MAX_N)) return a->g_scale ? ENG_ERR_UNSUPPORTED : ENG_ERR_INVALID_ARG;
  size_t tmp, md;
  if (!eng_mul_size(n, a->ldg, &tmp) || !eng_mul_size(m, d, &md) || !eng_mul_size(md, sizeof(float) + 1, &tmp))
    return ENG_ERR_OVERFLOW;

  search_ctx_t c;
  memset(&c, 0, sizeof c);
  c.kt = kt;
  c.a = a;
  static size_t gemm_min_q = (size_t)-2, gemm_rows = 0; /* read once; a race only rereads the same values */
  if (gemm_min_q == (size_t)-2) {
    gemm_rows = env_size("ENGINE_SIM_GEMM_ROWS", 0);                /* 0: from SIM_GEMM_BLOCK_BYTES and d */
    gemm_min_q = env_size("ENGINE_SIM_GEMM_MIN_QUERIES", (size_t)-1); /* -1: the per-dtype defaults */
  }
  size_t min_q = gemm_min_q != (size_t)-1 ? gemm_min_q
                 : (a->dtype == ENG_SIM_F32 ? SIM_GEMM_MIN_QUERIES_F32 : SIM_GEMM_MIN_QUERIES_F16);
  c.use_gemm = a->dtype != ENG_SIM_I8 && min_q > 0 && m >= min_q;
  size_t rb = c.use_gemm ? (gemm_rows ? gemm_rows : ENG_MAX(SIM_GEMM_BLOCK_BYTES / (4 * d) / 6 * 6, (size_t)48))
                         : SIM_BLOCK_BYTES / (d * dtype_size(a->dtype));
  rb = ENG_MAX(rb, (size_t)4);
  c.rb = rb;

  size_t threads = parallel ? (size_t)eng_get_num_threads() : 1;
  size_t tasks = ENG_MAX((size_t)1, ENG_MIN(threads, n / SIM_MIN_ROWS_PER_TASK));
  atomic_init(&c.next, 0);

  size_t mk, tmk, bytes;
  if (!eng_mul_size(m, k, &mk) || !eng_mul_size(mk, tasks, &tmk) || !eng_mul_size(tmk, sizeof(float) + sizeof(int64_t), &bytes))
    return ENG_ERR_OVERFLOW;
  /* one allocation: prepared queries, quantized queries and factors, per-task results and lengths */
  size_t qi_n = a->dtype == ENG_SIM_I8 ? md : 0;
  size_t total = md * sizeof(float) + m * sizeof(float) + tasks * m * sizeof(size_t) + bytes + qi_n + 64;
  char *mem = (char *)malloc(total);
  if (!mem) return ENG_ERR_NOMEM;
  float *qn = (float *)mem;
  float *qf = qn + md;
  int64_t *res_r = (int64_t *)(((uintptr_t)(qf + m) + 7) & ~(uintptr_t)7);
  size_t *res_len = (size_t *)(res_r + tmk);
  float *res_s = (float *)(res_len + tasks * m);
  int8_t *qi = (int8_t *)(res_s + tmk);

  /* queries: copy (or normalize) into a contiguous m x d block */
  for (size_t j = 0; j < m; j++) {
    if (a->normalize)
      kt->l2norm_rows_f32(1, d, a->q + j * a->ldq, d, qn + j * d, d);
    else
      memcpy(qn + j * d, a->q + j * a->ldq, d * sizeof(float));
  }
  if (a->dtype == ENG_SIM_I8) { /* symmetric per-query int8 quantization */
    for (size_t j = 0; j < m; j++) {
      const float *x = qn + j * d;
      float amax = 0.0f;
      for (size_t i = 0; i < d; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
      float sc = amax > 0.0f ? 127.0f / amax : 0.0f;
      int8_t *y = qi + j * d;
      for (size_t i = 0; i < d; i++) {
        long v = lrintf(x[i] * sc);
        y[i] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
      }
      qf[j] = a->normalize ? eng_sim_inv_norm((float)kt->sqnorm_i8(d, y)) : (amax > 0.0f ? amax / 127.0f : 0.0f);
    }
  }
  c.qn = qn;
  float *qpack = NULL; /* the queries as the GEMM's B, packed once here instead of once per block and task */
  if (c.use_gemm) {
    size_t qp_n = eng_gemm_packed_b_floats(kt, d, m);
    eng_status_t s = qp_n == SIZE_MAX ? ENG_ERR_OVERFLOW : ENG_OK; /* SIZE_MAX: the bytes would overflow */
    if (s == ENG_OK && posix_memalign((void **)&qpack, 64, qp_n * sizeof(float)) != 0) s = ENG_ERR_NOMEM;
    if (s == ENG_OK) s = eng_gemm_pack_b_f32(kt, d, m, qn, d, 1, qpack, qp_n, &c.qp);
    if (s != ENG_OK) {
      free(qpack);
      free(mem);
      return s;
    }
  }
  c.qi = qi;
  c.qf = qf;
  c.res_s = res_s;
  c.res_r = res_r;
  c.res_len = res_len;
  if (tasks > 1)
    eng_parallel_for(tasks, search_task, &c);
  else
    search_task(&c, 0, 1);
  free(qpack);
  if (c.status) {
    free(mem);
    return (eng_status_t)c.status;
  }

  /* merge: every task's heap of query j, sorted best first, the first k kept */
  cand_t *cand = (cand_t *)malloc(tasks * k * sizeof(cand_t));
  if (!cand) {
    free(mem);
    return ENG_ERR_NOMEM;
  }
  for (size_t j = 0; j < m; j++) {
    size_t nc = 0;
    for (size_t t = 0; t < tasks; t++) {
      size_t len = res_len[t * m + j];
      const float *s = res_s + (t * m + j) * k;
      const int64_t *r = res_r + (t * m + j) * k;
      for (size_t i = 0; i < len; i++) cand[nc].s = s[i], cand[nc].r = r[i], nc++;
    }
    qsort(cand, nc, sizeof(cand_t), cand_cmp);
    for (size_t i = 0; i < k; i++) {
      a->scores[j * k + i] = i < nc ? cand[i].s : -INFINITY;
      a->idx[j * k + i] = i < nc ? cand[i].r : -1;
    }
  }
  free(cand);
  free(mem);
  return ENG_OK;
}

#define _POSIX_C_SOURCE 200809L
/* test_kernels.c: checks every slot of every compiled ISA kernel table against the scalar table and a
 * float64 reference.  Built and run by tests/c/run_ctests.sh (natively, with SIMDe AVX-512 emulation, and
 * cross-compiled for AArch64 under qemu).
 *
 * Tables: eng_kernels_scalar always; eng_kernels_avx2 / _avx512 / _neon when built with ENG_TEST_AVX2 /
 * ENG_TEST_AVX512 / ENG_TEST_NEON.  A table runs only if the CPU can execute it (eng_cpu_max_isa()), unless
 * built with ENG_TEST_FORCE (emulation builds).  Arguments name the tables to run (default: all compiled).
 *
 * A table's NULL slots fall back to a lower level, so each table is tested as dispatch.c would build it
 * (the "effective" table: scalar, then every compiled level of the same architecture up to this one,
 * non-NULL slots only).  Direct slot tests skip a NULL slot with a note; it is tested under its own table.
 *
 * What is checked (tolerances: eps = FLT_EPSILON):
 *  - gemm_f32 through eng_gemm_f32_with(&table, args, parallel 0 and 1): M, N over {0, 1, tile-1, tile,
 *    tile+1, 67}, K over {0, 1, 3, 4, 5, 67} and kc-1/kc/kc+1, the mc and nc block edges, all trans_a/trans_b,
 *    alpha {1, 0.5, 0}, beta {0, 1, -0.5}, padded and minimal lda/ldb/ldc, bias none/column/row, every
 *    activation.  Accumulation bound |got - ref| <= 2 (K+3) eps (|alpha| sum|a b| + |beta c| + |bias|)
 *    (K roundings of the sum, 3 of the epilogue), times the activation's Lipschitz constant, plus the
 *    activation's own error.  The same result from the scalar table must agree within twice that.
 *    C is NaN when beta == 0 (it must not be read), padding of A and B is NaN (it must not be used), and
 *    a signalling-NaN canary surrounds C and fills the gap between its rows (it must stay bit-identical).
 *  - the fused GEMM epilogue (ukr_epi / ukr_arow_epi) against the driver's separate bias_act_f32 pass, same table with
 *    those two kernels removed: every activation, bias column/row, partial tiles, two K blocks, two epilogue column
 *    groups; C bitwise equal, and the fused kernels must have run (tables without them print a note).
 *  - gemv_f32 directly (both layouts) for n = 0..2W+1, 3W-1, 4W, 1007 (W = 16), several k, misaligned
 *    pointers, y canaries, NaN y when beta == 0.
 *  - bias_act_f32 directly for the same n, every activation, bias NULL or not, bias_s 0 or not, misaligned
 *    pointers, canaries, special inputs (NaN, +-0, +-3, +-20, +-88.5, +-100, +-1000).  relu, clip and
 *    leaky_relu must be bitwise equal to scalar (and to the correctly rounded float64 value); hardswish
 *    within eps (|x| + 2 |y|) of scalar (FMA in x/6 + 1/2); sigmoid, silu, gelu, gelu_tanh within
 *    atol = rtol = 2e-6 of scalar (libm) and of float64.  NaN in gives NaN out for every activation.
 *
 * Environment: ENG_TEST_QUICK=1 shrinks the sweeps (for qemu); ENGINE_TEST_SEED sets the random seed.
 * Output: one line per table/slot with counts, then exactly "N passed, N failed"; exit 1 on any failure. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng/eng_conv.h"
#include "eng/eng_dispatch.h"
#include "eng/eng_runtime.h"

#define W 16          /* widest vector in floats (AVX-512); sizes are derived from it */
#define GUARD 40      /* canary floats before and after each output buffer */
#define MAX_REPORTS 25

static const double EPS = FLT_EPSILON;
static int g_quick = 0;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static long g_reports = 0;

/* ---------------------------------------------------------------- helpers */

static uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
#define CANARY_BITS 0x7fa5a5a5u /* a signalling NaN: arithmetic on it would quiet it, so any touch shows */
static float canary(void) { return u2f(CANARY_BITS); }
static float qnan(void) { return u2f(0x7fc00000u); }

static uint64_t rng_next(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545F4914F6CDD1Dull;
}
/* Uniform in [-1, 1), with 24 random bits. */
static float frand(void) { return (float)((int64_t)(rng_next() >> 40) - (1 << 23)) / (float)(1 << 23); }

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "test_kernels: out of memory (%zu bytes)\n", n);
    exit(2);
  }
  return p;
}
static float *falloc(size_t n) { return (float *)xmalloc(n * sizeof(float)); }
static void ffill(float *p, size_t n, float v) {
  for (size_t i = 0; i < n; i++) p[i] = v;
}

static void report(const char *fmt, ...) {
  if (g_reports++ >= MAX_REPORTS) {
    if (g_reports == MAX_REPORTS + 1) printf("  ... (further failures not printed)\n");
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  printf("  FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *act_name(int k) {
  static const char *n[] = {"none",      "relu", "clip",        "leaky_relu", "sigmoid",  "silu", "gelu",
                            "gelu_tanh", "hardswish", "tanh", "hardsigmoid", "elu",      "softplus", "exp"};
  return k >= 0 && k < ENG_ACT_COUNT ? n[k] : "?";
}

static eng_act_t make_act(int kind) {
  eng_act_t a = {kind, 0.0f, 0.0f};
  if (kind == ENG_ACT_CLIP) a.p0 = -0.5f, a.p1 = 0.75f;
  if (kind == ENG_ACT_LEAKY_RELU) a.p0 = 0.1f;
  if (kind == ENG_ACT_HARDSIGMOID) a.p0 = 0.2f, a.p1 = 0.5f;
  if (kind == ENG_ACT_ELU) a.p0 = 0.7f;
  return a;
}

static int act_transcendental(int kind) {
  return kind == ENG_ACT_SIGMOID || kind == ENG_ACT_SILU || kind == ENG_ACT_GELU || kind == ENG_ACT_GELU_TANH ||
         kind == ENG_ACT_TANH || kind == ENG_ACT_ELU || kind == ENG_ACT_SOFTPLUS || kind == ENG_ACT_EXP;
}

/* float64 reference of each activation. */
static double act_ref(const eng_act_t *a, double x) {
  if (isnan(x)) return x;
  switch (a->kind) {
    case ENG_ACT_RELU: return x < 0 ? 0.0 : x;
    case ENG_ACT_CLIP: return x < a->p0 ? a->p0 : (x > a->p1 ? a->p1 : x);
    case ENG_ACT_LEAKY_RELU: return x >= 0 ? x : (double)a->p0 * x;
    case ENG_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case ENG_ACT_SILU: return x / (1.0 + exp(-x));
    case ENG_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case ENG_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / acos(-1.0)) * (x + 0.044715 * x * x * x)));
    case ENG_ACT_HARDSWISH: {
      double t = x / 6.0 + 0.5;
      return x * (t < 0 ? 0 : (t > 1 ? 1 : t));
    }
    case ENG_ACT_TANH: return tanh(x);
    case ENG_ACT_HARDSIGMOID: {
      double t = (double)a->p0 * x + a->p1;
      return t < 0 ? 0 : (t > 1 ? 1 : t);
    }
    case ENG_ACT_ELU: return x >= 0 ? x : (double)a->p0 * expm1(x);
    case ENG_ACT_SOFTPLUS: return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x)));
    case ENG_ACT_EXP: return exp(x) > FLT_MAX ? INFINITY : exp(x); /* what float exp must give */
    default: return x;
  }
}

/* Largest |act'(x)|: how much an input error grows through the activation. */
static double act_lipschitz(const eng_act_t *a) {
  switch (a->kind) {
    case ENG_ACT_LEAKY_RELU: return fabs(a->p0) > 1 ? fabs(a->p0) : 1.0;
    case ENG_ACT_SIGMOID: return 0.25;
    case ENG_ACT_SILU: return 1.1;
    case ENG_ACT_GELU:
    case ENG_ACT_GELU_TANH: return 1.13;
    case ENG_ACT_HARDSWISH: return 1.5;
    case ENG_ACT_HARDSIGMOID: return fabs(a->p0);
    case ENG_ACT_ELU: return fabs(a->p0) > 1 ? fabs(a->p0) : 1.0;
    case ENG_ACT_EXP: return 1.0; /* exp'(z) = exp(z): gemm_case scales the bound by the value itself */
    default: return 1.0;
  }
}

/* Error the float activation itself may add at input x with result near ref. */
static double act_own_tol(int kind, double x, double ref) {
  if (act_transcendental(kind)) return 2e-6 + 2e-6 * fabs(ref);
  if (kind == ENG_ACT_HARDSWISH) return EPS * (fabs(x) * (fabs(x) / 6.0 + 1.0) + 2.0 * fabs(ref));
  if (kind == ENG_ACT_LEAKY_RELU) return 0.5 * EPS * fabs(ref);
  if (kind == ENG_ACT_HARDSIGMOID) return EPS * (fabs(x) + 1.0); /* p0 x and + p1 each rounded in float */
  return 0.0;
}

/* ---------------------------------------------------------------- tables */

typedef struct tab {
  const char *name;
  eng_isa_t isa;
  const eng_kernels_t *raw; /* as compiled: NULL slots possible */
  eng_kernels_t eff;        /* as dispatch.c would build it */
} tab_t;

typedef struct counts {
  long pass, fail;
} counts_t;

static int arch_of(eng_isa_t isa) { /* 0 portable, 1 x86-64, 2 AArch64 */
  return isa == ENG_ISA_SCALAR ? 0 : (isa == ENG_ISA_NEON ? 2 : 1);
}

static int cpu_can_run(eng_isa_t isa) {
  eng_isa_t mx = eng_cpu_max_isa();
  switch (isa) {
    case ENG_ISA_SCALAR: return 1;
    case ENG_ISA_AVX2: return mx == ENG_ISA_AVX2 || mx == ENG_ISA_AVX512;
    case ENG_ISA_AVX512: return mx == ENG_ISA_AVX512;
    case ENG_ISA_NEON: return mx == ENG_ISA_NEON;
    default: return 0;
  }
}

/* ---------------------------------------------------------------- GEMM */

typedef struct gcase {
  size_t m, n, k;
  int ta, tb;
  float alpha, beta;
  int bias_kind;
  eng_act_t act;
  size_t pad_a, pad_b, pad_c; /* extra leading-dimension floats */
  int off;                    /* 1: every buffer starts one float past an aligned malloc */
  int parallel;
} gcase_t;

static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

/* Runs one GEMM case on t (and on the scalar table when cmp_scalar). Returns 1 if it passed. */
static int gemm_case(const tab_t *t, const gcase_t *g, int cmp_scalar) {
  const size_t M = g->m, N = g->n, K = g->k;
  const size_t lda = (g->ta ? M : K) + g->pad_a, rows_a = g->ta ? K : M;
  const size_t ldb = (g->tb ? K : N) + g->pad_b, rows_b = g->tb ? N : K;
  const size_t ldc = N + g->pad_c;
  const size_t off = (size_t)g->off;
  float *abuf = falloc(rows_a * lda + off), *bbuf = falloc(rows_b * ldb + off);
  float *A = abuf + off, *B = bbuf + off;
  ffill(abuf, rows_a * lda + off, qnan()); /* padding is NaN: using it would poison C */
  ffill(bbuf, rows_b * ldb + off, qnan());
  for (size_t i = 0; i < M; i++)
    for (size_t p = 0; p < K; p++) *(g->ta ? &A[p * lda + i] : &A[i * lda + p]) = frand();
  for (size_t p = 0; p < K; p++)
    for (size_t j = 0; j < N; j++) *(g->tb ? &B[j * ldb + p] : &B[p * ldb + j]) = frand();
  const size_t clen = 2 * GUARD + M * ldc + off;
  float *cbuf = falloc(clen), *sbuf = falloc(clen), *c0 = falloc(M * N);
  ffill(cbuf, clen, canary());
  float *C = cbuf + GUARD + off;
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) C[i * ldc + j] = c0[i * N + j] = g->beta == 0.0f ? qnan() : 2.0f * frand();
  memcpy(sbuf, cbuf, clen * sizeof(float));
  size_t nbias = g->bias_kind == ENG_BIAS_COL ? N : (g->bias_kind == ENG_BIAS_ROW ? M : 0);
  float *biasbuf = falloc(nbias + off), *bias = g->bias_kind ? biasbuf + off : NULL;
  for (size_t i = 0; i < nbias; i++) bias[i] = frand();

  eng_gemm_args_t args = {M, N, K, g->alpha, g->beta, A, lda, g->ta, B, ldb, g->tb, C, ldc, bias, g->bias_kind, g->act};
  int ok = 1;
  char what[200];
  snprintf(what, sizeof what, "gemm M=%zu N=%zu K=%zu ta=%d tb=%d alpha=%g beta=%g bias=%d act=%s lda+%zu ldb+%zu ldc+%zu off=%d par=%d",
           M, N, K, g->ta, g->tb, g->alpha, g->beta, g->bias_kind, act_name(g->act.kind), g->pad_a, g->pad_b, g->pad_c,
           g->off, g->parallel);
  eng_status_t st = eng_gemm_f32_with(&t->eff, &args, g->parallel);
  if (st != ENG_OK) {
    report("%s %s: status %s", t->name, what, eng_status_str(st));
    ok = 0;
  }
  if (cmp_scalar) {
    eng_gemm_args_t sargs = args;
    sargs.c = sbuf + GUARD + off;
    st = eng_gemm_f32_with(&eng_kernels_scalar, &sargs, 0);
    if (st != ENG_OK) {
      report("%s %s: scalar status %s", t->name, what, eng_status_str(st));
      ok = 0;
    }
  }
  /* canaries: everything in the buffer that is not an element of C */
  for (size_t q = 0; q < clen && ok; q++) {
    size_t r = q < GUARD + off ? SIZE_MAX : q - GUARD - off;
    int inside = r != SIZE_MAX && r < M * ldc && r % ldc < N;
    if (!inside && f2u(cbuf[q]) != CANARY_BITS) {
      report("%s %s: canary at buffer offset %zu (C offset %lld) overwritten with %g", t->name, what, q,
             (long long)q - (long long)(GUARD + off), cbuf[q]);
      ok = 0;
    }
  }
  const double lip = act_lipschitz(&g->act);
  for (size_t i = 0; i < M && ok; i++) {
    for (size_t j = 0; j < N && ok; j++) {
      double s = 0.0, sa = 0.0;
      if (g->alpha != 0.0f) {
        for (size_t p = 0; p < K; p++) {
          double av = g->ta ? A[p * lda + i] : A[i * lda + p];
          double bv = g->tb ? B[j * ldb + p] : B[p * ldb + j];
          s += av * bv;
          sa += fabs(av * bv);
        }
      }
      double cv = g->beta == 0.0f ? 0.0 : (double)g->beta * c0[i * N + j];
      double bv = g->bias_kind == ENG_BIAS_COL ? bias[j] : (g->bias_kind == ENG_BIAS_ROW ? bias[i] : 0.0);
      double z = (double)g->alpha * s + cv + bv;
      double ref = act_ref(&g->act, z);
      double e = 2.0 * (double)(K + 3) * EPS * (fabs(g->alpha) * sa + fabs(cv) + fabs(bv));
      double l = g->act.kind == ENG_ACT_EXP ? (isinf(ref) ? 0.0 : exp(z + e)) : lip;
      double tol = l * e + act_own_tol(g->act.kind, z, ref) + 1e-30;
      float got = C[i * ldc + j];
      if (!(fabs(got - ref) <= tol)) {
        report("%s %s: C[%zu][%zu] = %.9g, float64 reference %.9g (tol %.3g)", t->name, what, i, j, got, ref, tol);
        ok = 0;
      }
      if (cmp_scalar && ok) {
        float sv = sbuf[GUARD + off + i * ldc + j];
        if (!(fabs(got - sv) <= 2.0 * tol)) {
          report("%s %s: C[%zu][%zu] = %.9g, scalar table %.9g (tol %.3g)", t->name, what, i, j, got, sv, 2.0 * tol);
          ok = 0;
        }
      }
    }
  }
  free(abuf), free(bbuf), free(cbuf), free(sbuf), free(c0), free(biasbuf);
  return ok;
}

static void gemm_fused_tests(const tab_t *t, counts_t *cnt);

static void gemm_tests(const tab_t *t, counts_t *cnt) {
  const int cmp = t->isa != ENG_ISA_SCALAR;
  const eng_gemm_f32_impl_t *im = t->eff.gemm_f32;
  const size_t mr = im->mr, nr = im->nr;
  const float alphas[3] = {1.0f, 0.5f, 0.0f}, betas[3] = {0.0f, 1.0f, -0.5f};
  size_t ms[6] = {0, 1, mr - 1, mr, mr + 1, 67}, ns[6] = {0, 1, nr - 1, nr, nr + 1, 67};
  size_t ks_full[6] = {0, 1, 3, 4, 5, 67}, ks_quick[4] = {0, 1, 5, 67};
  const size_t *ks = g_quick ? ks_quick : ks_full;
  const size_t nk = g_quick ? 4 : 6;
  long idx = 0;
#define RUN(gc)                          \
  do {                                   \
    if (gemm_case(t, &(gc), cmp))        \
      cnt->pass++;                       \
    else                                 \
      cnt->fail++;                       \
  } while (0)

  /* 1. size sweep x layouts; the scalar parameters rotate so every combination recurs */
  for (int mi = 0; mi < 6; mi++)
    for (int ni = 0; ni < 6; ni++)
      for (size_t ki = 0; ki < nk; ki++)
        for (int tr = 0; tr < 4; tr++) {
          if (g_quick && (mi == 2 || ni == 2) && tr != 0) continue;
          long i = idx++;
          gcase_t g = {ms[mi], ns[ni], ks[ki], tr >> 1, tr & 1, alphas[i % 3], betas[(i / 3) % 3], (int)((i / 9) % 3),
                       make_act((int)((i / 27) % ENG_ACT_COUNT)), (size_t)(i % 4 ? 3 : 0), (size_t)(i % 5 ? 1 : 0),
                       (size_t)(i % 3 ? 5 : 0), (int)(i % 2), 0};
          for (int par = 0; par < 2; par++) {
            g.parallel = par;
            RUN(g);
          }
        }

  /* 2. every alpha x beta x bias x activation on a few shapes, including the GEMV paths (M or N == 1) */
  size_t shapes[4][3] = {{mr + 1, 2 * nr + 1, 7}, {1, 2 * W + 3, 9}, {2 * W + 3, 1, 9}, {2 * mr + 3, nr - 1, 67}};
  int nshapes = g_quick ? 3 : 4;
  for (int s = 0; s < nshapes; s++)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++)
        for (int bk = 0; bk < 3; bk++)
          for (int ak = 0; ak < ENG_ACT_COUNT; ak++) {
            long i = idx++;
            gcase_t g = {shapes[s][0], shapes[s][1], shapes[s][2], (int)(i % 2), (int)((i / 2) % 2), alphas[a], betas[b],
                         bk, make_act(ak), 2, 1, 3, (int)((i / 4) % 2), (int)((i / 8) % 2)};
            RUN(g);
          }

  /* 3. K block edges (kc-1, kc, kc+1) and the mc/nc block edges, all layouts, serial and parallel */
  size_t kc = im->kc;
  size_t edges[][3] = {{mr + 1, nr + 1, kc - 1}, {mr + 1, nr + 1, kc}, {mr + 1, nr + 1, kc + 1}, {67, 67, kc + 1},
                       {1, 67, kc + 1},          {67, 1, kc + 1},     {im->mc + 1, nr + 1, 5}, {mr + 1, im->nc + 1, 3}};
  int nedges = (int)(sizeof edges / sizeof edges[0]);
  for (int e = 0; e < nedges; e++)
    for (int tr = 0; tr < 4; tr++) {
      if (g_quick && tr != 0 && tr != 3) continue;
      long i = idx++;
      gcase_t g = {edges[e][0], edges[e][1], edges[e][2], tr >> 1, tr & 1, alphas[i % 2], betas[(i / 2) % 3],
                   (int)(i % 3), make_act(i % 2 ? ENG_ACT_NONE : ENG_ACT_SILU), 1, 2, 3, (int)(e % 2), 0};
      for (int par = 0; par < 2; par++) {
        g.parallel = par;
        RUN(g);
      }
    }
#undef RUN
  gemm_fused_tests(t, cnt);
}

/* ---------------------------------------------------------------- GEMM: fused epilogue == separate pass */

/* The table's fused kernels, wrapped so the test can tell they ran (the driver picks them on its own). */
static const eng_gemm_f32_impl_t *g_fused_real;
static long g_fused_calls;
static void fused_ukr_epi_counted(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b,
                                  float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                  const eng_gemm_epi_t *epi) {
  __atomic_fetch_add(&g_fused_calls, 1, __ATOMIC_RELAXED);
  g_fused_real->ukr_epi(kc, a, b, c, ldc, m, n, alpha, beta, epi);
}
static void fused_ukr_arow_epi_counted(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                                       float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                       const eng_gemm_epi_t *epi) {
  __atomic_fetch_add(&g_fused_calls, 1, __ATOMIC_RELAXED);
  g_fused_real->ukr_arow_epi(kc, a, lda, b, c, ldc, m, n, alpha, beta, epi);
}

/* One GEMM through the driver twice: with the table's ukr_epi / ukr_arow_epi (bias and activation applied as the last
 * K block's tile is stored) and with both set to NULL in a copy of the table (tiles stored, then bias_act_f32 over
 * the rows). The two C buffers, canaries around and between the rows included, must be bitwise equal, and the fused
 * kernels must have been called. A's rows are scaled by 1..64 so the activations' inputs reach +-100 (the EXP
 * overflow range, the sigmoid/tanh saturation); every fifth row is zero, so a negative alpha gives -0 products (the
 * separate pass adds its row bias 0 even without a row bias, turning -0 into +0; the fused store must too); C (beta
 * != 0) holds NaN, +-0, +-89, +-1000 among random values. */
static int fused_case(const tab_t *t, size_t M, size_t N, size_t K, int ta, float alpha, float beta, int bias_kind,
                      eng_act_t act, int parallel) {
  const size_t lda = (ta ? M : K) + 1, ldb = N + 2, ldc = N + 3;
  float *A = falloc((ta ? K : M) * lda), *B = falloc(K * ldb);
  ffill(A, (ta ? K : M) * lda, qnan());
  ffill(B, K * ldb, qnan());
  static const float scales[5] = {1.0f, 4.0f, 0.0f, 16.0f, 64.0f};
  for (size_t i = 0; i < M; i++)
    for (size_t p = 0; p < K; p++) *(ta ? &A[p * lda + i] : &A[i * lda + p]) = frand() * scales[i % 5];
  for (size_t p = 0; p < K; p++)
    for (size_t j = 0; j < N; j++) B[p * ldb + j] = frand();
  const size_t clen = 2 * GUARD + M * ldc;
  float *fbuf = falloc(clen), *pbuf = falloc(clen);
  ffill(fbuf, clen, canary());
  static const float specials[7] = {0.0f, -0.0f, 89.0f, -89.0f, 1000.0f, -1000.0f, 0.0f};
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      size_t q = i * N + j;
      float v = 2.0f * frand();
      if (q % 5 == 0) v = q % 35 == 0 ? qnan() : specials[(q / 5) % 7];
      fbuf[GUARD + i * ldc + j] = beta == 0.0f ? qnan() : v;
    }
  memcpy(pbuf, fbuf, clen * sizeof(float));
  const size_t nbias = bias_kind == ENG_BIAS_COL ? N : (bias_kind == ENG_BIAS_ROW ? M : 0);
  float *bias = falloc(nbias + 1);
  for (size_t i = 0; i < nbias; i++) bias[i] = i % 11 == 3 ? -0.0f : 4.0f * frand();

  eng_gemm_f32_impl_t fused = *t->eff.gemm_f32, plain = fused;
  g_fused_real = t->eff.gemm_f32;
  fused.ukr_epi = fused.ukr_epi ? fused_ukr_epi_counted : NULL;
  fused.ukr_arow_epi = fused.ukr_arow_epi ? fused_ukr_arow_epi_counted : NULL;
  plain.ukr_epi = NULL;
  plain.ukr_arow_epi = NULL;
  eng_kernels_t kf = t->eff, kp = t->eff;
  kf.gemm_f32 = &fused;
  kp.gemm_f32 = &plain;
  eng_gemm_args_t args = {M, N, K, alpha, beta, A, lda, ta, B, ldb, 0, fbuf + GUARD, ldc,
                          nbias ? bias : NULL, bias_kind, act};
  char what[200];
  snprintf(what, sizeof what, "gemm fused epilogue M=%zu N=%zu K=%zu ta=%d alpha=%g beta=%g bias=%d act=%s par=%d", M, N,
           K, ta, alpha, beta, bias_kind, act_name(act.kind), parallel);
  int ok = 1;
  g_fused_calls = 0;
  eng_status_t st = eng_gemm_f32_with(&kf, &args, parallel);
  const long calls = __atomic_load_n(&g_fused_calls, __ATOMIC_RELAXED);
  args.c = pbuf + GUARD;
  eng_status_t sp = eng_gemm_f32_with(&kp, &args, parallel);
  if (st != ENG_OK || sp != ENG_OK) {
    report("%s %s: status %s (fused), %s (separate)", t->name, what, eng_status_str(st), eng_status_str(sp));
    ok = 0;
  }
  if (ok && calls == 0) {
    report("%s %s: the fused kernels were never called", t->name, what);
    ok = 0;
  }
  for (size_t q = 0; q < clen && ok; q++) {
    size_t r = q < GUARD ? SIZE_MAX : q - GUARD;
    int inside = r != SIZE_MAX && r < M * ldc && r % ldc < N;
    if (!inside && f2u(fbuf[q]) != CANARY_BITS) {
      report("%s %s: canary at C offset %lld overwritten with %g", t->name, what, (long long)q - GUARD, fbuf[q]);
      ok = 0;
    } else if (f2u(fbuf[q]) != f2u(pbuf[q])) {
      report("%s %s: C[%zu][%zu] = %.9g (0x%08x) fused, %.9g (0x%08x) separate pass", t->name, what, r / ldc, r % ldc,
             fbuf[q], f2u(fbuf[q]), pbuf[q], f2u(pbuf[q]));
      ok = 0;
    }
  }
  free(A), free(B), free(fbuf), free(pbuf), free(bias);
  return ok;
}

/* Every activation x bias (none with an activation, column, row) on shapes with partial tiles in M and N, several
 * tiles, two epilogue column groups (N > 256), two K blocks (the last one with beta 1), A transposed or not (packed
 * or read in place where the table has both fused kernels); alpha, beta and threading rotate. */
static void gemm_fused_tests(const tab_t *t, counts_t *cnt) {
  const eng_gemm_f32_impl_t *im = t->eff.gemm_f32;
  if (!im->ukr_epi && !im->ukr_arow_epi) {
    printf("%-8s %-14s fused epilogue not tested: this table has no ukr_epi / ukr_arow_epi\n", t->name, "gemm_f32");
    return;
  }
  const size_t mr = im->mr, nr = im->nr;
  const size_t shapes[][3] = {{2 * mr + 3, 2 * nr + 5, 7}, {mr, nr, 1},          {mr - 1, nr - 1, 67},
                              {mr + 1, 300, 9},            {3 * mr + 1, nr + 3, im->kc + 5}};
  const int nshapes = (int)(sizeof shapes / sizeof shapes[0]); /* all, even quick: 410 small GEMMs */
  /* alpha and beta not powers of 2: alpha acc + beta c rounds differently with and without FMA */
  const float alphas[2] = {1.0f, -1.3f}, betas[3] = {0.0f, 1.0f, 0.3f};
  long idx = 0;
  for (int s = 0; s < nshapes; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int bk = 0; bk < 3; bk++)
        for (int ak = 0; ak < ENG_ACT_COUNT; ak++) {
          if (bk == ENG_BIAS_NONE && ak == ENG_ACT_NONE) continue; /* no epilogue: nothing is fused */
          long i = idx++;
          if (fused_case(t, shapes[s][0], shapes[s][1], shapes[s][2], ta, alphas[i % 2], betas[(i / 2) % 3], bk,
                         make_act(ak), (int)((i / 6) % 2)))
            cnt->pass++;
          else
            cnt->fail++;
        }
}

/* ---------------------------------------------------------------- GEMV */

static const size_t *test_ns(size_t *count) {
  static size_t ns[2 * W + 2 + 3];
  size_t c = 0;
  for (size_t n = 0; n <= 2 * W + 1; n++) ns[c++] = n;
  ns[c++] = 3 * W - 1;
  ns[c++] = 4 * W;
  ns[c++] = 1007;
  *count = c;
  return ns;
}

static int gemv_case(const tab_t *t, eng_gemv_f32_fn fn, size_t n, size_t k, int tb, float alpha, float beta, size_t pad,
                     int off, int cmp_scalar) {
  const size_t ldb = (tb ? k : n) + pad, rows = tb ? n : k;
  float *bbuf = falloc(rows * ldb + 1), *xbuf = falloc(k + 1);
  float *Bm = bbuf + off, *x = xbuf + off;
  ffill(bbuf, rows * ldb + 1, qnan());
  ffill(xbuf, k + 1, qnan());
  for (size_t p = 0; p < k; p++) x[p] = frand();
  for (size_t p = 0; p < k; p++)
    for (size_t j = 0; j < n; j++) *(tb ? &Bm[j * ldb + p] : &Bm[p * ldb + j]) = frand();
  const size_t ylen = n + 2 * GUARD + 1;
  float *ybuf = falloc(ylen), *sbuf = falloc(ylen), *y0 = falloc(n);
  ffill(ybuf, ylen, canary());
  float *y = ybuf + GUARD + off;
  for (size_t j = 0; j < n; j++) y[j] = y0[j] = beta == 0.0f ? qnan() : frand();
  memcpy(sbuf, ybuf, ylen * sizeof(float));
  fn(n, k, alpha, x, Bm, ldb, tb, beta, y);
  if (cmp_scalar) eng_gemv_f32_scalar(n, k, alpha, x, Bm, ldb, tb, beta, sbuf + GUARD + off);
  int ok = 1;
  for (size_t q = 0; q < ylen && ok; q++) {
    int inside = q >= GUARD + (size_t)off && q < GUARD + (size_t)off + n;
    if (!inside && f2u(ybuf[q]) != CANARY_BITS) {
      report("%s gemv n=%zu k=%zu tb=%d off=%d: canary at y offset %lld overwritten", t->name, n, k, tb, off,
             (long long)q - (long long)(GUARD + off));
      ok = 0;
    }
  }
  for (size_t j = 0; j < n && ok; j++) {
    double s = 0.0, sa = 0.0;
    for (size_t p = 0; p < k; p++) {
      double v = (double)x[p] * (tb ? Bm[j * ldb + p] : Bm[p * ldb + j]);
      s += v;
      sa += fabs(v);
    }
    double cv = beta == 0.0f ? 0.0 : (double)beta * y0[j];
    double ref = alpha * s + cv;
    double tol = 2.0 * (double)(k + 2) * EPS * (fabs(alpha) * sa + fabs(cv)) + 1e-30;
    if (!(fabs(y[j] - ref) <= tol)) {
      report("%s gemv n=%zu k=%zu tb=%d alpha=%g beta=%g pad=%zu off=%d: y[%zu] = %.9g, float64 %.9g (tol %.3g)", t->name,
             n, k, tb, alpha, beta, pad, off, j, y[j], ref, tol);
      ok = 0;
    } else if (cmp_scalar && !(fabs(y[j] - sbuf[GUARD + off + j]) <= 2 * tol)) {
      report("%s gemv n=%zu k=%zu tb=%d alpha=%g beta=%g: y[%zu] = %.9g, scalar %.9g (tol %.3g)", t->name, n, k, tb, alpha,
             beta, j, y[j], sbuf[GUARD + off + j], 2 * tol);
      ok = 0;
    }
  }
  free(bbuf), free(xbuf), free(ybuf), free(sbuf), free(y0);
  return ok;
}

static void gemv_tests(const tab_t *t, counts_t *cnt) {
  eng_gemv_f32_fn fn = t->raw->gemv_f32;
  const int cmp = t->isa != ENG_ISA_SCALAR;
  size_t nn;
  const size_t *ns = test_ns(&nn);
  const size_t ks[] = {0, 1, 7, W, W + 1, 67};
  const float alphas[3] = {1.0f, 0.5f, 0.0f}, betas[3] = {0.0f, 1.0f, -0.5f};
  long idx = 0;
  for (size_t a = 0; a < nn; a++)
    for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
      for (int tb = 0; tb < 2; tb++) {
        if (g_quick && ns[a] > 8 && ns[a] < 2 * W && ns[a] % 4 != 1 && ns[a] % 4 != 0) continue;
        long i = idx++;
        int ok = gemv_case(t, fn, ns[a], ks[b], tb, alphas[i % 3], betas[(i / 3) % 3], (size_t)(i % 4 ? 3 : 0),
                           (int)((i / 2) % 2), cmp);
        ok ? cnt->pass++ : cnt->fail++;
      }
  /* long reductions and wide outputs: several blocks of the kernels' column blocking */
  const size_t big[][2] = {{3, 1007}, {1007, 3}, {1007, 1007}, {2 * W + 1, 4 * W + 3}};
  for (size_t q = 0; q < sizeof big / sizeof big[0]; q++)
    for (int tb = 0; tb < 2; tb++) {
      if (g_quick && q == 2) continue;
      long i = idx++;
      int ok = gemv_case(t, fn, big[q][0], big[q][1], tb, alphas[i % 2], betas[(i / 2) % 3], 1, (int)(i % 2), cmp);
      ok ? cnt->pass++ : cnt->fail++;
    }
}

/* ---------------------------------------------------------------- bias + activation */

static int bias_act_case(const tab_t *t, eng_bias_act_f32_fn fn, size_t n, const eng_act_t *act, int with_bias,
                         float bias_s, int off) {
  static const float specials[] = {0.0f, -0.0f, 3.0f, -3.0f, 20.0f, -20.0f, 88.5f, -88.5f, 100.0f, -100.0f, 1000.0f, -1000.0f};
  const size_t nsp = sizeof specials / sizeof specials[0];
  const size_t ylen = n + 2 * GUARD + 1;
  float *ybuf = falloc(ylen), *sbuf = falloc(ylen), *bbuf = falloc(n + 1), *in = falloc(n);
  ffill(ybuf, ylen, canary());
  float *y = ybuf + GUARD + off, *bias = with_bias ? bbuf + off : NULL;
  for (size_t j = 0; j < n; j++) {
    uint64_t r = rng_next() >> 32;
    if (r % 7 == 0)
      y[j] = specials[(r >> 8) % nsp];
    else if (r % 11 == 1)
      y[j] = qnan();
    else
      y[j] = 8.0f * frand();
    if (bias) bias[j] = (r % 7 == 0) ? 0.0f : frand(); /* keep most specials exact */
  }
  if (n > 0) y[n - 1] = qnan(); /* the masked tail must propagate NaN too */
  for (size_t j = 0; j < n; j++) { /* the activation input, rounded exactly as the contract says */
    float v = y[j] + bias_s;
    if (bias) v += bias[j];
    in[j] = v;
  }
  memcpy(sbuf, ybuf, ylen * sizeof(float));
  fn(n, y, bias, bias_s, act);
  float *sy = sbuf + GUARD + off;
  eng_bias_act_f32_scalar(n, sy, bias, bias_s, act);
  int ok = 1;
  char what[160];
  snprintf(what, sizeof what, "bias_act n=%zu act=%s(%g,%g) bias=%d bias_s=%g off=%d", n, act_name(act->kind), act->p0,
           act->p1, with_bias, bias_s, off);
  for (size_t q = 0; q < ylen && ok; q++) {
    int inside = q >= GUARD + (size_t)off && q < GUARD + (size_t)off + n;
    if (!inside && f2u(ybuf[q]) != CANARY_BITS) {
      report("%s %s: canary at y offset %lld overwritten", t->name, what, (long long)q - (long long)(GUARD + off));
      ok = 0;
    }
  }
  const int kind = act->kind;
  for (size_t j = 0; j < n && ok; j++) {
    float x = in[j], got = y[j], sv = sy[j];
    double ref = act_ref(act, x);
    if (isnan(x) || isnan(sv)) {
      if (!isnan(got) || !isnan(sv)) {
        report("%s %s: y[%zu]: input %g gives %g, scalar %g (NaN must propagate)", t->name, what, j, x, got, sv);
        ok = 0;
      }
      continue;
    }
    if (kind == ENG_ACT_NONE || kind == ENG_ACT_RELU || kind == ENG_ACT_CLIP || kind == ENG_ACT_LEAKY_RELU) {
      if (f2u(got) != f2u(sv) || f2u(got) != f2u((float)ref)) {
        report("%s %s: y[%zu]: input %.9g gives %.9g, scalar %.9g, float64 %.9g (must be bitwise equal)", t->name, what, j,
               x, got, sv, ref);
        ok = 0;
      }
    } else if (kind == ENG_ACT_HARDSIGMOID) {
      if (f2u(got) != f2u(sv) || !(fabs(got - ref) <= act_own_tol(kind, x, ref))) {
        report("%s %s: y[%zu]: input %.9g gives %.9g, scalar %.9g, float64 %.9g (bitwise vs scalar)", t->name, what, j, x,
               got, sv, ref);
        ok = 0;
      }
    } else if (kind == ENG_ACT_HARDSWISH) {
      double tol = EPS * (fabs(x) + 2.0 * fabs(sv));
      if (!(fabs(got - sv) <= tol) || !(fabs(got - ref) <= act_own_tol(kind, x, ref))) {
        report("%s %s: y[%zu]: input %.9g gives %.9g, scalar %.9g, float64 %.9g (tol %.3g)", t->name, what, j, x, got, sv,
               ref, tol);
        ok = 0;
      }
    } else {
      double tol_s = 2e-6 + 2e-6 * fabs(sv), tol_r = act_own_tol(kind, x, ref);
      if (!(got == sv || fabs(got - sv) <= tol_s) || !(got == ref || fabs(got - ref) <= tol_r)) { /* == : inf */
        report("%s %s: y[%zu]: input %.9g gives %.9g, scalar %.9g, float64 %.9g (atol=rtol=2e-6)", t->name, what, j, x, got,
               sv, ref);
        ok = 0;
      }
    }
  }
  free(ybuf), free(sbuf), free(bbuf), free(in);
  return ok;
}

static void bias_act_tests(const tab_t *t, counts_t *cnt) {
  eng_bias_act_f32_fn fn = t->raw->bias_act_f32;
  size_t nn;
  const size_t *ns = test_ns(&nn);
  long idx = 0;
  for (size_t a = 0; a < nn; a++)
    for (int kind = 0; kind < ENG_ACT_COUNT; kind++)
      for (int v = 0; v < 4; v++) {
        if (g_quick && v % 3 != 0 && ns[a] > 2 * W + 1) continue;
        long i = idx++;
        eng_act_t act = make_act(kind);
        if (kind == ENG_ACT_CLIP && v == 3) act.p0 = 0.0f, act.p1 = 6.0f; /* Relu6 */
        if (kind == ENG_ACT_LEAKY_RELU && v == 3) act.p0 = -1.5f;
        int ok = bias_act_case(t, fn, ns[a], &act, v & 1, (v & 2) ? 0.25f : 0.0f, (int)(i % 2));
        ok ? cnt->pass++ : cnt->fail++;
      }
}

/* ---------------------------------------------------------------- fma probe (the benchmarks' peak) */
/* Every lane against its own chain computed here: fmaf (one rounding) for the SIMD tiers, multiply then add for
 * scalar, bitwise; lanes past the returned count untouched; b = c = 1 from 0 counts the steps exactly. */
static void fma_probe_tests(const tab_t *t, counts_t *cnt) {
  eng_fma_probe_f32_fn fn = t->raw->fma_probe_f32;
  const int fused = t->isa != ENG_ISA_SCALAR;
  const uint64_t iters_list[] = {0, 1, 7, 1000};
  float x[ENG_FMA_PROBE_MAX_LANES + 8], x0[ENG_FMA_PROBE_MAX_LANES + 8];
  for (int v = 0; v < 5; v++) {
    const uint64_t iters = v < 4 ? iters_list[v] : 3000;
    const float b = v < 4 ? 0.5f + 0.5f * frand() : 1.0f, c = v < 4 ? frand() : 1.0f;
    for (size_t l = 0; l < ENG_FMA_PROBE_MAX_LANES + 8; l++) x[l] = x0[l] = v < 4 ? frand() : 0.0f;
    size_t lanes = fn(iters, b, c, x);
    int ok = lanes >= 1 && lanes <= ENG_FMA_PROBE_MAX_LANES;
    for (size_t l = 0; ok && l < ENG_FMA_PROBE_MAX_LANES + 8; l++) {
      float r = x0[l];
      if (l < lanes)
        for (uint64_t i = 0; i < iters; i++) r = fused ? fmaf(r, b, c) : r * b + c;
      if (f2u(r) != f2u(x[l])) {
        printf("%-8s fma_probe_f32 FAIL: iters %llu lane %zu of %zu: got %a, want %a\n", t->name,
               (unsigned long long)iters, l, lanes, x[l], r);
        ok = 0;
      }
    }
    if (ok && v == 4 && x[0] != 3000.0f) ok = 0;
    ok ? cnt->pass++ : cnt->fail++;
  }
}

/* ---------------------------------------------------------------- op kernels (act, binary, softmax, ...) */
#include "test_ops.inc"
#include "test_conv.inc"

/* ---------------------------------------------------------------- main */

/* tests/c/test_sim.c: the similarity slots (returns 0 for a slot it does not know). */
int eng_test_sim_slot(const char *tname, const eng_kernels_t *t, int slot, int quick, long *pass, long *fail);
/* tests/c/test_runtime.c: the per-thread workspace helper (ISA-neutral: runs once). */
void eng_test_runtime(long *pass, long *fail);

static const char *const slot_names[ENG_KERNEL_COUNT] = {
#define ENG_KERNEL(name, type) #name,
#include "eng/eng_kernel_list.h"
#undef ENG_KERNEL
};

int main(int argc, char **argv) {
  const char *q = getenv("ENG_TEST_QUICK");
  g_quick = q && *q && strcmp(q, "0") != 0;
  const char *seed = getenv("ENGINE_TEST_SEED");
  unsigned long long seed_v = seed && *seed ? strtoull(seed, NULL, 0) : 0;
  if (seed_v) g_rng = seed_v * 2654435761ull + 1;

  tab_t tabs[4];
  int nt = 0;
  tabs[nt++] = (tab_t){"scalar", ENG_ISA_SCALAR, &eng_kernels_scalar, {0}};
#if defined(ENG_TEST_AVX2)
  tabs[nt++] = (tab_t){"avx2", ENG_ISA_AVX2, &eng_kernels_avx2, {0}};
#endif
#if defined(ENG_TEST_AVX512)
  tabs[nt++] = (tab_t){"avx512", ENG_ISA_AVX512, &eng_kernels_avx512, {0}};
#endif
#if defined(ENG_TEST_NEON)
  tabs[nt++] = (tab_t){"neon", ENG_ISA_NEON, &eng_kernels_neon, {0}};
#endif
  /* effective tables: scalar, then each compiled level of the same architecture up to this one */
  for (int i = 0; i < nt; i++) {
    tabs[i].eff = eng_kernels_scalar;
    for (int j = 1; j <= i; j++) {
      if (arch_of(tabs[j].isa) != arch_of(tabs[i].isa)) continue;
      const void *const *src = (const void *const *)tabs[j].raw;
      void **dst = (void **)&tabs[i].eff;
      for (int s = 0; s < ENG_KERNEL_COUNT; s++)
        if (src[s]) dst[s] = (void *)src[s];
    }
  }

  printf("test_kernels: cpu max isa %s, %d pool threads, seed %llu%s%s\n", eng_isa_name(eng_cpu_max_isa()),
         eng_get_num_threads(), seed_v, g_quick ? ", quick sweeps" : "",
#if defined(ENG_TEST_FORCE)
         ", forced (emulation build: every table runs)"
#else
         ""
#endif
  );
  long pass = 0, fail = 0;
  int named = 0;
  for (int i = 0; i < nt; i++) {
    const tab_t *t = &tabs[i];
    if (argc > 1) {
      int wanted = 0;
      for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], t->name) == 0;
      if (!wanted) continue;
      named++;
    }
    int runnable = cpu_can_run(t->isa);
#if defined(ENG_TEST_FORCE)
    runnable = 1;
#endif
    if (!runnable) {
      printf("%-8s skipped: this CPU cannot execute it (max isa %s)\n", t->name, eng_isa_name(eng_cpu_max_isa()));
      continue;
    }
    const void *const *raw = (const void *const *)t->raw;
    for (int s = 0; s < ENG_KERNEL_COUNT; s++) {
      if (!raw[s]) {
        printf("%-8s %-14s skipped: NULL slot, falls back to a lower level (tested with that table)\n", t->name,
               slot_names[s]);
        continue;
      }
      counts_t c = {0, 0};
      double t0 = now_s();
      if (s == ENG_SLOT_gemm_f32) gemm_tests(t, &c);
      else if (s == ENG_SLOT_gemv_f32) gemv_tests(t, &c);
      else if (s == ENG_SLOT_bias_act_f32) bias_act_tests(t, &c);
      else if (s == ENG_SLOT_conv_f32) conv_tests(t, &c);
      else if (s == ENG_SLOT_fma_probe_f32) fma_probe_tests(t, &c);
      else if (ops_tests(t, s, &c)) {
      } else if (eng_test_sim_slot(t->name, &t->eff, s, g_quick, &c.pass, &c.fail)) { /* tests/c/test_sim.c */
      } else {
        printf("%-8s %-14s FAIL: no test for this slot (add one to tests/c/test_kernels.c)\n", t->name, slot_names[s]);
        c.fail++;
      }
      printf("%-8s %-14s %6ld passed %4ld failed  %.2fs\n", t->name, slot_names[s], c.pass, c.fail, now_s() - t0);
      fflush(stdout);
      pass += c.pass;
      fail += c.fail;
    }
  }
  eng_test_runtime(&pass, &fail);
  if (argc > 1 && named != argc - 1) {
    printf("FAIL: a table named on the command line is not compiled into this program\n");
    fail++;
  }
  printf("%ld passed, %ld failed\n", pass, fail);
  return fail ? 1 : 0;
}

#define _POSIX_C_SOURCE 200809L
/* test_sim.c: checks the similarity slots (csrc/kernels/sim/) of one kernel table against the scalar table
 * and a float64 / int64 reference. Called from test_kernels.c's main for every table it runs (natively, under
 * SIMDe AVX-512 emulation and under qemu-aarch64), through eng_test_sim_slot().
 *
 * Sizes: n = 0..2W+1, 3W-1, 4W, 1007 (W = 16), pointers misaligned by one element every other case.
 *  - dot/sqnorm f32, f16: |got - ref| <= 2 (n+1) eps sum|a b| (+ 1e-30), and within twice that of scalar.
 *  - cos f32, f16: |got - ref| <= 2 (n+4) eps (sum|a b| / (|a| |b|) + 1); exactly 0 for a zero vector.
 *  - i8 dot/sqnorm/cos: bitwise equal to scalar and (dot, sqnorm) to the int64 reference, incl. n = 65536 of -128.
 *  - l2norm_rows f32: |y - x/|x|| <= 2 (n+2) eps |x_j|/|x| + eps |y|; zero rows stay zero; the gap between rows
 *    (ldy > n) is a canary that must stay bit-identical; in place gives the same as out of place.
 *  - l2norm_rows f16: within one binary16 ulp (+ 2^-24) of the float64 value, rounded from f32.
 *  - scans f32/f16/i8: rows 0..9 and 37, ldg > d, each output against dot's bound; canary after out.
 *  - cvt f16->f32: all 65536 bit patterns, bitwise equal to scalar. f32->f16: 200k random bit patterns, every
 *    half-way point between neighbouring binary16 values, +-0, +-inf, NaNs: bitwise equal to scalar (so the
 *    scalar reference is checked against F16C / FCVTN wherever those run). */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_dispatch.h"
#include "../../csrc/kernels/sim/sim_internal.h"

#define SW 16
static const double SEPS = FLT_EPSILON;
static uint64_t s_rng = 0x243F6A8885A308D3ull;
static long s_reports = 0;
static int s_quick = 0;

static uint64_t srng(void) {
  s_rng ^= s_rng >> 12;
  s_rng ^= s_rng << 25;
  s_rng ^= s_rng >> 27;
  return s_rng * 0x2545F4914F6CDD1Dull;
}
static float sfrand(void) { return (float)((int64_t)(srng() >> 40) - (1 << 23)) / (float)(1 << 23); }
static void *sx(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "test_sim: out of memory\n");
    exit(2);
  }
  return p;
}
static void sfail(const char *tname, const char *slot, const char *fmt, ...) {
  if (s_reports++ >= 20) return;
  va_list ap;
  va_start(ap, fmt);
  printf("  FAIL %s %s: ", tname, slot);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}
#define SFAIL(...) sfail(tname, slot, __VA_ARGS__)

static const size_t *sim_ns(size_t *count) {
  static size_t ns[2 * SW + 6];
  size_t c = 0;
  for (size_t n = 0; n <= 2 * SW + 1; n++) ns[c++] = n;
  ns[c++] = 3 * SW - 1;
  ns[c++] = 4 * SW;
  ns[c++] = 1007;
  *count = c;
  return ns;
}

/* ---- dot / sqnorm / cos ---- */
static void fill_f32(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = sfrand();
}
static void fill_f16(uint16_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = eng_sim_f2h(sfrand() * 4.0f);
}
static void fill_i8(int8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (int8_t)(srng() >> 56);
}

static int check_sum(const char *tname, const char *slot, size_t n, double got, double sc, double ref, double absum) {
  double bound = 2.0 * (n + 1) * SEPS * absum + 1e-30;
  if (!(fabs(got - ref) <= bound) || !(fabs(got - sc) <= 2 * bound)) {
    SFAIL("n=%zu got %.9g ref %.9g scalar %.9g bound %.3g", n, got, ref, sc, bound);
    return 0;
  }
  return 1;
}
static int check_cos(const char *tname, const char *slot, size_t n, double got, double sc, double ab, double aa,
                     double bb, double absum) {
  if (aa == 0 || bb == 0) {
    if (got != 0.0 || sc != 0.0) {
      SFAIL("n=%zu zero vector: got %.9g scalar %.9g, want 0", n, got, sc);
      return 0;
    }
    return 1;
  }
  double ref = ab / sqrt(aa * bb), bound = 2.0 * (n + 4) * SEPS * (absum / sqrt(aa * bb) + 1.0);
  if (!(fabs(got - ref) <= bound) || !(fabs(got - sc) <= 2 * bound) || got > 1.0 || got < -1.0) {
    SFAIL("n=%zu got %.9g ref %.9g scalar %.9g bound %.3g", n, got, ref, sc, bound);
    return 0;
  }
  return 1;
}

static void test_vec(const char *tname, const eng_kernels_t *t, int slot_kind, long *pass, long *fail) {
  /* slot_kind: 0 dot_f32 1 sqnorm_f32 2 cos_f32 3 dot_f16 4 sqnorm_f16 5 cos_f16 6 dot_i8 7 sqnorm_i8 8 cos_i8 */
  static const char *names[] = {"dot_f32", "sqnorm_f32", "cos_f32", "dot_f16", "sqnorm_f16", "cos_f16", "dot_i8", "sqnorm_i8", "cos_i8"};
  const char *slot = names[slot_kind];
  const eng_kernels_t *s = &eng_kernels_scalar;
  size_t nn;
  const size_t *ns = sim_ns(&nn);
  for (size_t c = 0; c < nn; c++)
    for (int variant = 0; variant < 3; variant++) { /* 0 random, 1 misaligned random, 2 a zero vector */
      size_t n = ns[c], off = variant == 1 ? 1 : 0;
      float *fa = (float *)sx((n + 2) * 4), *fb = (float *)sx((n + 2) * 4);
      uint16_t *ha = (uint16_t *)sx((n + 2) * 2), *hb = (uint16_t *)sx((n + 2) * 2);
      int8_t *ia = (int8_t *)sx(n + 2), *ib = (int8_t *)sx(n + 2);
      fill_f32(fa, n + 2), fill_f32(fb, n + 2), fill_f16(ha, n + 2), fill_f16(hb, n + 2), fill_i8(ia, n + 2), fill_i8(ib, n + 2);
      if (variant == 2) memset(fb, 0, (n + 2) * 4), memset(hb, 0, (n + 2) * 2), memset(ib, 0, n + 2);
      const float *a32 = fa + off, *b32 = fb + off;
      const uint16_t *a16 = ha + off, *b16 = hb + off;
      const int8_t *a8 = ia + off, *b8 = ib + off;
      double ab = 0, aa = 0, bb = 0, absum = 0, aasum = 0;
      int64_t iab = 0, iaa = 0, ibb = 0;
      for (size_t i = 0; i < n; i++) {
        double x, y;
        if (slot_kind <= 2) x = a32[i], y = b32[i];
        else x = eng_sim_h2f(a16[i]), y = eng_sim_h2f(b16[i]);
        ab += x * y, aa += x * x, bb += y * y, absum += fabs(x * y), aasum += x * x;
        iab += (int64_t)a8[i] * b8[i], iaa += (int64_t)a8[i] * a8[i], ibb += (int64_t)b8[i] * b8[i];
      }
      int ok = 1;
      switch (slot_kind) {
        case 0: ok = check_sum(tname, slot, n, t->dot_f32(n, a32, b32), s->dot_f32(n, a32, b32), ab, absum); break;
        case 1: ok = check_sum(tname, slot, n, t->sqnorm_f32(n, a32), s->sqnorm_f32(n, a32), aa, aasum); break;
        case 2: ok = check_cos(tname, slot, n, t->cos_f32(n, a32, b32), s->cos_f32(n, a32, b32), ab, aa, bb, absum); break;
        case 3: ok = check_sum(tname, slot, n, t->dot_f16(n, a16, b16), s->dot_f16(n, a16, b16), ab, absum); break;
        case 4: ok = check_sum(tname, slot, n, t->sqnorm_f16(n, a16), s->sqnorm_f16(n, a16), aa, aasum); break;
        case 5: ok = check_cos(tname, slot, n, t->cos_f16(n, a16, b16), s->cos_f16(n, a16, b16), ab, aa, bb, absum); break;
        case 6: {
          int32_t g = t->dot_i8(n, a8, b8);
          if (g != iab || g != s->dot_i8(n, a8, b8)) ok = 0, SFAIL("n=%zu got %d want %lld", n, g, (long long)iab);
        } break;
        case 7: {
          int32_t g = t->sqnorm_i8(n, a8);
          if (g != iaa || g != s->sqnorm_i8(n, a8)) ok = 0, SFAIL("n=%zu got %d want %lld", n, g, (long long)iaa);
        } break;
        case 8: {
          float g = t->cos_i8(n, a8, b8), r = s->cos_i8(n, a8, b8);
          double ref = (iaa == 0 || ibb == 0) ? 0.0 : (double)iab / sqrt((double)iaa * (double)ibb);
          if (memcmp(&g, &r, 4) != 0 || fabs(g - ref) > 1e-6) ok = 0, SFAIL("n=%zu got %.9g scalar %.9g ref %.9g", n, g, r, ref);
        } break;
      }
      ok ? (*pass)++ : (*fail)++;
      free(fa), free(fb), free(ha), free(hb), free(ia), free(ib);
    }
  if (slot_kind >= 6) { /* the int32 limit: n = 65536 products of -128 * -128 = 2^30 */
    size_t n = ENG_SIM_I8_MAX_N;
    int8_t *a = (int8_t *)sx(n);
    memset(a, 0x80, n);
    int32_t want = (int32_t)(n * 16384);
    int ok = 1;
    if (slot_kind == 6 && t->dot_i8(n, a, a) != want) ok = 0, SFAIL("n=%zu all -128: got %d want %d", n, t->dot_i8(n, a, a), want);
    if (slot_kind == 7 && t->sqnorm_i8(n, a) != want) ok = 0, SFAIL("n=%zu all -128: got %d", n, t->sqnorm_i8(n, a));
    if (slot_kind == 8 && t->cos_i8(n, a, a) != 1.0f) ok = 0, SFAIL("n=%zu all -128: cos %.9g", n, t->cos_i8(n, a, a));
    ok ? (*pass)++ : (*fail)++;
    free(a);
  }
}

/* ---- l2norm_rows ---- */
static void test_l2norm(const char *tname, const eng_kernels_t *t, int f16, long *pass, long *fail) {
  const char *slot = f16 ? "l2norm_rows_f16" : "l2norm_rows_f32";
  size_t nn;
  const size_t *ns = sim_ns(&nn);
  const uint32_t CAN = 0x7fa5a5a5u;
  for (size_t c = 0; c < nn; c++)
    for (size_t m = 1; m <= 4; m += s_quick ? 3 : 1) {
      size_t n = ns[c], ld = n + 3, total = m * ld + 1;
      float *x = (float *)sx(total * 4), *y = (float *)sx(total * 4);
      uint16_t *hx = (uint16_t *)sx(total * 2), *hy = (uint16_t *)sx(total * 2);
      fill_f32(x, total), fill_f16(hx, total);
      for (size_t i = 0; i < total; i++) memcpy(&y[i], &CAN, 4), hy[i] = 0x7d5a;
      if (m >= 2) { /* row 1 is zero */
        memset(x + ld, 0, n * 4);
        memset(hx + ld, 0, n * 2);
      }
      int ok = 1;
      if (!f16) t->l2norm_rows_f32(m, n, x + 1, ld, y + 1, ld);
      else t->l2norm_rows_f16(m, n, hx + 1, ld, hy + 1, ld);
      for (size_t r = 0; r < m && ok; r++) {
        double sq = 0;
        for (size_t j = 0; j < n; j++) {
          double v = f16 ? eng_sim_h2f(hx[1 + r * ld + j]) : x[1 + r * ld + j];
          sq += v * v;
        }
        double nrm = sqrt(sq);
        for (size_t j = 0; j < n; j++) {
          double v = f16 ? eng_sim_h2f(hx[1 + r * ld + j]) : x[1 + r * ld + j];
          double ref = nrm > 0 ? v / nrm : 0.0;
          double got = f16 ? eng_sim_h2f(hy[1 + r * ld + j]) : y[1 + r * ld + j];
          double bound = f16 ? fabs(ref) * (1.0 / 1024) + ldexp(1.0, -24) + 4.0 * (n + 2) * SEPS * fabs(ref)
                             : 2.0 * (n + 2) * SEPS * fabs(ref) + SEPS * fabs(got);
          if (!(fabs(got - ref) <= bound) || (nrm == 0 && got != 0.0)) {
            SFAIL("m=%zu n=%zu row %zu col %zu: got %.9g ref %.9g", m, n, r, j, got, ref);
            ok = 0;
            break;
          }
        }
      }
      /* canaries: the element before the first row, the gaps between rows, the element after */
      for (size_t i = 0; i < total && ok; i++) {
        size_t p = i >= 1 ? (i - 1) % ld : ld;
        int inside = i >= 1 && (i - 1) / ld < m && p < n;
        if (inside) continue;
        if (!f16 && memcmp(&y[i], &CAN, 4) != 0) ok = 0, SFAIL("m=%zu n=%zu canary %zu overwritten", m, n, i);
        if (f16 && hy[i] != 0x7d5a) ok = 0, SFAIL("m=%zu n=%zu canary %zu overwritten", m, n, i);
      }
      /* in place equals out of place */
      if (ok) {
        if (!f16) {
          t->l2norm_rows_f32(m, n, x + 1, ld, x + 1, ld);
          for (size_t r = 0; r < m && ok; r++)
            if (memcmp(x + 1 + r * ld, y + 1 + r * ld, n * 4) != 0) ok = 0, SFAIL("m=%zu n=%zu in place differs", m, n);
        } else {
          t->l2norm_rows_f16(m, n, hx + 1, ld, hx + 1, ld);
          for (size_t r = 0; r < m && ok; r++)
            if (memcmp(hx + 1 + r * ld, hy + 1 + r * ld, n * 2) != 0) ok = 0, SFAIL("m=%zu n=%zu in place differs", m, n);
        }
      }
      ok ? (*pass)++ : (*fail)++;
      free(x), free(y), free(hx), free(hy);
    }
}

/* ---- scans ---- */
static void test_scan(const char *tname, const eng_kernels_t *t, int kind, long *pass, long *fail) {
  static const char *names[] = {"scan_f32", "scan_f16", "scan_i8"};
  const char *slot = names[kind];
  static const size_t rows_list[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 37};
  static const size_t ds[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 100, 128, 515};
  for (size_t ri = 0; ri < sizeof rows_list / sizeof *rows_list; ri++)
    for (size_t di = 0; di < sizeof ds / sizeof *ds; di++) {
      if (s_quick && (di % 2) && rows_list[ri] > 5) continue;
      size_t rows = rows_list[ri], d = ds[di], ldg = d + (di % 3), tot = rows * ldg + 2;
      float *q = (float *)sx((d + 1) * 4), *g = (float *)sx(tot * 4), *out = (float *)sx((rows + 2) * 4);
      uint16_t *h = (uint16_t *)sx(tot * 2);
      int8_t *q8 = (int8_t *)sx(d + 1), *g8 = (int8_t *)sx(tot);
      int32_t *o8 = (int32_t *)sx((rows + 2) * 4);
      fill_f32(q, d + 1), fill_f32(g, tot), fill_f16(h, tot), fill_i8(q8, d + 1), fill_i8(g8, tot);
      const float CANV = -12345.5f;
      for (size_t i = 0; i < rows + 2; i++) out[i] = CANV, o8[i] = 0x5a5a5a5a;
      const size_t off = di % 2; /* misaligned query and gallery every other case */
      if (kind == 0) t->scan_f32(rows, d, q + off, g + off, ldg, out + 1);
      if (kind == 1) t->scan_f16(rows, d, q + off, h + off, ldg, out + 1);
      if (kind == 2) t->scan_i8(rows, d, q8 + off, g8 + off, ldg, o8 + 1);
      int ok = 1;
      for (size_t r = 0; r < rows && ok; r++) {
        double ref = 0, absum = 0;
        int64_t iref = 0;
        for (size_t j = 0; j < d; j++) {
          double gv = kind == 0 ? g[off + r * ldg + j] : eng_sim_h2f(h[off + r * ldg + j]);
          ref += q[off + j] * gv, absum += fabs(q[off + j] * gv);
          iref += (int64_t)q8[off + j] * g8[off + r * ldg + j];
        }
        if (kind == 2) {
          if (o8[1 + r] != iref) ok = 0, SFAIL("rows=%zu d=%zu row %zu: got %d want %lld", rows, d, r, o8[1 + r], (long long)iref);
        } else if (!(fabs(out[1 + r] - ref) <= 2.0 * (d + 1) * SEPS * absum + 1e-30)) {
          ok = 0, SFAIL("rows=%zu d=%zu row %zu: got %.9g want %.9g", rows, d, r, out[1 + r], ref);
        }
      }
      if (kind < 2 && (out[0] != CANV || out[rows + 1] != CANV)) ok = 0, SFAIL("rows=%zu d=%zu: canary overwritten", rows, d);
      if (kind == 2 && (o8[0] != 0x5a5a5a5a || o8[rows + 1] != 0x5a5a5a5a)) ok = 0, SFAIL("rows=%zu d=%zu: canary overwritten", rows, d);
      ok ? (*pass)++ : (*fail)++;
      free(q), free(g), free(out), free(h), free(q8), free(g8), free(o8);
    }
}

/* ---- conversions ---- */
static void test_cvt(const char *tname, const eng_kernels_t *t, int to_f16, long *pass, long *fail) {
  const char *slot = to_f16 ? "cvt_f32_f16" : "cvt_f16_f32";
  const eng_kernels_t *s = &eng_kernels_scalar;
  if (!to_f16) {
    size_t n = 65536;
    uint16_t *x = (uint16_t *)sx(n * 2 + 2);
    float *y = (float *)sx(n * 4 + 4), *z = (float *)sx(n * 4 + 4);
    for (size_t i = 0; i < n; i++) x[i] = (uint16_t)i;
    for (size_t off = 0; off < 2; off++) {
      t->cvt_f16_f32(n - off, x + off, y + off);
      s->cvt_f16_f32(n - off, x + off, z + off);
      if (memcmp(y + off, z + off, (n - off) * 4) != 0) {
        (*fail)++;
        for (size_t i = off; i < n; i++)
          if (memcmp(&y[i], &z[i], 4) != 0) {
            SFAIL("half 0x%04x: got %a scalar %a", x[i], y[i], z[i]);
            break;
          }
      } else {
        (*pass)++;
      }
    }
    free(x), free(y), free(z);
    return;
  }
  size_t n = s_quick ? 40000 : 200000, c = 0;
  uint32_t *bits = (uint32_t *)sx((n + 2 * 65536 + 16) * 4);
  for (size_t i = 0; i < n; i++) {
    uint32_t b = (uint32_t)(srng() >> 32);
    if (i % 2) b = (b & 0x807fffffu) | ((uint32_t)(100 + (srng() >> 60) * 3) << 23); /* half's exponent range */
    bits[c++] = b;
  }
  for (uint32_t h = 0; h < 0x7c00u; h += s_quick ? 7 : 1) { /* the exact half-way points above each half */
    float lo = eng_sim_h2f((uint16_t)h), hi = eng_sim_h2f((uint16_t)(h + 1));
    float mid = (float)(((double)lo + (double)hi) / 2);
    uint32_t mb;
    memcpy(&mb, &mid, 4);
    bits[c++] = mb;
    bits[c++] = mb | 0x80000000u;
  }
  static const uint32_t sp[] = {0, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc12345u,
                                0x477fefffu, 0x477ff000u, 0x33000000u, 0x33000001u, 0x387fc000u, 0x00000001u};
  for (size_t i = 0; i < sizeof sp / sizeof *sp; i++) bits[c++] = sp[i];
  float *x = (float *)sx(c * 4);
  memcpy(x, bits, c * 4);
  uint16_t *y = (uint16_t *)sx(c * 2), *z = (uint16_t *)sx(c * 2);
  t->cvt_f32_f16(c, x, y);
  s->cvt_f32_f16(c, x, z);
  int ok = 1;
  for (size_t i = 0; i < c && ok; i++)
    if (y[i] != z[i]) ok = 0, SFAIL("f32 bits 0x%08x: got 0x%04x scalar 0x%04x", bits[i], y[i], z[i]);
  ok ? (*pass)++ : (*fail)++;
  free(bits), free(x), free(y), free(z);
}

/* Returns 1 if slot is a similarity slot (and ran its tests on the effective table t), else 0. */
int eng_test_sim_slot(const char *tname, const eng_kernels_t *t, int slot, int quick, long *pass, long *fail) {
  s_quick = quick;
  switch (slot) {
    case ENG_SLOT_dot_f32: test_vec(tname, t, 0, pass, fail); return 1;
    case ENG_SLOT_sqnorm_f32: test_vec(tname, t, 1, pass, fail); return 1;
    case ENG_SLOT_cos_f32: test_vec(tname, t, 2, pass, fail); return 1;
    case ENG_SLOT_dot_f16: test_vec(tname, t, 3, pass, fail); return 1;
    case ENG_SLOT_sqnorm_f16: test_vec(tname, t, 4, pass, fail); return 1;
    case ENG_SLOT_cos_f16: test_vec(tname, t, 5, pass, fail); return 1;
    case ENG_SLOT_dot_i8: test_vec(tname, t, 6, pass, fail); return 1;
    case ENG_SLOT_sqnorm_i8: test_vec(tname, t, 7, pass, fail); return 1;
    case ENG_SLOT_cos_i8: test_vec(tname, t, 8, pass, fail); return 1;
    case ENG_SLOT_l2norm_rows_f32: test_l2norm(tname, t, 0, pass, fail); return 1;
    case ENG_SLOT_l2norm_rows_f16: test_l2norm(tname, t, 1, pass, fail); return 1;
    case ENG_SLOT_scan_f32: test_scan(tname, t, 0, pass, fail); return 1;
    case ENG_SLOT_scan_f16: test_scan(tname, t, 1, pass, fail); return 1;
    case ENG_SLOT_scan_i8: test_scan(tname, t, 2, pass, fail); return 1;
    case ENG_SLOT_cvt_f16_f32: test_cvt(tname, t, 0, pass, fail); return 1;
    case ENG_SLOT_cvt_f32_f16: test_cvt(tname, t, 1, pass, fail); return 1;
    default: return 0;
  }
}

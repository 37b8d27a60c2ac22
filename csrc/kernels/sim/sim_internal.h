/* sim_internal.h: static inline helpers of the similarity kernels, WITHOUT intrinsics, shared by every ISA
 * file of csrc/kernels/sim/ (and the core driver): binary16 <-> f32 conversion and the final steps of the
 * cosine, so that every ISA rounds them the same way. */
#ifndef ENG_SIM_INTERNAL_H
#define ENG_SIM_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* binary16 bits -> f32, exact (denormals, infinities; a NaN keeps its payload and becomes quiet, as F16C
 * vcvtph2ps and AArch64 FCVTL do). */
static inline float eng_sim_h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u); /* inf, or NaN: payload kept, made quiet */
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* denormal: normalize */
    int e = -1;
    do {
      e++;
      man <<= 1;
    } while (!(man & 0x400u));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* f32 -> binary16 bits, round to nearest even; overflow gives inf; a NaN keeps its top 10 payload bits and
 * becomes quiet (as F16C vcvtps2ph with imm 0 and AArch64 FCVTN with default-NaN mode off). */
static inline uint16_t eng_sim_f2h(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf (also inf itself) */
  if (ax >= 0x38800000u) {                                    /* normal half: rebias and round */
    uint32_t r = ax - 0x38000000u;                             /* exponent - 112 */
    uint32_t half = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to zero (2^-25 itself ties to even 0) */
  /* denormal half: value = man * 2^-24 */
  uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - e; /* 14 .. 24 : m >> shift gives the half mantissa */
  uint32_t half = m >> shift, rem = m & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
  if (rem > mid || (rem == mid && (half & 1u))) half++;
  return (uint16_t)(sign | half);
}

/* The last step of every f32/f16 cosine: dot / (|a| |b|), clamped to [-1, 1] (rounding can overshoot by an
 * ulp); 0 when either squared norm is 0. The two square roots avoid overflow of aa * bb. */
static inline float eng_sim_cos_finish(float ab, float aa, float bb) {
  if (aa == 0.0f || bb == 0.0f) return 0.0f;
  float c = ab / (sqrtf(aa) * sqrtf(bb));
  return c > 1.0f ? 1.0f : (c < -1.0f ? -1.0f : c);
}

/* The i8 cosine from exact int32 sums, in double so every ISA gives the same correctly rounded float. */
static inline float eng_sim_cos_finish_i32(int32_t ab, int32_t aa, int32_t bb) {
  if (aa == 0 || bb == 0) return 0.0f;
  double c = (double)ab / sqrt((double)aa * (double)bb);
  return (float)(c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c));
}

/* 1 / |x| from the squared norm, 0 for a zero row (the row then stays zero). */
static inline float eng_sim_inv_norm(float sq) { return sq > 0.0f ? 1.0f / sqrtf(sq) : 0.0f; }

#endif /* ENG_SIM_INTERNAL_H */

/* cpu_features.c: what the running CPU and OS can execute, detected once.
 * x86-64: CPUID leaves 1 and 7 plus XGETBV (the OS must save YMM/ZMM state, or AVX code faults).
 * AArch64 Linux: getauxval(AT_HWCAP/AT_HWCAP2); ID registers are never read with mrs.
 * Compiled with baseline flags only: nothing here may use an instruction a baseline CPU lacks. */
#include <stdatomic.h>
#include <string.h>

#include "eng/eng_isa.h"

#if defined(__x86_64__) || defined(_M_X64)
#define ENG_ARCH_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
static void cpuid_ex(unsigned leaf, unsigned sub, unsigned r[4]) {
  int v[4];
  __cpuidex(v, (int)leaf, (int)sub);
  for (int i = 0; i < 4; i++) r[i] = (unsigned)v[i];
}
static unsigned long long xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid_ex(unsigned leaf, unsigned sub, unsigned r[4]) { __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]); }
/* xgetbv via its encoding, so this file needs no -mxsave. Only called after CPUID says OSXSAVE. */
static unsigned long long xgetbv0(void) {
  unsigned lo, hi;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}
#endif
#elif defined(__aarch64__)
#define ENG_ARCH_ARM64 1
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1UL << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#endif
#endif

static unsigned detect(void) {
  unsigned f = 0;
#if defined(ENG_ARCH_X86)
  unsigned r[4];
  cpuid_ex(0, 0, r);
  unsigned max_leaf = r[0];
  cpuid_ex(1, 0, r);
  /* SSE4.2: CPUID.1:ECX[20] */
  if (r[2] & (1u << 20)) f |= ENG_CPU_SSE42;
  int osxsave = (r[2] >> 27) & 1; /* OSXSAVE: CPUID.1:ECX[27], XGETBV is usable */
  int avx = (r[2] >> 28) & 1;     /* AVX: CPUID.1:ECX[28] */
  int fma = (r[2] >> 12) & 1;     /* FMA3: CPUID.1:ECX[12] */
  int f16c = (r[2] >> 29) & 1;    /* F16C: CPUID.1:ECX[29] */
  unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  /* XCR0 bits 1 (SSE) and 2 (AVX upper halves): the OS saves YMM registers on context switch */
  int os_ymm = (xcr0 & 0x6) == 0x6;
  /* XCR0 bits 5-7 (opmask, ZMM0-15 upper halves, ZMM16-31): the OS saves AVX-512 state */
  int os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
  if (os_ymm) f |= ENG_CPU_OS_YMM;
  if (os_zmm) f |= ENG_CPU_OS_ZMM;
  if (avx && os_ymm) {
    f |= ENG_CPU_AVX;
    if (fma) f |= ENG_CPU_FMA;
    if (f16c) f |= ENG_CPU_F16C;
  }
  if (max_leaf >= 7) {
    cpuid_ex(7, 0, r);
    unsigned b = r[1], c = r[2], d = r[3];
    /* AVX2: CPUID.7.0:EBX[5] */
    if (os_ymm && avx && (b & (1u << 5))) f |= ENG_CPU_AVX2;
    if (os_zmm) {
      /* AVX512F: EBX[16], AVX512DQ: EBX[17], AVX512BW: EBX[30], AVX512VL: EBX[31] */
      if (b & (1u << 16)) f |= ENG_CPU_AVX512F;
      if (b & (1u << 17)) f |= ENG_CPU_AVX512DQ;
      if (b & (1u << 30)) f |= ENG_CPU_AVX512BW;
      if (b & (1u << 31)) f |= ENG_CPU_AVX512VL;
      /* AVX512_VNNI: ECX[11] */
      if (c & (1u << 11)) f |= ENG_CPU_AVX512VNNI;
      /* AVX512_FP16: EDX[23] */
      if (d & (1u << 23)) f |= ENG_CPU_AVX512FP16;
    }
    cpuid_ex(7, 1, r);
    /* AVX-VNNI (VEX): CPUID.7.1:EAX[4] */
    if (os_ymm && (r[0] & (1u << 4))) f |= ENG_CPU_AVXVNNI;
    /* AVX512_BF16: CPUID.7.1:EAX[5] */
    if (os_zmm && (r[0] & (1u << 5))) f |= ENG_CPU_AVX512BF16;
  }
#elif defined(ENG_ARCH_ARM64)
  f |= ENG_CPU_NEON; /* Advanced SIMD is architecturally required on AArch64 */
#if defined(__linux__)
  unsigned long hw = getauxval(AT_HWCAP);
  unsigned long hw2 = getauxval(AT_HWCAP2);
  /* SDOT/UDOT (FEAT_DotProd) */
  if (hw & HWCAP_ASIMDDP) f |= ENG_CPU_ASIMDDP;
  /* scalar and vector half-precision arithmetic (FEAT_FP16) */
  if ((hw & HWCAP_FPHP) && (hw & HWCAP_ASIMDHP)) f |= ENG_CPU_FP16;
  /* SVE */
  if (hw & HWCAP_SVE) f |= ENG_CPU_SVE;
  /* SMMLA/UMMLA (FEAT_I8MM) */
  if (hw2 & HWCAP2_I8MM) f |= ENG_CPU_I8MM;
  /* BFloat16 (FEAT_BF16) */
  if (hw2 & HWCAP2_BF16) f |= ENG_CPU_BF16;
#endif
#endif
  return f;
}

/* 0 = not detected yet; otherwise the features with bit 31 set. Detection is idempotent, so a race only
 * repeats the same work; release/acquire makes a published value complete on weakly ordered CPUs. */
static _Atomic unsigned g_features = 0;

unsigned eng_cpu_features(void) {
  unsigned f = atomic_load_explicit(&g_features, memory_order_acquire);
  if (!f) {
    f = detect() | 0x80000000u;
    atomic_store_explicit(&g_features, f, memory_order_release);
  }
  return f & 0x7fffffffu;
}

eng_isa_t eng_cpu_max_isa(void) {
  unsigned f = eng_cpu_features();
#if defined(ENG_ARCH_X86)
  const unsigned avx512 = ENG_CPU_AVX512F | ENG_CPU_AVX512BW | ENG_CPU_AVX512DQ | ENG_CPU_AVX512VL | ENG_CPU_AVX2 |
                          ENG_CPU_FMA | ENG_CPU_F16C;
  const unsigned avx2 = ENG_CPU_AVX2 | ENG_CPU_FMA | ENG_CPU_F16C;
  if ((f & avx512) == avx512) return ENG_ISA_AVX512;
  if ((f & avx2) == avx2) return ENG_ISA_AVX2;
  return ENG_ISA_SCALAR;
#elif defined(ENG_ARCH_ARM64)
  return (f & ENG_CPU_NEON) ? ENG_ISA_NEON : ENG_ISA_SCALAR;
#else
  (void)f;
  return ENG_ISA_SCALAR;
#endif
}

const char *eng_isa_name(eng_isa_t isa) {
  switch (isa) {
    case ENG_ISA_SCALAR: return "scalar";
    case ENG_ISA_AVX2: return "avx2";
    case ENG_ISA_AVX512: return "avx512";
    case ENG_ISA_NEON: return "neon";
    default: return "unknown";
  }
}

/* eng_isa.h: the instruction-set levels engine compiles kernels for.
 * A level is defined by exactly one row of ISA_GROUPS in setup.py and one detection rule in
 * csrc/dispatch/cpu_features.c. Levels are ordered: a higher level may only be chosen if the CPU
 * can run it, and every lower level of the same architecture can run there too. */
#ifndef ENG_ISA_H
#define ENG_ISA_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_isa {
  ENG_ISA_SCALAR = 0, /* portable C11, no SIMD: the reference for every kernel */
  ENG_ISA_AVX2 = 1,   /* x86-64: AVX2 + FMA + F16C */
  ENG_ISA_AVX512 = 2, /* x86-64: AVX-512 F/BW/DQ/VL */
  ENG_ISA_NEON = 3,   /* AArch64: Advanced SIMD (baseline on every AArch64 CPU) */
  ENG_ISA_COUNT = 4,
} eng_isa_t;

/* CPU feature bits reported by eng_cpu_features(). */
enum {
  ENG_CPU_SSE42 = 1u << 0,
  ENG_CPU_AVX = 1u << 1,
  ENG_CPU_AVX2 = 1u << 2,
  ENG_CPU_FMA = 1u << 3,
  ENG_CPU_F16C = 1u << 4,
  ENG_CPU_AVX512F = 1u << 5,
  ENG_CPU_AVX512BW = 1u << 6,
  ENG_CPU_AVX512DQ = 1u << 7,
  ENG_CPU_AVX512VL = 1u << 8,
  ENG_CPU_AVX512VNNI = 1u << 9,
  ENG_CPU_AVX512BF16 = 1u << 10,
  ENG_CPU_AVX512FP16 = 1u << 11,
  ENG_CPU_AVXVNNI = 1u << 12,
  ENG_CPU_OS_YMM = 1u << 13, /* XCR0: the OS saves YMM state */
  ENG_CPU_OS_ZMM = 1u << 14, /* XCR0: the OS saves opmask + ZMM state */
  ENG_CPU_NEON = 1u << 16,
  ENG_CPU_ASIMDDP = 1u << 17, /* SDOT/UDOT */
  ENG_CPU_FP16 = 1u << 18,    /* half-precision arithmetic (fphp + asimdhp) */
  ENG_CPU_I8MM = 1u << 19,
  ENG_CPU_SVE = 1u << 20,
  ENG_CPU_BF16 = 1u << 21,
};

#define ENG_CPU_FEATURE_LIST(X)                                                                       \
  X(SSE42, "sse4.2") X(AVX, "avx") X(AVX2, "avx2") X(FMA, "fma") X(F16C, "f16c")                     \
  X(AVX512F, "avx512f") X(AVX512BW, "avx512bw") X(AVX512DQ, "avx512dq") X(AVX512VL, "avx512vl")     \
  X(AVX512VNNI, "avx512vnni") X(AVX512BF16, "avx512bf16") X(AVX512FP16, "avx512fp16")               \
  X(AVXVNNI, "avxvnni") X(OS_YMM, "os_ymm") X(OS_ZMM, "os_zmm") X(NEON, "neon")                      \
  X(ASIMDDP, "asimddp") X(FP16, "fp16") X(I8MM, "i8mm") X(SVE, "sve") X(BF16, "bf16")

/* Detects the CPU features once (thread-safe after the first call returns). */
unsigned eng_cpu_features(void);
/* Highest ISA level the running CPU and OS can execute, among all levels (compiled or not). */
eng_isa_t eng_cpu_max_isa(void);
const char *eng_isa_name(eng_isa_t isa);

#ifdef __cplusplus
}
#endif
#endif /* ENG_ISA_H */

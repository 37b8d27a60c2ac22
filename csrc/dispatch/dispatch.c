/* dispatch.c: builds the active kernel table from the compiled ISA tables, capped by ENGINE_ISA.
 * Start from the scalar table, then copy each higher compiled level's non-NULL slots in ascending order,
 * up to min(CPU max, cap). Which level won each slot is recorded for kernel_info(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_dispatch.h"

eng_kernels_t eng_active;
static eng_isa_t g_slot_isa[ENG_KERNEL_COUNT];
static eng_isa_t g_active_isa = ENG_ISA_SCALAR;
static char g_error[512];

static const char *const g_slot_names[ENG_KERNEL_COUNT] = {
#define ENG_KERNEL(name, type) #name,
#include "eng/eng_kernel_list.h"
#undef ENG_KERNEL
};

static const eng_kernels_t *compiled_table(eng_isa_t isa) {
  switch (isa) {
    case ENG_ISA_SCALAR: return &eng_kernels_scalar;
#if defined(ENG_COMPILED_AVX2)
    case ENG_ISA_AVX2: return &eng_kernels_avx2;
#endif
#if defined(ENG_COMPILED_AVX512)
    case ENG_ISA_AVX512: return &eng_kernels_avx512;
#endif
#if defined(ENG_COMPILED_NEON)
    case ENG_ISA_NEON: return &eng_kernels_neon;
#endif
    default: return NULL;
  }
}

/* Levels are ordered per architecture; AArch64's NEON sits above scalar only. */
static int isa_rank(eng_isa_t isa) {
  switch (isa) {
    case ENG_ISA_SCALAR: return 0;
    case ENG_ISA_AVX2: return 1;
    case ENG_ISA_AVX512: return 2;
    case ENG_ISA_NEON: return 1;
    default: return -1;
  }
}

static int isa_same_arch(eng_isa_t isa) {
#if defined(__x86_64__) || defined(_M_X64)
  return isa == ENG_ISA_SCALAR || isa == ENG_ISA_AVX2 || isa == ENG_ISA_AVX512;
#elif defined(__aarch64__)
  return isa == ENG_ISA_SCALAR || isa == ENG_ISA_NEON;
#else
  return isa == ENG_ISA_SCALAR;
#endif
}

int eng_isa_compiled(eng_isa_t isa) { return isa < ENG_ISA_COUNT && compiled_table(isa) != NULL; }

int eng_isa_supported(eng_isa_t isa) {
  if (!eng_isa_compiled(isa) || !isa_same_arch(isa)) return 0;
  return isa_rank(isa) <= isa_rank(eng_cpu_max_isa());
}

eng_isa_t eng_isa_from_name(const char *name) {
  for (int i = 0; i < ENG_ISA_COUNT; i++)
    if (strcmp(name, eng_isa_name((eng_isa_t)i)) == 0) return (eng_isa_t)i;
  return ENG_ISA_COUNT;
}

static void build_table(eng_isa_t cap) {
  const void *const *src;
  void **dst = (void **)&eng_active;
  memcpy(&eng_active, &eng_kernels_scalar, sizeof eng_active);
  for (int s = 0; s < ENG_KERNEL_COUNT; s++) g_slot_isa[s] = ENG_ISA_SCALAR;
  for (int i = 0; i < ENG_ISA_COUNT; i++) {
    eng_isa_t isa = (eng_isa_t)i;
    const eng_kernels_t *t = compiled_table(isa);
    if (isa == ENG_ISA_SCALAR || !t || !isa_same_arch(isa) || isa_rank(isa) > isa_rank(cap)) continue;
    src = (const void *const *)t;
    for (int s = 0; s < ENG_KERNEL_COUNT; s++) {
      if (src[s]) {
        dst[s] = (void *)src[s];
        g_slot_isa[s] = isa;
      }
    }
  }
  g_active_isa = cap;
}

static void valid_list(char *buf, size_t len) {
  buf[0] = 0;
  for (int i = 0; i < ENG_ISA_COUNT; i++) {
    if (!eng_isa_supported((eng_isa_t)i)) continue;
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", eng_isa_name((eng_isa_t)i));
  }
}

eng_status_t eng_select_isa(eng_isa_t isa) {
  if (!eng_isa_supported(isa)) return ENG_ERR_UNSUPPORTED;
  build_table(isa);
  return ENG_OK;
}

eng_status_t eng_init(void) {
  eng_isa_t best = ENG_ISA_SCALAR;
  for (int i = 0; i < ENG_ISA_COUNT; i++)
    if (eng_isa_supported((eng_isa_t)i) && isa_rank((eng_isa_t)i) > isa_rank(best)) best = (eng_isa_t)i;
  const char *env = getenv("ENGINE_ISA");
  g_error[0] = 0;
  if (env && *env) {
    char valid[128];
    valid_list(valid, sizeof valid);
    eng_isa_t want = eng_isa_from_name(env);
    if (want == ENG_ISA_COUNT) {
      snprintf(g_error, sizeof g_error, "ENGINE_ISA=%.32s is not a known ISA level; valid values on this CPU: %s", env, valid);
      build_table(best);
      return ENG_ERR_INVALID_ARG;
    }
    if (!eng_isa_supported(want)) {
      snprintf(g_error, sizeof g_error, "ENGINE_ISA=%s cannot run here (%s); valid values on this CPU: %s", env,
               !eng_isa_compiled(want) || !isa_same_arch(want) ? "not compiled into this build" : "the CPU lacks it",
               valid);
      build_table(best);
      return ENG_ERR_UNSUPPORTED;
    }
    best = want;
  }
  build_table(best);
  return ENG_OK;
}

const char *eng_init_error(void) { return g_error; }
eng_isa_t eng_active_isa(void) { return g_active_isa; }
const char *eng_kernel_name(int slot) { return slot >= 0 && slot < ENG_KERNEL_COUNT ? g_slot_names[slot] : NULL; }
eng_isa_t eng_kernel_isa(int slot) { return slot >= 0 && slot < ENG_KERNEL_COUNT ? g_slot_isa[slot] : ENG_ISA_COUNT; }

const char *eng_status_str(eng_status_t s) {
  switch (s) {
    case ENG_OK: return "ok";
    case ENG_ERR_INVALID_ARG: return "invalid argument";
    case ENG_ERR_NOMEM: return "out of memory";
    case ENG_ERR_OVERFLOW: return "size overflow";
    case ENG_ERR_UNSUPPORTED: return "unsupported";
    default: return "unknown status";
  }
}

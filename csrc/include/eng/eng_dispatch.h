/* eng_dispatch.h: the active kernel table and how it is chosen. */
#ifndef ENG_DISPATCH_H
#define ENG_DISPATCH_H

#include "eng/eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The active table. Filled by eng_init(); read directly by callers, no per-call checks. */
extern eng_kernels_t eng_active;

/* Reads ENGINE_ISA and fills the table. Returns ENG_OK, or ENG_ERR_INVALID_ARG / ENG_ERR_UNSUPPORTED with
 * a message in eng_init_error() if ENGINE_ISA names an unknown level or one this CPU/build cannot run. */
eng_status_t eng_init(void);
const char *eng_init_error(void);

/* Rebuilds the table capped at `isa`; fails (table unchanged) if the CPU or build cannot run it. Not
 * thread-safe against concurrent kernel calls: for tests and benchmarks. */
eng_status_t eng_select_isa(eng_isa_t isa);
eng_isa_t eng_active_isa(void);
/* Looks up a level by tag ("scalar", "avx2", ...); returns ENG_ISA_COUNT if unknown. */
eng_isa_t eng_isa_from_name(const char *name);
/* 1 if this build contains the level's kernels (for this architecture). */
int eng_isa_compiled(eng_isa_t isa);
/* 1 if compiled and the CPU can run it. */
int eng_isa_supported(eng_isa_t isa);

/* Introspection: slot name and the ISA that provides it in the active table. */
const char *eng_kernel_name(int slot);
eng_isa_t eng_kernel_isa(int slot);

#ifdef __cplusplus
}
#endif
#endif /* ENG_DISPATCH_H */

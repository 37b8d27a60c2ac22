/* eng_workspace.h: per-thread scratch buffers kept between calls (csrc/runtime/workspace.c, core library).
 *
 * A kernel driver that needs scratch memory on every call (packed GEMM operands, convolution phases, Winograd
 * blocks) asks for it here instead of calling malloc: each thread keeps one buffer per slot, grown on demand and
 * reused by its next calls, so steady-state calls do not allocate (allocating and freeing megabytes per call lets
 * malloc return the pages to the system and fault them in again on the next call). A thread's buffers are freed
 * when it exits. Buffers are private to the thread that asked, which may share one with the pool for the duration
 * of one call (the pool runs tasks while the caller waits).
 *
 * Slots: a caller may hold its buffer while it calls another driver that takes its own (the Winograd driver runs
 * the GEMM on its V block), so every user has its own slot and two slots never alias. Asking for a slot again
 * invalidates the pointer that slot returned before (the buffer may move when it grows). */
#ifndef ENG_WORKSPACE_H
#define ENG_WORKSPACE_H

#include "eng/eng_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_ws_slot {
  ENG_WS_GEMM_A = 0, /* gemm_driver.c: a thread's packed block of op(A) (every thread that runs a tile task) */
  ENG_WS_GEMM_B = 1, /* gemm_driver.c: the calling thread's packed slab of op(B), read by the pool's tasks */
  ENG_WS_CONV = 2,   /* conv_driver.c: tap offsets, input phases and wide output of one call */
  ENG_WS_WINO = 3,   /* wino_driver.c: a tile block's V and M; held across the block's GEMMs (GEMM_A, GEMM_B) */
  ENG_WS_SLOTS = 4
} eng_ws_slot_t;

/* Alignment of every buffer returned below, and the readable slack after the requested bytes. */
#define ENG_WS_ALIGN ((size_t)64)

/* At least `bytes` (+ ENG_WS_ALIGN bytes of slack) of ENG_WS_ALIGN-aligned scratch owned by the calling thread,
 * kept for its next call with the same slot and freed when the thread exits. Contents are unspecified (not kept
 * when the buffer grows). NULL if the slot is out of range, the size overflows or the allocation fails (the slot
 * is then empty: its old buffer was freed first, so a failed growth does not hold both). */
void *eng_thread_ws(eng_ws_slot_t slot, size_t bytes);

/* A one-off buffer of the same shape (ENG_WS_ALIGN-aligned, `bytes` + ENG_WS_ALIGN), released with free(); NULL
 * on overflow or failure. For requests a caller chooses not to keep (see conv_driver.c). */
void *eng_ws_alloc_once(size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* ENG_WORKSPACE_H */

#define _POSIX_C_SOURCE 200809L
/* test_runtime.c: checks the per-thread workspace helper (csrc/runtime/workspace.c, eng_workspace.h). ISA-neutral
 * (it computes nothing), so it runs once, not per table; called from test_kernels.c's main through
 * eng_test_runtime().
 *  - every slot returns ENG_WS_ALIGN-aligned memory, also for 0 bytes; all slots held at once do not overlap
 *    (each is filled over its bytes + the slack, then re-read);
 *  - a slot is kept: a smaller request returns the same buffer, a larger one a buffer writable over its size;
 *  - slot out of range, SIZE_MAX and SIZE_MAX - ENG_WS_ALIGN + 1 bytes give NULL and leave the slot's buffer as it was;
 *  - another thread's buffers are its own (the main thread's contents survive its writes), and threads that take
 *    buffers and exit (the key's destructor frees them) do not disturb the main thread's;
 *  - eng_ws_alloc_once: aligned, NULL on overflow. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng/eng_workspace.h"

static long r_pass, r_fail;
static void check(int ok, const char *what) {
  if (ok) {
    r_pass++;
  } else {
    r_fail++;
    printf("runtime  workspace      FAIL: %s\n", what);
  }
}

static int aligned(const void *p) { return p && (uintptr_t)p % ENG_WS_ALIGN == 0; }
static void fill(void *p, size_t n, unsigned char v) { memset(p, v, n); }
static int holds(const void *p, size_t n, unsigned char v) {
  const unsigned char *c = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != v) return 0;
  return 1;
}

#define SZ ((size_t)4096)

/* Takes every slot, fills it with its own pattern, and reports whether all were usable and distinct. */
static void *thread_body(void *arg) {
  unsigned char v = (unsigned char)(uintptr_t)arg;
  int ok = 1;
  void *p[ENG_WS_SLOTS];
  for (int s = 0; s < ENG_WS_SLOTS; s++) {
    p[s] = eng_thread_ws((eng_ws_slot_t)s, (size_t)(s + 1) << 16);
    if (!aligned(p[s])) return (void *)0;
    fill(p[s], (size_t)(s + 1) << 16, (unsigned char)(v + s));
  }
  for (int s = 0; s < ENG_WS_SLOTS; s++) ok &= holds(p[s], (size_t)(s + 1) << 16, (unsigned char)(v + s));
  return (void *)(uintptr_t)ok;
}

void eng_test_runtime(long *pass, long *fail) {
  r_pass = r_fail = 0;
  void *p[ENG_WS_SLOTS];
  check(eng_thread_ws(ENG_WS_SLOTS, 16) == NULL, "slot ENG_WS_SLOTS accepted");
  check(eng_thread_ws((eng_ws_slot_t)-1, 16) == NULL, "slot -1 accepted");
  check(aligned(eng_thread_ws(ENG_WS_GEMM_A, 0)), "0 bytes: NULL or misaligned");
  for (int s = 0; s < ENG_WS_SLOTS; s++) {
    p[s] = eng_thread_ws((eng_ws_slot_t)s, SZ);
    check(aligned(p[s]), "slot buffer NULL or misaligned");
    if (p[s]) fill(p[s], SZ + ENG_WS_ALIGN, (unsigned char)(0x10 + s));
  }
  for (int s = 0; s < ENG_WS_SLOTS; s++)
    check(p[s] && holds(p[s], SZ + ENG_WS_ALIGN, (unsigned char)(0x10 + s)), "slots overlap");
  /* kept: a smaller request, then failed requests, leave the buffer and its contents */
  check(eng_thread_ws(ENG_WS_CONV, SZ / 2) == p[ENG_WS_CONV], "smaller request moved the buffer");
  check(eng_thread_ws(ENG_WS_CONV, SIZE_MAX) == NULL, "SIZE_MAX bytes not refused");
  check(eng_thread_ws(ENG_WS_CONV, SIZE_MAX - ENG_WS_ALIGN + 1) == NULL, "bytes + slack overflow not refused");
  check(eng_thread_ws(ENG_WS_CONV, SZ) == p[ENG_WS_CONV], "a refused request dropped the buffer");
  check(p[ENG_WS_CONV] && holds(p[ENG_WS_CONV], SZ, 0x10 + ENG_WS_CONV), "kept buffer's contents changed");
  /* growth */
  void *big = eng_thread_ws(ENG_WS_WINO, (size_t)8 << 20);
  check(aligned(big), "grown buffer NULL or misaligned");
  if (big) {
    fill(big, ((size_t)8 << 20) + ENG_WS_ALIGN, 0x5a);
    check(holds(big, ((size_t)8 << 20) + ENG_WS_ALIGN, 0x5a), "grown buffer not writable");
  }
  p[ENG_WS_WINO] = big;
  if (big) fill(big, SZ, 0x10 + ENG_WS_WINO);
  /* other threads: their own buffers; some exit right away (destructor), the main thread's stay intact */
  for (int round = 0; round < 8; round++) {
    pthread_t th[4];
    int started = 0;
    for (int i = 0; i < 4; i++) started += pthread_create(&th[i], NULL, thread_body, (void *)(uintptr_t)(0x80 + 8 * i)) == 0;
    check(started == 4, "pthread_create failed");
    for (int i = 0; i < started; i++) {
      void *ok = NULL;
      pthread_join(th[i], &ok);
      check(ok != NULL, "a thread's slots unusable or overlapping");
    }
  }
  for (int s = 0; s < ENG_WS_SLOTS; s++)
    check(p[s] && eng_thread_ws((eng_ws_slot_t)s, SZ) == p[s] && holds(p[s], SZ, (unsigned char)(0x10 + s)),
          "another thread changed the main thread's buffer");
  /* one-off buffers */
  void *once = eng_ws_alloc_once(SZ);
  check(aligned(once), "eng_ws_alloc_once NULL or misaligned");
  if (once) fill(once, SZ + ENG_WS_ALIGN, 1);
  free(once);
  check(eng_ws_alloc_once(SIZE_MAX) == NULL, "eng_ws_alloc_once(SIZE_MAX) not refused");
  printf("%-8s %-14s %6ld passed %4ld failed\n", "runtime", "workspace", r_pass, r_fail);
  *pass += r_pass;
  *fail += r_fail;
}

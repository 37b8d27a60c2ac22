#define _POSIX_C_SOURCE 200809L
/* workspace.c: per-thread scratch buffers kept between calls (API and slot list in eng/eng_workspace.h).
 * ISA-neutral, core library, baseline flags, no intrinsics; it computes nothing, so it has no scalar twin.
 * Replaces the three private copies the GEMM, convolution and Winograd drivers each had (one pthread key each).
 *
 * One pthread key holds a thread's table of slots; its destructor frees them when the thread exits (pool workers
 * at eng_set_num_threads, Python threads when they end). The main thread's buffers are not freed by the key (POSIX
 * runs no destructor for a thread that ends by exit()); they are kept and reused like any other thread's, so they
 * are allocated once per growth, never per call, and the process's exit releases them.
 * fork(): the child gets the forking thread's table as copied memory and keeps using it; the other threads' tables
 * are unreachable in the child, like the threads themselves (what every thread-local buffer does under fork). */
#include <pthread.h>
#include <stdlib.h>

#include "eng/eng_workspace.h"

typedef struct ws_table {
  void *p[ENG_WS_SLOTS];
  size_t cap[ENG_WS_SLOTS]; /* usable bytes (the slack not counted) */
} ws_table_t;

static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_key_ok = 0; /* written once inside pthread_once, read after it */

static void ws_table_free(void *v) {
  ws_table_t *w = (ws_table_t *)v;
  if (!w) return;
  for (int i = 0; i < ENG_WS_SLOTS; i++) free(w->p[i]);
  free(w);
}
static void key_init(void) { g_key_ok = pthread_key_create(&g_key, ws_table_free) == 0; }

void *eng_ws_alloc_once(size_t bytes) {
  if (bytes > SIZE_MAX - ENG_WS_ALIGN) return NULL; /* the slack would overflow */
  void *p = NULL;
  if (posix_memalign(&p, ENG_WS_ALIGN, bytes + ENG_WS_ALIGN) != 0) return NULL;
  return p;
}

void *eng_thread_ws(eng_ws_slot_t slot, size_t bytes) {
  if ((int)slot < 0 || (int)slot >= ENG_WS_SLOTS || bytes > SIZE_MAX - ENG_WS_ALIGN) return NULL;
  pthread_once(&g_once, key_init);
  if (!g_key_ok) return NULL;
  ws_table_t *w = (ws_table_t *)pthread_getspecific(g_key);
  if (!w) {
    if (!(w = (ws_table_t *)calloc(1, sizeof *w))) return NULL;
    if (pthread_setspecific(g_key, w) != 0) {
      free(w);
      return NULL;
    }
  }
  if (w->cap[slot] < bytes || !w->p[slot]) {
    free(w->p[slot]); /* before the new one: a growing slot never holds two buffers */
    w->p[slot] = NULL;
    w->cap[slot] = 0;
    void *p = eng_ws_alloc_once(bytes);
    if (!p) return NULL;
    w->p[slot] = p;
    w->cap[slot] = bytes;
  }
  return w->p[slot];
}

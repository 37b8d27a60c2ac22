/* threadpool.c: the process-wide pthread pool behind eng_parallel_for.
 *
 * - Workers start lazily on the first parallel call, so importing engine starts no thread.
 * - Idle workers block on a condition variable after a bounded spin (ENGINE_SPIN_US, default 50 us) that
 *   keeps back-to-back parallel calls free of futex wake-ups; a sleeping pool uses no CPU. The caller spins
 *   briefly for the workers to finish, then sleeps (see eng_parallel_for).
 * - While a model runs (eng_pool_hold: Session.run holds the pool for its whole plan) workers keep spinning
 *   between parallel regions instead of sleeping after 50 us: a model's serial stretches between them (small
 *   ops, the executor) are often longer, and a worker woken by futex on a virtual CPU arrived tens of
 *   microseconds late to every region, so the caller did 58% of BERT's GEMM tiles. They sleep once the run
 *   ends (after the usual spin).
 * - One job runs at a time; concurrent callers from several threads queue on run_mu. A call made from
 *   inside a task runs serially (no nested parallelism, no deadlock).
 * - fork(): the prepare handler takes run_mu so no job is in flight; the child forgets the parent's workers
 *   (they do not exist there) and starts its own on its first parallel call. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng/eng_runtime.h"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __asm__ volatile("pause" ::: "memory")
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield" ::: "memory")
#else
#define CPU_RELAX() ((void)0)
#endif

#include <time.h>

static long g_spin_ns = -1; /* how long a thread spins before it sleeps */

static long spin_ns(void) {
  if (g_spin_ns < 0) {
    const char *e = getenv("ENGINE_SPIN_US");
    long us = 50;
    if (e && *e) {
      char *end;
      long v = strtol(e, &end, 10);
      if (*end == 0 && v >= 0 && v <= 1000000) us = v;
    }
    g_spin_ns = us * 1000;
  }
  return g_spin_ns;
}

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Spins until *flag != value (returns 1) or the spin time runs out (returns 0). */
static int spin_until_changed(const atomic_ulong *flag, unsigned long value) {
  long budget = spin_ns();
  if (budget == 0) return 0;
  long long end = now_ns() + budget;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (atomic_load_explicit(flag, memory_order_acquire) != value) return 1;
      CPU_RELAX();
    }
    if (now_ns() >= end) return 0;
  }
}

typedef struct pool {
  pthread_mutex_t run_mu; /* one job at a time */
  pthread_mutex_t mu;     /* guards everything below that is not atomic */
  pthread_cond_t work_cv;
  pthread_cond_t done_cv;
  int n_threads;     /* configured size incl. the caller; 0 = not yet decided */
  int n_workers;     /* live worker threads */
  pthread_t *threads;
  int shutdown;
  atomic_ulong generation; /* bumped once per job */
  unsigned long start_generation; /* generation at worker creation (set under run_mu) */
  eng_task_fn fn;           /* the current job, written and read under mu */
  void *ctx;
  size_t n_tasks;
  atomic_uint_least64_t next; /* (job generation << 32) | next task index: a stale claim cannot succeed */
  atomic_size_t done;         /* tasks of the current job completed */
} pool_t;

static atomic_int g_hold; /* > 0 while some caller holds the pool (eng_pool_hold) */

static pool_t g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                        PTHREAD_COND_INITIALIZER};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Thread_local int t_in_task = 0;

/* Claims and runs tasks of job `gen` until none is left. A thread that arrives late, after the job is over
 * and maybe after the next one started, fails its claim (the generation in `next` differs) and runs
 * nothing, so the caller never has to wait for a worker that did no work. */
static void run_tasks(pool_t *p, uint32_t gen, eng_task_fn fn, void *ctx, size_t n) {
  for (;;) {
    uint64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
    do {
      if ((uint32_t)(v >> 32) != gen || (v & 0xffffffffu) >= n) return;
    } while (!atomic_compare_exchange_weak_explicit(&p->next, &v, v + 1, memory_order_acq_rel, memory_order_acquire));
    fn(ctx, (size_t)(v & 0xffffffffu), n);
    if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == n) {
      pthread_mutex_lock(&p->mu); /* the caller checks `done` under mu before it sleeps: no lost wake-up */
      pthread_cond_signal(&p->done_cv);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

static void *worker_main(void *arg) {
  pool_t *p = (pool_t *)arg;
  t_in_task = 1; /* anything a worker runs is inside a task */
  unsigned long seen = p->start_generation; /* the generation when this worker was created */
  for (;;) {
    /* catches the next job of a burst without a futex wake-up; keeps spinning while the pool is held */
    while (!spin_until_changed(&p->generation, seen) && atomic_load_explicit(&g_hold, memory_order_relaxed) > 0 &&
           !__atomic_load_n(&p->shutdown, __ATOMIC_ACQUIRE)) {
    }
    pthread_mutex_lock(&p->mu);
    while (!p->shutdown && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->shutdown) {
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    seen = atomic_load(&p->generation);
    eng_task_fn fn = p->fn;
    void *ctx = p->ctx;
    size_t n = p->n_tasks;
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, (uint32_t)seen, fn, ctx, n);
  }
}

static int read_int_file(const char *path, long long *a, long long *b) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char buf[128] = {0};
  int ok = fgets(buf, sizeof buf, f) != NULL;
  fclose(f);
  if (!ok) return 0;
  if (strncmp(buf, "max", 3) == 0) {
    *a = -1;
    return sscanf(buf + 3, "%lld", b) == 1 ? 2 : 1;
  }
  return sscanf(buf, "%lld %lld", a, b);
}

/* CPU quota of this process's cgroup (v2 cpu.max, else v1 cfs quota), rounded up; 0 if unlimited/unknown. */
static int cgroup_cpu_limit(void) {
  long long quota = -1, period = 0;
  char path[600] = "/sys/fs/cgroup/cpu.max";
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "0::", 3) == 0) {
        line[strcspn(line, "\n")] = 0;
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", line + 3);
        break;
      }
    }
    fclose(f);
  }
  if (read_int_file(path, &quota, &period) == 2 || read_int_file("/sys/fs/cgroup/cpu.max", &quota, &period) == 2) {
    if (quota > 0 && period > 0) return (int)((quota + period - 1) / period);
    return 0;
  }
  long long q1, p1, dummy;
  if (read_int_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", &q1, &dummy) >= 1 &&
      read_int_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", &p1, &dummy) >= 1 && q1 > 0 && p1 > 0)
    return (int)((q1 + p1 - 1) / p1);
  return 0;
}

int eng_usable_cpus(void) {
  int n = 0;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n <= 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c > 0 ? (int)c : 1;
  }
  int q = cgroup_cpu_limit();
  if (q > 0 && q < n) n = q;
  return n > 0 ? n : 1;
}

int eng_default_num_threads(void) {
  const char *env = getenv("ENGINE_NUM_THREADS");
  if (env && *env) {
    char *end;
    long v = strtol(env, &end, 10);
    if (*end == 0 && v >= 1 && v <= 1024) return (int)v;
  }
  return eng_usable_cpus();
}

static void stop_workers_locked(pool_t *p) {
  if (p->n_workers == 0) return;
  pthread_mutex_lock(&p->mu);
  __atomic_store_n(&p->shutdown, 1, __ATOMIC_RELEASE); /* also read, without mu, by a worker spinning while held */
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  p->threads = NULL;
  p->n_workers = 0;
  p->shutdown = 0;
}

/* Called with run_mu held. Returns the number of workers available (may be fewer than asked on failure). */
static int ensure_workers_locked(pool_t *p) {
  if (p->n_threads == 0) p->n_threads = eng_default_num_threads();
  int want = p->n_threads - 1;
  if (p->n_workers >= want) return p->n_workers;
  stop_workers_locked(p);
  p->threads = (pthread_t *)calloc((size_t)want, sizeof(pthread_t));
  if (!p->threads) return 0;
  p->start_generation = atomic_load(&p->generation);
  int started = 0;
  for (; started < want; started++) {
    if (pthread_create(&p->threads[started], NULL, worker_main, p) != 0) break;
  }
  p->n_workers = started; /* if thread creation fails we run with fewer threads, never fail the call */
  return started;
}

static void atfork_prepare(void) { pthread_mutex_lock(&g_pool.run_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_pool.run_mu); }
static void atfork_child(void) {
  /* Only the forking thread exists in the child: the parent's workers are gone. Forget them (their stacks
   * leak in the child by necessity), reset the locks and keep the configured size. */
  pthread_mutex_init(&g_pool.run_mu, NULL);
  pthread_mutex_init(&g_pool.mu, NULL);
  pthread_cond_init(&g_pool.work_cv, NULL);
  pthread_cond_init(&g_pool.done_cv, NULL);
  free(g_pool.threads);
  g_pool.threads = NULL;
  g_pool.n_workers = 0;
  g_pool.shutdown = 0;
  atomic_store(&g_hold, 0); /* the holders were threads of the parent */

}
static void pool_once(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

void eng_parallel_for(size_t n, eng_task_fn fn, void *ctx) {
  if (n == 0) return;
  pool_t *p = &g_pool;
  if (n == 1 || t_in_task || n > 0xffffffffu) {
    for (size_t i = 0; i < n; i++) fn(ctx, i, n);
    return;
  }
  pthread_once(&g_once, pool_once);
  pthread_mutex_lock(&p->run_mu);
  int workers = ensure_workers_locked(p);
  if (workers == 0) {
    pthread_mutex_unlock(&p->run_mu);
    t_in_task = 1;
    for (size_t i = 0; i < n; i++) fn(ctx, i, n);
    t_in_task = 0;
    return;
  }
  pthread_mutex_lock(&p->mu);
  unsigned long gen = atomic_load(&p->generation) + 1;
  p->fn = fn;
  p->ctx = ctx;
  p->n_tasks = n;
  atomic_store(&p->done, 0);
  atomic_store_explicit(&p->next, (uint64_t)(uint32_t)gen << 32, memory_order_release);
  atomic_store_explicit(&p->generation, gen, memory_order_release);
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);

  t_in_task = 1;
  run_tasks(p, (uint32_t)gen, fn, ctx, n);
  t_in_task = 0;

  /* Wait for tasks other threads claimed, not for every worker to show up: a worker that is late (its core
   * taken by another process) finds nothing left and runs nothing. The caller spins only briefly (a quarter of
   * the workers' spin): the other tasks are usually a few microseconds from done, and a futex sleep and wake-up
   * cost tens of microseconds per parallel region (MobileNetV2 has a hundred of them); on an oversubscribed
   * machine a longer spin would hold the core a preempted worker needs. */
  if (atomic_load_explicit(&p->done, memory_order_acquire) != n) {
    long long end = now_ns() + spin_ns() / 4;
    do {
      for (int i = 0; i < 64 && atomic_load_explicit(&p->done, memory_order_acquire) != n; i++) CPU_RELAX();
    } while (atomic_load_explicit(&p->done, memory_order_acquire) != n && now_ns() < end);
  }
  if (atomic_load_explicit(&p->done, memory_order_acquire) != n) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->done) != n) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&p->run_mu);
}

int eng_get_num_threads(void) {
  pool_t *p = &g_pool;
  pthread_mutex_lock(&p->run_mu);
  if (p->n_threads == 0) p->n_threads = eng_default_num_threads();
  int n = p->n_threads;
  pthread_mutex_unlock(&p->run_mu);
  return n;
}

eng_status_t eng_set_num_threads(int n) {
  if (n < 0 || n > 1024) return ENG_ERR_INVALID_ARG;
  pthread_once(&g_once, pool_once);
  pool_t *p = &g_pool;
  pthread_mutex_lock(&p->run_mu);
  stop_workers_locked(p);
  p->n_threads = n == 0 ? eng_default_num_threads() : n;
  pthread_mutex_unlock(&p->run_mu);
  return ENG_OK;
}

void eng_pool_hold(int on) {
  if (on)
    atomic_fetch_add_explicit(&g_hold, 1, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&g_hold, 1, memory_order_relaxed);
}

int eng_pool_live_workers(void) {
  pool_t *p = &g_pool;
  pthread_mutex_lock(&p->run_mu);
  int n = p->n_workers;
  pthread_mutex_unlock(&p->run_mu);
  return n;
}

size_t eng_task_count(size_t units, size_t per_unit, size_t min_task_work) {
  if (units <= 1) return units;
  size_t work;
  if (!eng_mul_size(units, per_unit ? per_unit : 1, &work)) work = SIZE_MAX;
  size_t threads = (size_t)eng_get_num_threads();
  size_t t = work / (min_task_work ? min_task_work : 1), cap = threads <= 1 ? 1 : 4 * threads;
  if (t > cap) t = cap;
  if (t > units) t = units;
  return t ? t : 1;
}

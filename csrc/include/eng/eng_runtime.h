/* eng_runtime.h: the process-wide thread pool and the high-level GEMM entry points. */
#ifndef ENG_RUNTIME_H
#define ENG_RUNTIME_H

#include "eng/eng_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- thread pool ----
 * One pool per process. Workers are started lazily on the first parallel call, sleep on a condition
 * variable when idle, and are rebuilt lazily in a forked child. */
typedef void (*eng_task_fn)(void *ctx, size_t task, size_t n_tasks);

/* Runs fn(ctx, i, n) for i in [0, n) on the pool (the calling thread takes part) and returns when all are
 * done. Called from inside a task, or with a pool of one thread, it runs the tasks serially. */
void eng_parallel_for(size_t n, eng_task_fn fn, void *ctx);
/* Tasks per thread that the convolution and GEMM drivers aim at when they split a large product. Tasks are handed
 * out dynamically, so a region ends on average about half a task after its work is shared out: with 4 per thread
 * that tail left the second of 2 threads idle ~20% of a ResNet-18 run; 8 measured 3-14% faster model runs at 2
 * threads (ResNet-50, MobileNetV2, BERT-small), while smaller tasks re-read more weights per output. */
#define ENG_TASKS_PER_THREAD 8
/* How many tasks to cut `units` units of per_unit work each into: 1 when the whole is below min_task_work
 * (waking the pool would cost more than it saves), else enough for every task to get about min_task_work, at
 * most four per thread (late starters still find work) and at most `units`. */
size_t eng_task_count(size_t units, size_t per_unit, size_t min_task_work);
/* Threads used by eng_parallel_for (calling thread included). */
int eng_get_num_threads(void);
/* Sets the pool size (>= 1); 0 restores the default. Waits for running work to finish. */
eng_status_t eng_set_num_threads(int n);
/* What the default would be: ENGINE_NUM_THREADS, else the CPUs this process may use (affinity mask and
 * cgroup CPU quota). */
int eng_default_num_threads(void);
/* CPUs usable by this process from the affinity mask and cgroup quota, ignoring ENGINE_NUM_THREADS. */
int eng_usable_cpus(void);
/* Number of worker threads currently alive (0 until the first parallel call); for tests. */
int eng_pool_live_workers(void);
/* eng_pool_hold(1) ... eng_pool_hold(0) around a burst of parallel calls with serial work between them (a model's
 * run): the workers spin between the calls instead of sleeping after ENGINE_SPIN_US. Nests and counts across
 * threads; every hold(1) needs its hold(0). */
void eng_pool_hold(int on);

/* ---- GEMM ----
 * C = act(alpha * op(A) * op(B) + beta * C + bias), row-major with leading dimensions.
 * op(A) is M x K: A (M x K, lda) or A^T with A stored K x M. op(B) is K x N: B (K x N, ldb) or B^T with B
 * stored N x K. beta == 0 never reads C. bias: NULL, a vector of N (per column) or of M (per row). */
typedef enum eng_bias_kind { ENG_BIAS_NONE = 0, ENG_BIAS_COL = 1, ENG_BIAS_ROW = 2 } eng_bias_kind_t;

typedef struct eng_gemm_args {
  size_t m, n, k;
  float alpha, beta;
  const float *a;
  size_t lda;
  int trans_a;
  const float *b;
  size_t ldb;
  int trans_b;
  float *c;
  size_t ldc;
  const float *bias;
  int bias_kind; /* eng_bias_kind_t */
  eng_act_t act;
} eng_gemm_args_t;

/* Validates sizes and strides, then runs on the active kernels and the pool. */
eng_status_t eng_gemm_f32(const eng_gemm_args_t *args);
/* Same with an explicit table (tests compare tables directly) and thread use (0 = serial). */
eng_status_t eng_gemm_f32_with(const eng_kernels_t *kt, const eng_gemm_args_t *args, int parallel);

/* B packed once (constant weights), in the panel layout of one table's GEMM micro-kernel: K blocks of kc rows,
 * each holding round_up(n, nr) / nr panels of kc x nr floats, zero-padded. A table with another nr or kc cannot
 * use it (eng_gemm_prepacked_f32 then packs B itself from args->b, as eng_gemm_f32 does). */
typedef struct eng_gemm_packed_b {
  const float *data;
  size_t k, n;
  unsigned nr;
  size_t kc;
} eng_gemm_packed_b_t;

/* Floats needed to pack a k x n op(B) for table kt (0 if k or n is 0, SIZE_MAX on overflow). */
size_t eng_gemm_packed_b_floats(const eng_kernels_t *kt, size_t k, size_t n);
/* Packs op(B) (b stored k x n, or n x k when trans_b, row stride ldb) into dst (dst_floats floats, at least
 * eng_gemm_packed_b_floats) and describes it in *out. */
eng_status_t eng_gemm_pack_b_f32(const eng_kernels_t *kt, size_t k, size_t n, const float *b, size_t ldb, int trans_b,
                                 float *dst, size_t dst_floats, eng_gemm_packed_b_t *out);
/* eng_gemm_f32 with op(B) taken from pb when it fits the active table and the product needs a packed B (M > 1
 * and N > 1); args->b (the same matrix, unpacked) is still required: the GEMV paths and a table of another tile
 * read it. pb's k and n must equal args' k and n. */
eng_status_t eng_gemm_prepacked_f32(const eng_gemm_args_t *args, const eng_gemm_packed_b_t *pb);
/* Same with an explicit table and thread use (0 = serial), as eng_gemm_f32_with. */
eng_status_t eng_gemm_prepacked_f32_with(const eng_kernels_t *kt, const eng_gemm_args_t *args,
                                         const eng_gemm_packed_b_t *pb, int parallel);

/* A batch of GEMMs sharing sizes, strides and flags; element offsets per problem into a, b, c (and bias, a
 * per-problem offset array or NULL for one shared bias). Problems run in parallel when each is small. */
eng_status_t eng_gemm_batch_f32(const eng_gemm_args_t *args, size_t batch, const int64_t *a_off, const int64_t *b_off,
                                const int64_t *c_off);

#ifdef __cplusplus
}
#endif
#endif /* ENG_RUNTIME_H */

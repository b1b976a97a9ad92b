/*
** quant.c — ops_matmul_t: picks the kernel for (dtype, SIMD level), quantizes the activations
** once per call, tiles and threads the work.
**
** Work split: threads claim chunks of W rows (about QM_CHUNK_BYTES of weights, a multiple of
** QM_ROW_ALIGN rows so no two threads write the same cache line of y) from an atomic counter,
** rather than a fixed half each: when the machine is shared and one thread is descheduled,
** the others take over its chunks instead of the whole call waiting a time slice for it.
** Within a chunk a thread walks W in tiles of at most QM_TILE_BYTES and, for each tile, all x
** rows (the kernel groups them by 2-4 so a W block is unpacked once per group). For m <= 4
** that is a sequential pass over each chunk; for larger m the tile is re-read from L1, not
** from memory: W is streamed from DRAM once per call. Which thread computes a row does not
** change its bits.
**
** Scratch: quantized activations take ~1.4 bytes per value, so a decode step's (one row of
** k <= 11k, or four of k <= 2.8k) fit a 16 KiB stack buffer; larger batches malloc per call
** (measured 30-80 ns for 22 KiB to 1.4 MiB once glibc's mmap threshold has adapted, against
** a matmul of tens of µs at least). If malloc fails, the rows are done in groups that fit the
** stack buffer, which re-reads W per group but cannot fail; a row too long even for that goes
** through the reference. So the function has no error path.
*/
#include "quant.h"

#include "ops.h"
#include "ops_simd.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Stack scratch for quantized activations. */
#define QM_STACK_BYTES (16 * 1024)
/* A W tile small enough to stay in L1 (32-48 KiB) next to a group of x rows. */
#define QM_TILE_BYTES (12 * 1024)
#define QM_ROW_ALIGN 16
/* Work unit of the threads: small enough that a descheduled thread leaves little behind, large
** enough (~µs) that claiming it costs nothing and the prefetchers see long streams. */
#define QM_CHUNK_BYTES (48 * 1024)
/* Below this many weight bytes a matmul takes a couple of µs: run it on the caller alone. */
#define QM_INLINE_BYTES (32 * 1024)

#ifdef QUANT_X86
/* F16C. Not the CPUID instruction itself: this runs on every call, and CPUID traps to the
** hypervisor in a VM (measured ~10 µs, as long as a whole decode-size matmul), whereas
** __builtin_cpu_supports reads what libgcc cached at start-up. clang (up to 16 at least) does
** not know "f16c" there; every CPU with AVX2 has F16C (Ivy Bridge and Piledriver brought it,
** before AVX2), so there the AVX2 check stands for it. */
static int has_f16c(void)
{
#if defined(__clang__)
    return 1;
#else
    return __builtin_cpu_supports("f16c");
#endif
}
#endif

quant_level quant_detect(void)
{
#ifdef QUANT_X86
    if (!__builtin_cpu_supports("fma") || !has_f16c()) return QUANT_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return QUANT_AVX512;
    if (__builtin_cpu_supports("avx2")) return QUANT_AVX2;
#endif
    return QUANT_SCALAR;
}

const char *quant_level_name(quant_level level)
{
    switch (level) {
    case QUANT_AVX512: return "avx512vnni";
    case QUANT_AVX2: return "avx2";
    default: return "scalar";
    }
}

int quant_act_blk(dtype t)
{
    switch (t) {
    case DT_Q8_0: case DT_Q4_0: case DT_Q4_1: return QK_32;
    case DT_Q4_K: case DT_Q6_K: return QK_K;
    default: return 0;
    }
}

int quant_act_pairs(dtype t) { return t == DT_Q4_0 || t == DT_Q4_1; }

/* ---- activation scratch ---- */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t qact_bytes(int m, int k, int blk)
{
    size_t nb = (size_t)m * (size_t)(k / blk);
    return align64((size_t)m * k) + align64(nb * sizeof(float)) +
           (blk == QK_32 ? align64(nb * sizeof(float)) : 0) +
           align64((size_t)m * (k / 16) * sizeof(int16_t));
}

void qact_init(qact *a, void *mem, int m, int k, int blk, int pairs)
{
    size_t nb = (size_t)m * (size_t)(k / blk);
    char *p = mem;
    a->k = k;
    a->blk = blk;
    a->pairs = blk == QK_32 && pairs;
    a->qs = (int8_t *)p;
    p += align64((size_t)m * k);
    a->d = (float *)(void *)p;
    p += align64(nb * sizeof(float));
    a->s = NULL;
    if (blk == QK_32) {
        a->s = (float *)(void *)p;
        p += align64(nb * sizeof(float));
    }
    a->bsums = (int16_t *)(void *)p;
}

void quant_act(quant_level level, qact *a, const float *x, int r0, int r1)
{
    switch (level) {
#ifdef QUANT_X86
    case QUANT_AVX512: quant_act_avx512(a, x, r0, r1); break;
    case QUANT_AVX2: quant_act_avx2(a, x, r0, r1); break;
#endif
    default: quant_act_scalar(a, x, r0, r1); break;
    }
}

/* ---- kernel table ---- */

quant_rows_fn quant_kernel(dtype t, quant_level level)
{
#ifdef QUANT_X86
    if (level == QUANT_AVX512) {
        switch (t) {
        case DT_F16: return quant_rows_f16_avx512;
        case DT_BF16: return quant_rows_bf16_avx512;
        case DT_Q8_0: return quant_rows_q8_0_avx512;
        case DT_Q4_0: return quant_rows_q4_0_avx512;
        case DT_Q4_1: return quant_rows_q4_1_avx512;
        case DT_Q4_K: return quant_rows_q4_k_avx512;
        case DT_Q6_K: return quant_rows_q6_k_avx512;
        default: return NULL;
        }
    }
    if (level == QUANT_AVX2) {
        switch (t) {
        case DT_F16: return quant_rows_f16_avx2;
        case DT_BF16: return quant_rows_bf16_avx2;
        case DT_Q8_0: return quant_rows_q8_0_avx2;
        case DT_Q4_0: return quant_rows_q4_0_avx2;
        case DT_Q4_1: return quant_rows_q4_1_avx2;
        case DT_Q4_K: return quant_rows_q4_k_avx2;
        case DT_Q6_K: return quant_rows_q6_k_avx2;
        default: return NULL;
        }
    }
#endif
    switch (t) {
    case DT_F16: return quant_rows_f16_scalar;
    case DT_BF16: return quant_rows_bf16_scalar;
    case DT_Q8_0: return quant_rows_q8_0_scalar;
    case DT_Q4_0: return quant_rows_q4_0_scalar;
    case DT_Q4_1: return quant_rows_q4_1_scalar;
    case DT_Q4_K: return quant_rows_q4_k_scalar;
    case DT_Q6_K: return quant_rows_q6_k_scalar;
    default: return NULL;
    }
}

/* ---- threading ---- */

typedef struct qm_task {
    quant_rows_fn fn;
    qjob jb;
    int n, m;
    int chunk;          /* W rows per claim */
    int tile;           /* W rows per L1 tile */
    atomic_int next;    /* next chunk to claim */
} qm_task;

static void qm_worker(void *arg, int ith, int nth)
{
    qm_task *t = arg;
    (void)ith;
    (void)nth;
    for (;;) {
        int n0 = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed) * t->chunk;
        if (n0 >= t->n) return;
        int n1 = INFER_MIN(t->n, n0 + t->chunk);
        for (int i = n0; i < n1; i += t->tile) t->fn(&t->jb, i, INFER_MIN(n1, i + t->tile), 0, t->m);
    }
}

static void qm_run(threadpool *tp, qm_task *t)
{
    int nth = tp ? tp_size(tp) : 1;
    atomic_store_explicit(&t->next, 0, memory_order_relaxed);   /* tp_run publishes it */
    if (nth == 1 || (size_t)t->n * t->jb.row_bytes < QM_INLINE_BYTES) {
        t->chunk = t->n;
        qm_worker(t, 0, 1);
        return;
    }
    /* at least 4 chunks per thread so the load can even out, rows a multiple of the alignment */
    size_t rows = QM_CHUNK_BYTES / t->jb.row_bytes;
    rows = INFER_MIN(rows, (size_t)(t->n + 4 * nth - 1) / (size_t)(4 * nth));
    t->chunk = (int)INFER_MAX((size_t)QM_ROW_ALIGN, (rows + QM_ROW_ALIGN - 1) / QM_ROW_ALIGN * QM_ROW_ALIGN);
    tp_run(tp, qm_worker, t);
}

static ops_simd_level f32_level(quant_level level)
{
    return level == QUANT_AVX512 ? OPS_SIMD_AVX512 : level == QUANT_AVX2 ? OPS_SIMD_AVX2 : OPS_SIMD_SCALAR;
}

void ops_matmul_t_level(quant_level level, threadpool *tp, float *y, const float *x,
                        const tensor *w, int m)
{
    const int n = (int)w->n_rows, k = (int)w->n_cols;
    if (m <= 0 || n <= 0) return;
    quant_level best = quant_detect();
    if (level > best) level = best;
    if (w->type == DT_F32) {
        ops_matmul_simd(f32_level(level), tp, y, x, w->data, m, n, k);
        return;
    }
    quant_rows_fn fn = quant_kernel(w->type, level);
    /* unknown type, or k not a whole number of blocks: the loaders reject both */
    if (!fn || dtype_row_bytes(w->type, k) == 0) return;
    qm_task t = {fn, {y, n, x, NULL, w->data, dtype_row_bytes(w->type, k), k}, n, m, 0, 1, 0};
    t.tile = (int)INFER_MAX((size_t)1, QM_TILE_BYTES / t.jb.row_bytes);

    const int blk = quant_act_blk(w->type);
    if (!blk) {   /* F16 / BF16: x is used as is */
        qm_run(tp, &t);
        return;
    }
    /* 64-byte alignment of the stack buffer keeps the activation rows on cache lines */
    _Alignas(64) char stack[QM_STACK_BYTES];
    qact xa;
    size_t need = qact_bytes(m, k, blk);
    void *heap = need <= sizeof stack ? NULL : malloc(need);
    int rows = m;   /* rows per pass */
    if (need > sizeof stack && !heap) {
        rows = 0;
        while (rows < m && qact_bytes(rows + 1, k, blk) <= sizeof stack) rows++;
        if (rows == 0) {
            ops_ref_matmul_t(y, x, w, m);
            return;
        }
    }
    for (int r0 = 0; r0 < m; r0 += rows) {
        int mr = INFER_MIN(rows, m - r0);
        qact_init(&xa, heap ? heap : stack, mr, k, blk, quant_act_pairs(w->type));
        quant_act(level, &xa, x + (size_t)r0 * k, 0, mr);
        t.jb.y = y + (size_t)r0 * n;
        t.jb.xa = &xa;
        t.m = mr;
        qm_run(tp, &t);
    }
    free(heap);
}

void ops_matmul_t(threadpool *tp, float *y, const float *x, const tensor *w, int m)
{
    if (w->type == DT_F32) {
        ops_matmul(tp, y, x, w->data, m, (int)w->n_rows, (int)w->n_cols);
        return;
    }
    ops_matmul_t_level(quant_detect(), tp, y, x, w, m);
}

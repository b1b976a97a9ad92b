/*
** ops_matmul.c — y[m][n] = sum_k x[m][k] * W[n][k], the kernel that decides decode speed.
**
** Small m (decode, a few sequences): a GEMV-like SIMD kernel threaded over the rows of W,
** which streams W from memory once for all m input rows; at m = 1 it is bound by memory
** bandwidth, so the aim is one clean sequential stream per thread, not fewer FLOPs. Large
** m (prefill, big batches): cblas_sgemm, which blocks for the caches and is compute bound.
** OPS_SGEMM_MIN_ROWS (ops.h) is where sgemm overtakes the SIMD kernel (bench_kernels).
**
** Batch invariance: every output element has its own accumulators, fed in k order in a
** fixed pattern (see mm512_row), whatever the blocking over m, n or threads. So a row's
** result does not depend on which other rows share the batch, nor on the thread count:
** greedy decoding gives the same text batched or alone (below OPS_SGEMM_MIN_ROWS).
*/
#include "ops_simd.h"

#include <cblas.h>
#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define MM_X86 1
#include <immintrin.h>
#endif

/* Below this many multiply-adds the whole product fits in L2 and takes a few µs: handing
** half to a worker costs about as much as it saves, so it runs on the caller alone. */
#define MM_INLINE_MACS (64 * 1024)
/* Threads get contiguous ranges of W rows in multiples of this, so no two threads write the
** same cache line of y. */
#define MM_ROW_ALIGN 16
/* No software prefetch: on Zen 4 (this VM) prefetcht0/nta 0.5-8 KiB ahead of the W stream
** cut m = 1 bandwidth from ~24 to 12-15 GB/s per thread; the hardware stream prefetcher
** does better on one sequential stream per thread. */

typedef struct mm_job {
    ops_simd_level level;
    float *y;
    const float *x, *w;
    int m, n, k;
    int chunk;   /* rows of W per thread, a multiple of MM_ROW_ALIGN */
} mm_job;

/* ---- plain C ---- */

static void mm_rows_scalar(float *y, const float *x, const float *w, int m, int n, int k,
                           int n0, int n1)
{
    int i = n0;
    for (; i + 4 <= n1; i += 4) {
        const float *w0 = w + (size_t)i * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        for (int r = 0; r < m; r++) {
            const float *xr = x + (size_t)r * k;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int j = 0; j < k; j++) {
                float xv = xr[j];
                s0 += w0[j] * xv;
                s1 += w1[j] * xv;
                s2 += w2[j] * xv;
                s3 += w3[j] * xv;
            }
            float *yr = y + (size_t)r * n + i;
            yr[0] = s0;
            yr[1] = s1;
            yr[2] = s2;
            yr[3] = s3;
        }
    }
    for (; i < n1; i++) {
        const float *wi = w + (size_t)i * k;
        for (int r = 0; r < m; r++) {
            const float *xr = x + (size_t)r * k;
            float s = 0;
            for (int j = 0; j < k; j++) s += wi[j] * xr[j];
            y[(size_t)r * n + i] = s;
        }
    }
}

#ifdef MM_X86

/* ---- AVX-512 ----
** One W row against R rows of x (R = 1..8, a compile-time constant at every call, so the
** loops unroll and the accumulators stay in registers: 16 + 2 W of the 32 zmm registers; x
** is a memory operand of the FMA). Each (x row, W row) pair has MM_ACC = 2 accumulators
** taking alternate 16-float steps (32 floats a loop), then a leftover full step and the
** masked tail into the first, then acc0 + acc1 and one horizontal sum: a fixed order
** whatever R is.
** Why this shape (bench notes, Zen 4 unless said):
** - One W row at a time, not several interleaved: four interleaved row streams read at
**   ~15 GB/s per thread where one sequential stream reads at ~26 GB/s.
** - 8 x rows per W row: up to m = 8 W is read once with no separate compute phase (with 4
**   rows per block, the second block of m = 8 ran from L1 while the DRAM stream idled: the
**   m = 8 pass took m = 4's time plus a full compute pass). Loads per FMA drop from 1.25 to
**   1.125: L2-resident m = 8 went from 71 to 90 GFLOP/s on one core (peak ~98).
** - 2 accumulators per pair are enough: even at m = 1 two FMA chains of 4-cycle latency
**   consume 32 B/cycle, several times what DRAM delivers to a core; with W in L2, m = 1
**   lost 5% against 4 accumulators (48.8 vs 51.5 GFLOP/s on one core). */

#define T512 __attribute__((target("avx512f,avx512bw,fma")))
#define INLINE static inline __attribute__((always_inline))
#define MM_ACC 2
#define MM_R512 8

INLINE T512 void mm512_row(float *y, int ldy, const float *x, const float *w, int k, int R)
{
    __m512 acc[MM_R512][MM_ACC];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < MM_ACC; c++) acc[r][c] = _mm512_setzero_ps();

    int j = 0;
    for (; j + 16 * MM_ACC <= k; j += 16 * MM_ACC) {
        __m512 wv[MM_ACC];
#pragma GCC unroll 4
        for (int c = 0; c < MM_ACC; c++) wv[c] = _mm512_loadu_ps(w + j + 16 * c);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const float *xr = x + (size_t)r * k + j;
#pragma GCC unroll 4
            for (int c = 0; c < MM_ACC; c++)
                acc[r][c] = _mm512_fmadd_ps(wv[c], _mm512_loadu_ps(xr + 16 * c), acc[r][c]);
        }
    }
    for (; j < k; j += 16) {
        const __mmask16 mask = k - j >= 16 ? 0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 wv = _mm512_maskz_loadu_ps(mask, w + j);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
            acc[r][0] =
                _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x + (size_t)r * k + j), acc[r][0]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        __m512 s = acc[r][0];
#pragma GCC unroll 4
        for (int c = 1; c < MM_ACC; c++) s = _mm512_add_ps(s, acc[r][c]);
        y[(size_t)r * ldy] = _mm512_reduce_add_ps(s);
    }
}

/* W rows [n0, n1) against all m rows of x, 8 x rows at a time: the first block streams the
** W row from memory, later ones (m > 8) find it in L1 (a row is at most 16 KiB at k = 4096). */
static T512 void mm_rows_avx512(float *y, const float *x, const float *w, int m, int n, int k,
                                int n0, int n1)
{
    for (int i = n0; i < n1; i++) {
        const float *wi = w + (size_t)i * k;
        int r = 0;
        for (; r + MM_R512 <= m; r += MM_R512)
            mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, MM_R512);
        switch (m - r) {
        case 7: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 7); break;
        case 6: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 6); break;
        case 5: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 5); break;
        case 4: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 4); break;
        case 3: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 3); break;
        case 2: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 2); break;
        case 1: mm512_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 1); break;
        default: break;
        }
    }
}

/* ---- AVX2 + FMA: the same shape with 8 lanes; 16 ymm registers allow R <= 4 (8
** accumulators + 2 W). On a Xeon (no AVX2-only machine at hand) this beat 4 accumulators x
** 2 rows for m >= 4 and lost ~15% at m = 1 with W in L2, where DRAM-bound rows don't notice. */

#define T256 __attribute__((target("avx2,fma")))

INLINE T256 float mm256_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Lane masks for the k tail: 8 - t loads starting at mm256_tail + t give t leading ones. */
static const int32_t mm256_tail[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#define MM_ACC2 2
#define MM_R256 4

INLINE T256 void mm256_row(float *y, int ldy, const float *x, const float *w, int k, int R)
{
    __m256 acc[MM_R256][MM_ACC2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < MM_ACC2; c++) acc[r][c] = _mm256_setzero_ps();

    int j = 0;
    for (; j + 8 * MM_ACC2 <= k; j += 8 * MM_ACC2) {
        __m256 wv[MM_ACC2];
#pragma GCC unroll 4
        for (int c = 0; c < MM_ACC2; c++) wv[c] = _mm256_loadu_ps(w + j + 8 * c);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const float *xr = x + (size_t)r * k + j;
#pragma GCC unroll 4
            for (int c = 0; c < MM_ACC2; c++)
                acc[r][c] = _mm256_fmadd_ps(wv[c], _mm256_loadu_ps(xr + 8 * c), acc[r][c]);
        }
    }
    for (; j + 8 <= k; j += 8) {
        __m256 wv = _mm256_loadu_ps(w + j);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t)r * k + j), acc[r][0]);
    }
    if (j < k) {
        const __m256i mask = _mm256_loadu_si256((const __m256i *)(mm256_tail + 8 - (k - j)));
        __m256 wv = _mm256_maskload_ps(w + j, mask);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[r][0] =
                _mm256_fmadd_ps(wv, _mm256_maskload_ps(x + (size_t)r * k + j, mask), acc[r][0]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        __m256 s = acc[r][0];
#pragma GCC unroll 4
        for (int c = 1; c < MM_ACC2; c++) s = _mm256_add_ps(s, acc[r][c]);
        y[(size_t)r * ldy] = mm256_hsum(s);
    }
}

static T256 void mm_rows_avx2(float *y, const float *x, const float *w, int m, int n, int k,
                              int n0, int n1)
{
    for (int i = n0; i < n1; i++) {
        const float *wi = w + (size_t)i * k;
        int r = 0;
        for (; r + MM_R256 <= m; r += MM_R256)
            mm256_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, MM_R256);
        switch (m - r) {
        case 3: mm256_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 3); break;
        case 2: mm256_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 2); break;
        case 1: mm256_row(y + (size_t)r * n + i, n, x + (size_t)r * k, wi, k, 1); break;
        default: break;
        }
    }
}

#endif /* MM_X86 */

static void mm_worker(void *arg, int ith, int nth)
{
    const mm_job *jb = arg;
    int n0 = ith * jb->chunk;
    int n1 = INFER_MIN(jb->n, n0 + jb->chunk);
    if (n0 >= n1) return;
    switch (jb->level) {
#ifdef MM_X86
    case OPS_SIMD_AVX512: mm_rows_avx512(jb->y, jb->x, jb->w, jb->m, jb->n, jb->k, n0, n1); break;
    case OPS_SIMD_AVX2: mm_rows_avx2(jb->y, jb->x, jb->w, jb->m, jb->n, jb->k, n0, n1); break;
#endif
    default: mm_rows_scalar(jb->y, jb->x, jb->w, jb->m, jb->n, jb->k, n0, n1); break;
    }
}

void ops_matmul_simd(ops_simd_level level, threadpool *tp, float *y, const float *x,
                     const float *w, int m, int n, int k)
{
    if (m <= 0 || n <= 0) return;
    ops_simd_level best = ops_simd_detect();
    mm_job jb = {level > best ? best : level, y, x, w, m, n, k, n};
    int nth = tp_size(tp);
    if (nth == 1 || (size_t)m * (size_t)n * (size_t)k < MM_INLINE_MACS) {
        mm_worker(&jb, 0, 1);
        return;
    }
    int per = (n + nth - 1) / nth;
    jb.chunk = (per + MM_ROW_ALIGN - 1) / MM_ROW_ALIGN * MM_ROW_ALIGN;
    tp_run(tp, mm_worker, &jb);
}

/* OpenBLAS (pthreads build) runs sgemm on its own pool, all cores by default; ours is idle
** meanwhile. Measured on the 2-core Zen 4 box (bench_kernels -x), stories110M prefill at
** m = 32 with a threaded op of ours between the matmuls: our workers, still spinning from
** that op, held a core OpenBLAS wanted: ~71 ms a pass (median of 7) against ~65 ms with a
** 1-thread pool. tp_park sends them to sleep first: ~66 ms. The other way round, OpenBLAS's
** workers poll with sched_yield for ~0.1 s after each call, but they yield: our m = 1 pass
** just after an sgemm (12-16 ms) was never slower than the same pass 300 ms later, when
** they sleep. So no openblas_set_num_threads (process-global state): both keep all cores. */
void ops_matmul_sgemm(threadpool *tp, float *y, const float *x, const float *w, int m, int n,
                      int k)
{
    if (m <= 0 || n <= 0) return;
    tp_park(tp);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
}

void ops_matmul(threadpool *tp, float *y, const float *x, const float *w, int m, int n, int k)
{
    if (m >= OPS_SGEMM_MIN_ROWS)
        ops_matmul_sgemm(tp, y, x, w, m, n, k);
    else
        ops_matmul_simd(ops_simd_detect(), tp, y, x, w, m, n, k);
}

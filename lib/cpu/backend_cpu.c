/*
** backend_cpu.c — the CPU backend: ops.h kernels on an explicit thread pool, and the paged
** attention kernel (threaded over (row, head) pairs; each pair walks its sequence's blocks).
*/
#include "../backend.h"
#include "ops.h"
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_backend {
    backend base;
    threadpool *tp;
    float *scores;     /* (n_threads, scores_cap) attention scratch */
    int scores_cap;
} cpu_backend;

static cpu_backend *cpu(backend *be) { return (cpu_backend *)be; }

static void cpu_destroy(backend *be)
{
    cpu_backend *c = cpu(be);
    tp_destroy(c->tp);
    free(c->scores);
    free(c);
}

static infer_status cpu_matmul(backend *be, float *y, const float *x, const tensor *w, int m)
{
    ops_matmul_t(cpu(be)->tp, y, x, w, m);
    return INFER_OK;
}

static void cpu_rmsnorm(backend *be, float *y, const float *x, const float *w, int m, int dim, float eps)
{
    ops_rmsnorm(y, x, w, m, dim, eps);
}

static void cpu_rope(backend *be, float *x, const batch *b, int n_heads, int head_dim, const float *freqs, int neox)
{
    size_t width = (size_t)n_heads * (size_t)head_dim;
    int half = head_dim / 2;
    for (int r = 0; r < b->n; r++) {
        float *row = x + (size_t)r * width;
        float pos = (float)b->pos[r];
        for (int i = 0; i < half; i++) {
            float a = pos * freqs[i], c = cosf(a), s = sinf(a);
            /* the pair (j0, j1) rotated by angle a in every head */
            int j0 = neox ? i : 2 * i, j1 = neox ? i + half : 2 * i + 1;
            for (int h = 0; h < n_heads; h++) {
                float *v = row + (size_t)h * (size_t)head_dim;
                float v0 = v[j0], v1 = v[j1];
                v[j0] = v0 * c - v1 * s;
                v[j1] = v0 * s + v1 * c;
            }
        }
    }
}

static void cpu_swiglu(backend *be, float *h, const float *g, const float *u, int n)
{
    ops_swiglu(cpu(be)->tp, h, g, u, n);
}

typedef struct attn_job {
    const attn_args *a;
    float *scores;
    int scores_cap;
} attn_job;

/* q·k and y += a x over one head: AVX2+FMA where the CPU has it (attention reads every cached
** position of every head each step, so these loops matter at long contexts). */
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int n)
{
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    float s = _mm_cvtss_f32(h);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma"))) static void axpy_avx2(float *y, float a, const float *x, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static float dot(const float *a, const float *b, int n, int avx2)
{
    if (avx2) return dot_avx2(a, b, n);
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(float *y, float a, const float *x, int n, int avx2)
{
    if (avx2) {
        axpy_avx2(y, a, x, n);
        return;
    }
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* One query head of one row: scores over positions 0..pos, softmax, weighted sum of V. */
static void attend_one(const attn_args *a, int r, int h, float *sc)
{
    const kv_pool *pool = a->pool;
    int hd = a->head_dim, bt = pool->block_tokens;
    int kvh = h / (a->n_heads / a->n_kv_heads);
    size_t kvd = (size_t)pool->kv_dim;
    const float *q = a->q + ((size_t)r * (size_t)a->n_heads + (size_t)h) * (size_t)hd;
    float *out = a->out + ((size_t)r * (size_t)a->n_heads + (size_t)h) * (size_t)hd;
    int32_t pos = a->b->pos[r];
    const int32_t *blocks = a->b->tables[r]->blocks;
    float scale = 1.0f / sqrtf((float)hd);

    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    for (int32_t t = 0; t <= pos; t++) {
        const float *k = kv_k(pool, blocks[t / bt], a->layer) + (size_t)(t % bt) * kvd + (size_t)kvh * (size_t)hd;
        sc[t] = dot(q, k, hd, avx2) * scale;
    }
    ops_ref_softmax(sc, pos + 1);
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int32_t t = 0; t <= pos; t++) {
        const float *v = kv_v(pool, blocks[t / bt], a->layer) + (size_t)(t % bt) * kvd + (size_t)kvh * (size_t)hd;
        axpy(out, sc[t], v, hd, avx2);
    }
}

static void attn_worker(void *arg, int ith, int nth)
{
    attn_job *job = arg;
    const attn_args *a = job->a;
    int total = a->b->n * a->n_heads;
    float *sc = job->scores + (size_t)ith * (size_t)job->scores_cap;
    for (int i = ith; i < total; i += nth) attend_one(a, i / a->n_heads, i % a->n_heads, sc);
}

static infer_status cpu_attention(backend *be, const attn_args *a)
{
    cpu_backend *c = cpu(be);
    if (a->max_ctx > c->scores_cap) {
        float *s = realloc(c->scores, (size_t)a->max_ctx * (size_t)be->n_threads * sizeof(float));
        if (!s) return infer_err(INFER_ENOMEM, "out of memory for attention scratch (%d positions)", a->max_ctx);
        c->scores = s;
        c->scores_cap = a->max_ctx;
    }
    attn_job job = { a, c->scores, c->scores_cap };
    tp_run(c->tp, attn_worker, &job);
    return INFER_OK;
}

static const backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .attention = cpu_attention,
};

infer_status backend_cpu_create(int n_threads, backend **out)
{
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) return infer_err(INFER_ENOMEM, "out of memory for the CPU backend");
    infer_status st = tp_create(n_threads, &c->tp);
    if (st) {
        free(c);
        return st;
    }
    c->base.ops = &cpu_ops;
    c->base.n_threads = n_threads;
    *out = &c->base;
    return INFER_OK;
}

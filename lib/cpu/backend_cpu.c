/*
** backend_cpu.c — the CPU backend: ops.h kernels on an explicit thread pool; the paged
** attention kernel is ops_attn.c's.
*/
#include "../backend.h"
#include "../sampler.h"
#include "ops.h"
#include "ops_attn.h"
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_backend {
    backend base;
    threadpool *tp;
    float *scores;     /* (n_threads, scores_cap) attention scratch */
    int scores_cap;
    int32_t *ids;      /* (ids_cap) greedy tokens of a step's logit rows */
    int32_t *pick;     /* (ids_cap) the logit rows that take one */
    int ids_cap;
} cpu_backend;

static cpu_backend *cpu(backend *be) { return (cpu_backend *)be; }

static void cpu_destroy(backend *be)
{
    cpu_backend *c = cpu(be);
    tp_destroy(c->tp);
    free(c->scores);
    free(c->ids);
    free(c->pick);
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

static infer_status cpu_attention(backend *be, const attn_args *a)
{
    cpu_backend *c = cpu(be);
    if (a->max_ctx > c->scores_cap) {
        float *s = realloc(c->scores, (size_t)a->max_ctx * (size_t)be->n_threads * sizeof(float));
        if (!s) return infer_err(INFER_ENOMEM, "out of memory for attention scratch (%d positions)", a->max_ctx);
        c->scores = s;
        c->scores_cap = a->max_ctx;
    }
    ops_attention(c->tp, a, c->scores, c->scores_cap);
    return INFER_OK;
}

typedef struct argmax_job {
    const float *logits;
    const int32_t *pick;
    int32_t *ids;
    int n_pick, n_vocab;
} argmax_job;

static void argmax_worker(void *arg, int ith, int nth)
{
    argmax_job *job = arg;
    for (int i = ith; i < job->n_pick; i += nth) {
        int32_t j = job->pick[i];
        job->ids[j] = sampler_argmax(job->logits + (size_t)j * (size_t)job->n_vocab, job->n_vocab);
    }
}

/* The greedy rows' argmax, rows spread over the pool (each reads its 4 * n_vocab bytes once). */
static infer_status cpu_argmax(backend *be, const batch *b, int n_vocab, fwd_out *out)
{
    cpu_backend *c = cpu(be);
    if (b->n_logits > c->ids_cap) {
        int32_t *ids = realloc(c->ids, (size_t)b->n_logits * sizeof *ids);
        if (ids) c->ids = ids;
        int32_t *pick = realloc(c->pick, (size_t)b->n_logits * sizeof *pick);
        if (pick) c->pick = pick;
        if (!ids || !pick) return infer_err(INFER_ENOMEM, "out of memory for %d greedy picks", b->n_logits);
        c->ids_cap = b->n_logits;
    }
    int n_pick = 0;
    for (int r = 0, j = 0; r < b->n; r++) {
        if (!b->want_logits[r]) continue;
        if (!b->full_logits[r]) c->pick[n_pick++] = j;
        else c->ids[j] = -1;
        j++;
    }
    out->argmax = NULL;
    if (n_pick == 0) return INFER_OK;
    argmax_job job = { out->logits, c->pick, c->ids, n_pick, n_vocab };
    if (n_pick == 1) argmax_worker(&job, 0, 1); /* not worth waking the pool */
    else tp_run(c->tp, argmax_worker, &job);
    out->argmax = c->ids;
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
    .argmax = cpu_argmax,
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

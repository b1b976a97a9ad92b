/*
** backend.h — the compute backend behind one small vtable (as ggml-backend does), so the
** forward passes in arch_*.c are written once in terms of these ops.
**
** Implemented: cpu (lib/cpu/backend_cpu.c). Buffers are host float arrays; a device backend
** will add alloc/copy members (optional members may be NULL).
*/
#ifndef INFER_BACKEND_H
#define INFER_BACKEND_H

#include "batch.h"
#include "tensor.h"

typedef struct backend backend;

/* Paged attention for the rows of a batch: for each row r and head h, softmax over the
** positions 0..pos[r] of the row's sequence of q·k / sqrt(head_dim), times v. Query head h
** reads KV head h / (n_heads / n_kv_heads) (grouped-query attention). */
typedef struct attn_args {
    float *out;             /* (n_rows, n_heads * head_dim) */
    const float *q;         /* (n_rows, n_heads * head_dim), RoPE applied */
    const batch *b;         /* positions and block tables of the rows */
    const kv_pool *pool;
    int layer;
    int n_heads, n_kv_heads, head_dim;
    int max_ctx;            /* upper bound of pos + 1, sizes the score scratch */
} attn_args;

typedef struct backend_ops {
    const char *name;
    void (*destroy)(backend *be);
    /* y[m][n] = x[m][k] · W[n][k] for W (n, k) of any dtype the backend supports */
    infer_status (*matmul)(backend *be, float *y, const float *x, const tensor *w, int m);
    void (*rmsnorm)(backend *be, float *y, const float *x, const float *w, int m, int dim, float eps);
    /* in place on (n_rows, n_heads * head_dim) with the batch's positions; freqs has
    ** head_dim/2 per-pair frequencies; neox = rotate halves instead of adjacent pairs */
    void (*rope)(backend *be, float *x, const batch *b, int n_heads, int head_dim, const float *freqs, int neox);
    /* h = silu(g) * u over n elements */
    void (*swiglu)(backend *be, float *h, const float *g, const float *u, int n);
    infer_status (*attention)(backend *be, const attn_args *a);
} backend_ops;

struct backend {
    const backend_ops *ops;
    int n_threads;
};

/* Pick and create a backend for the session (AUTO = the best available: cpu here). */
infer_status backend_create(infer_backend kind, int n_threads, backend **out);
void backend_destroy(backend *be);

infer_status backend_cpu_create(int n_threads, backend **out);

#endif

/*
** backend.h — the compute backend behind one small vtable (as ggml-backend does), so the
** forward passes in arch_*.c are written once in terms of these ops.
**
** Implemented: cpu (lib/cpu/backend_cpu.c) and cuda (lib/cuda/backend_cuda.c, in builds made
** where nvcc was found). The element-wise ops take host float arrays. A device backend also
** fills the optional model hooks: it keeps a generating model's weights and KV blocks in device
** memory and runs the whole forward step there (forward), leaving the host ops for what stays
** on the CPU (the BERT encoder). Optional members are NULL otherwise.
*/
#ifndef INFER_BACKEND_H
#define INFER_BACKEND_H

#include "batch.h"
#include "tensor.h"

typedef struct backend backend;
struct infer_model;

/* Largest top_k a device backend samples itself (larger ones: full logits to the host). */
#define SAMPLE_DEVICE_MAX_K 64

/* What a device forward step hands back, for the batch's b->n_logits logit rows in order. */
typedef struct fwd_out {
    const float *logits;    /* (n_logits, vocab) host floats: rows with b->full_logits set are
                               valid (all rows on the CPU path) */
    const int32_t *argmax;  /* (n_logits) each row's greedy token (rows without full_logits),
                               or NULL: the host samples every row from its logits */
} fwd_out;

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

    /* Device backends. model_init: put a loaded Llama model's weights on the device and say
    ** the KV element size (*kv_elem_bytes); model.c then sizes the host-side block bookkeeping
    ** with it and calls model_kv to allocate the blocks and the step workspace. model_free
    ** releases both (any thread). forward: one step over batch b, as llama_forward. */
    infer_status (*model_init)(backend *be, struct infer_model *m, size_t *kv_elem_bytes);
    infer_status (*model_kv)(backend *be, struct infer_model *m);
    void (*model_free)(backend *be, struct infer_model *m);
    infer_status (*forward)(backend *be, struct infer_model *m, const batch *b, fwd_out *out);

    /* Host backends (optional): after a forward pass on the host that left out->logits, the
    ** greedy token of every logit row whose batch row has no full_logits (sampler_argmax, so
    ** ties and NaN go as on the host), into out->argmax: device backends pick these in their
    ** forward, and this keeps the engine thread from doing it row after row. */
    infer_status (*argmax)(backend *be, const batch *b, int n_vocab, fwd_out *out);
} backend_ops;

struct backend {
    const backend_ops *ops;
    int n_threads;
};

/* Pick and create a backend for the session: AUTO = cuda when this build has it and a GPU
** is present, else cpu. */
infer_status backend_create(const infer_session_params *p, backend **out);
void backend_destroy(backend *be);

infer_status backend_cpu_create(int n_threads, backend **out);
/* INFER_EUNSUPPORTED in builds without CUDA; INFER_EDEVICE when no usable GPU is present. */
infer_status backend_cuda_create(const infer_session_params *p, backend **out);

#endif

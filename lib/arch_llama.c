/*
** arch_llama.c — the Llama forward pass (RMSNorm, RoPE, grouped-query attention over the
** paged KV cache, SwiGLU FFN) over one step's flattened batch, written in backend ops.
**
** All rows of the batch go through each weight matrix together, so a step reads the weights
** once whatever the number of sequences (the point of continuous batching). Each row's K and
** V are written to its sequence's blocks before attention, so later rows of a prefill chunk
** see earlier ones (causality comes from attending to positions 0..pos only).
*/
#include "model.h"

#include <stdlib.h>
#include <string.h>

static int grow(float **p, size_t n)
{
    float *q = realloc(*p, n * sizeof(float));
    if (!q) return 0;
    *p = q;
    return 1;
}

static infer_status work_reserve(llama_work *w, const llama_hparams *hp, int rows, int logit_rows)
{
    size_t D = (size_t)hp->dim, H = (size_t)hp->hidden_dim;
    size_t kvd = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    size_t qd = (size_t)hp->n_heads * (size_t)hp->head_dim;
    if (rows > w->cap_rows) {
        size_t r = (size_t)rows;
        if (!grow(&w->x, r * D) || !grow(&w->xb, r * INFER_MAX(D, qd)) || !grow(&w->q, r * qd) ||
            !grow(&w->k, r * kvd) || !grow(&w->v, r * kvd) || !grow(&w->att, r * qd) ||
            !grow(&w->hb, r * H) || !grow(&w->hb2, r * H))
            return infer_err(INFER_ENOMEM, "out of memory for activations of %d rows", rows);
        w->cap_rows = rows;
    }
    if (logit_rows > w->cap_logits) {
        size_t r = (size_t)logit_rows;
        if (!grow(&w->xl, r * D) || !grow(&w->logits, r * (size_t)hp->vocab_size))
            return infer_err(INFER_ENOMEM, "out of memory for logits of %d rows", logit_rows);
        w->cap_logits = logit_rows;
    }
    return INFER_OK;
}

void llama_work_free(llama_work *w)
{
    free(w->x); free(w->xb); free(w->q); free(w->k); free(w->v);
    free(w->att); free(w->hb); free(w->hb2); free(w->xl); free(w->logits);
    memset(w, 0, sizeof *w);
}

/* Copy each row's new K and V into its sequence's block for its position. */
static void kv_store(const kv_pool *pool, const batch *b, int layer, const float *k, const float *v)
{
    size_t kvd = (size_t)pool->kv_dim;
    for (int r = 0; r < b->n; r++) {
        int32_t pos = b->pos[r];
        int32_t blk = b->tables[r]->blocks[pos / pool->block_tokens];
        size_t off = (size_t)(pos % pool->block_tokens) * kvd;
        memcpy(kv_k(pool, blk, layer) + off, k + (size_t)r * kvd, kvd * sizeof(float));
        memcpy(kv_v(pool, blk, layer) + off, v + (size_t)r * kvd, kvd * sizeof(float));
    }
}

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void add_bias(float *x, const float *bias, int rows, int width)
{
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < width; i++) x[(size_t)r * (size_t)width + (size_t)i] += bias[i];
}

infer_status llama_forward(infer_model *m, backend *be, const batch *b, const float **logits)
{
    const llama_hparams *hp = &m->hp;
    const backend_ops *op = be->ops;
    llama_work *w = &m->work;
    int T = b->n;
    int D = hp->dim, H = hp->hidden_dim, hd = hp->head_dim;
    int qd = hp->n_heads * hd, kvd = hp->n_kv_heads * hd;
    infer_status st = work_reserve(w, hp, T, b->n_logits);
    if (st) return st;

    const tensor *E = &m->w.tok_embd;
    size_t row_bytes = dtype_row_bytes(E->type, E->n_cols);
    for (int r = 0; r < T; r++) {
        int32_t t = b->tokens[r];
        if (t < 0 || t >= hp->vocab_size) return infer_err(INFER_EINTERNAL, "token id %d outside the vocabulary", t);
        dequantize_row(E->type, (const uint8_t *)E->data + (size_t)t * row_bytes, w->x + (size_t)r * D, D);
    }

    for (int l = 0; l < hp->n_layers; l++) {
        const llama_layer *L = &m->w.layers[l];
        op->rmsnorm(be, w->xb, w->x, L->attn_norm, T, D, hp->rms_eps);
        if ((st = op->matmul(be, w->q, w->xb, &L->wq, T)) || (st = op->matmul(be, w->k, w->xb, &L->wk, T)) ||
            (st = op->matmul(be, w->v, w->xb, &L->wv, T)))
            return st;
        if (L->bq) add_bias(w->q, L->bq, T, qd);
        if (L->bk) add_bias(w->k, L->bk, T, kvd);
        if (L->bv) add_bias(w->v, L->bv, T, kvd);
        op->rope(be, w->q, b, hp->n_heads, hd, m->rope_freqs, hp->rope == ROPE_NEOX);
        op->rope(be, w->k, b, hp->n_kv_heads, hd, m->rope_freqs, hp->rope == ROPE_NEOX);
        kv_store(&m->kv, b, l, w->k, w->v);
        attn_args a = { .out = w->att, .q = w->q, .b = b, .pool = &m->kv, .layer = l,
                        .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads, .head_dim = hd,
                        .max_ctx = hp->seq_len };
        st = op->attention(be, &a);
        if (st) return st;
        if ((st = op->matmul(be, w->xb, w->att, &L->wo, T))) return st;
        add_rows(w->x, w->xb, (size_t)T * (size_t)D);

        op->rmsnorm(be, w->xb, w->x, L->ffn_norm, T, D, hp->rms_eps);
        if ((st = op->matmul(be, w->hb, w->xb, &L->w1, T)) || (st = op->matmul(be, w->hb2, w->xb, &L->w3, T)))
            return st;
        op->swiglu(be, w->hb, w->hb, w->hb2, T * H);
        if ((st = op->matmul(be, w->xb, w->hb, &L->w2, T))) return st;
        add_rows(w->x, w->xb, (size_t)T * (size_t)D);
    }

    /* Only rows whose logits are wanted go through the (largest) classifier matrix. */
    int j = 0;
    for (int r = 0; r < T; r++)
        if (b->want_logits[r])
            memcpy(w->xl + (size_t)j++ * D, w->x + (size_t)r * D, (size_t)D * sizeof(float));
    if (j > 0) {
        op->rmsnorm(be, w->xl, w->xl, m->w.out_norm, j, D, hp->rms_eps);
        if ((st = op->matmul(be, w->logits, w->xl, &m->w.wcls, j))) return st;
    }
    *logits = w->logits;
    return INFER_OK;
}

/*
** arch_bert.c — the BERT encoder forward pass (Devlin et al.; the Hugging Face BertModel),
** for sentence embeddings (sentence-transformers' MiniLM: mean pooling, then L2 norm).
**
** One sequence at a time, all positions together: attention is bidirectional, so nothing
** is cached. Embeddings: word + position + token-type 0, LayerNorm. Each layer: self-
** attention with biases, output projection, residual + LayerNorm; FFN with exact (erf)
** GELU, residual + LayerNorm.
*/
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void layernorm(float *x, const float *w, const float *b, int n, int dim, float eps)
{
    for (int r = 0; r < n; r++) {
        float *v = x + (size_t)r * (size_t)dim;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += v[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (v[i] - mean) * (v[i] - mean);
        var /= dim;
        float inv = (float)(1.0 / sqrt(var + eps));
        for (int i = 0; i < dim; i++) v[i] = (float)(v[i] - mean) * inv * w[i] + b[i];
    }
}

static void add_bias(float *x, const float *b, int n, int dim)
{
    for (int r = 0; r < n; r++)
        for (int i = 0; i < dim; i++) x[(size_t)r * (size_t)dim + (size_t)i] += b[i];
}

static void add_into(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Rows of an embedding table (any dtype) added into x. */
static void add_rows_of(float *x, const tensor *t, const int32_t *rows, int n, float *tmp)
{
    size_t rb = dtype_row_bytes(t->type, t->n_cols);
    for (int r = 0; r < n; r++) {
        dequantize_row(t->type, (const uint8_t *)t->data + (size_t)rows[r] * rb, tmp, t->n_cols);
        add_into(x + (size_t)r * (size_t)t->n_cols, tmp, (size_t)t->n_cols);
    }
}

/* Full (non-causal) multi-head attention of n positions. */
static void attention(float *out, const float *q, const float *k, const float *v, int n, int n_heads, int hd,
                      float *scores)
{
    int dim = n_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < n_heads; h++) {
        for (int i = 0; i < n; i++) {
            const float *qi = q + (size_t)i * dim + (size_t)h * hd;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kj = k + (size_t)j * dim + (size_t)h * hd;
                float s = 0;
                for (int d = 0; d < hd; d++) s += qi[d] * kj[d];
                scores[j] = s * scale;
                if (scores[j] > mx) mx = scores[j];
            }
            float sum = 0;
            for (int j = 0; j < n; j++) sum += scores[j] = expf(scores[j] - mx);
            float *o = out + (size_t)i * dim + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof *o);
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * dim + (size_t)h * hd;
                float p = scores[j] / sum;
                for (int d = 0; d < hd; d++) o[d] += p * vj[d];
            }
        }
    }
}

infer_status bert_embed(infer_model *m, backend *be, const int32_t *tokens, int n, int normalize, float *out)
{
    const llama_hparams *hp = &m->hp;
    const bert_weights *w = &m->bw;
    int D = hp->dim, H = hp->hidden_dim;
    if (n < 1 || n > hp->seq_len)
        return infer_err(INFER_EINVAL, "BERT input of %d tokens (1..%d allowed)", n, hp->seq_len);
    size_t nd = (size_t)n * (size_t)D, nh = (size_t)n * (size_t)H;
    float *buf = malloc((5 * nd + nh + (size_t)n + (size_t)INFER_MAX(D, n)) * sizeof(float));
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!buf || !pos) {
        free(buf);
        free(pos);
        return infer_err(INFER_ENOMEM, "out of memory embedding %d tokens", n);
    }
    float *x = buf, *q = x + nd, *k = q + nd, *v = k + nd, *att = v + nd, *h = att + nd, *scores = h + nh;
    float *tmp = scores + n;
    infer_status st = INFER_OK;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= hp->vocab_size) {
            st = infer_err(INFER_EINTERNAL, "token id %d outside the vocabulary", tokens[i]);
            goto done;
        }
        pos[i] = i;
    }
    memset(x, 0, nd * sizeof *x);
    add_rows_of(x, &w->tok_embd, tokens, n, tmp);
    add_rows_of(x, &w->pos_embd, pos, n, tmp);
    memset(pos, 0, (size_t)n * sizeof *pos); /* token type 0 for a single segment */
    add_rows_of(x, &w->type_embd, pos, n, tmp);
    layernorm(x, w->ln_w, w->ln_b, n, D, hp->rms_eps);

    for (int l = 0; l < hp->n_layers; l++) {
        const bert_layer *L = &w->layers[l];
        if ((st = be->ops->matmul(be, q, x, &L->wq, n)) || (st = be->ops->matmul(be, k, x, &L->wk, n)) ||
            (st = be->ops->matmul(be, v, x, &L->wv, n)))
            goto done;
        add_bias(q, L->bq, n, D);
        add_bias(k, L->bk, n, D);
        add_bias(v, L->bv, n, D);
        attention(att, q, k, v, n, hp->n_heads, hp->head_dim, scores);
        if ((st = be->ops->matmul(be, q, att, &L->wo, n))) goto done;
        add_bias(q, L->bo, n, D);
        add_into(x, q, nd);
        layernorm(x, L->ln1_w, L->ln1_b, n, D, hp->rms_eps);
        if ((st = be->ops->matmul(be, h, x, &L->w_up, n))) goto done;
        add_bias(h, L->b_up, n, H);
        for (size_t i = 0; i < nh; i++) h[i] = 0.5f * h[i] * (1.0f + erff(h[i] * (float)M_SQRT1_2));
        if ((st = be->ops->matmul(be, q, h, &L->w_down, n))) goto done;
        add_bias(q, L->b_down, n, D);
        add_into(x, q, nd);
        layernorm(x, L->ln2_w, L->ln2_b, n, D, hp->rms_eps);
    }

    /* mean pooling over the tokens ([CLS] and [SEP] included, as sentence-transformers does
    ** with an all-ones attention mask) */
    double norm = 0;
    for (int i = 0; i < D; i++) {
        double s = 0;
        for (int r = 0; r < n; r++) s += x[(size_t)r * (size_t)D + (size_t)i];
        out[i] = (float)(s / n);
        norm += (double)out[i] * out[i];
    }
    if (normalize && norm > 0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (int i = 0; i < D; i++) out[i] *= inv;
    }
done:
    free(buf);
    free(pos);
    return st;
}

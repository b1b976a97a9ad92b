/*
** model.c — loading a model (format detection, tokenizer, KV pool) and its lifetime.
*/
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<dir of path>/tokenizer.bin" */
static char *default_tokenizer_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    char *out = malloc(dirlen + sizeof "tokenizer.bin");
    if (!out) return NULL;
    memcpy(out, path, dirlen);
    memcpy(out + dirlen, "tokenizer.bin", sizeof "tokenizer.bin");
    return out;
}

infer_status model_own(infer_model *m, void *p)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 16;
        void **v = realloc(m->owned, (size_t)cap * sizeof *v);
        if (!v) {
            free(p);
            return infer_err(INFER_ENOMEM, "out of memory");
        }
        m->owned = v;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return INFER_OK;
}

static void model_free(infer_model *m)
{
    if (!m) return;
    if (m->be && m->be->ops->model_free) m->be->ops->model_free(m->be, m);
    if (m->resident) atomic_fetch_sub(m->resident, 1);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->rope_freqs);
    free(m->chat_template);
    llama_work_free(&m->work);
    kv_pool_free(&m->kv);
    tok_free(m->tok);
    free(m->w.layers);
    free(m->bw.layers);
    unmap_file(&m->map);
    for (int i = 0; i < m->n_extra_maps; i++) unmap_file(&m->extra_maps[i]);
    free(m->extra_maps);
    free(m->name);
    free(m->version);
    free(m->path);
    free(m);
}

static size_t tensor_bytes(const tensor *t)
{
    return dtype_row_bytes(t->type, t->n_cols) * (size_t)t->n_rows;
}

/* Bytes a decode step reads: every matrix and norm, the classifier, but not the embedding
** table (one row is gathered per token). */
static size_t weight_bytes_per_step(const infer_model *m)
{
    const llama_hparams *hp = &m->hp;
    size_t n = tensor_bytes(&m->w.wcls) + (size_t)hp->dim * 4;
    for (int l = 0; l < hp->n_layers; l++) {
        const llama_layer *L = &m->w.layers[l];
        n += tensor_bytes(&L->wq) + tensor_bytes(&L->wk) + tensor_bytes(&L->wv) + tensor_bytes(&L->wo) +
             tensor_bytes(&L->w1) + tensor_bytes(&L->w2) + tensor_bytes(&L->w3) + 2 * (size_t)hp->dim * 4;
    }
    return n;
}

/* A llama2.c checkpoint and its tokenizer.bin. */
static infer_status load_llama2c(infer_model *m, const char *path, const infer_model_params *mp)
{
    infer_status st = llama2c_parse(path, &m->map, &m->hp, &m->w);
    if (st) return st;
    char *tokpath = (mp && mp->tokenizer_path) ? infer_strdup(mp->tokenizer_path) : default_tokenizer_path(path);
    if (!tokpath) return infer_err(INFER_ENOMEM, "out of memory");
    st = tok_load_llama2c(tokpath, m->hp.vocab_size, &m->tok);
    free(tokpath);
    if (st == INFER_EIO && !(mp && mp->tokenizer_path)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s (a llama2.c checkpoint needs its tokenizer: pass tokenizer_path)",
                 infer_err_text());
        st = infer_err(INFER_EIO, "%s", msg);
    }
    if (st) return st;
    /* llama2.c ends a sample when the model emits BOS, its story separator. */
    m->end_tokens[0] = tok_bos(m->tok);
    m->n_end = 1;
    return INFER_OK;
}

/* t (rows of its stored type) as fp32 rows in a buffer the model owns. */
static infer_status tensor_to_f32(infer_model *m, tensor *t, const char *what)
{
    if (t->type == DT_F32 || !t->data) return INFER_OK;
    size_t row_bytes = dtype_row_bytes(t->type, t->n_cols);
    float *f = malloc((size_t)t->n_rows * (size_t)t->n_cols * sizeof *f);
    if (!f)
        return infer_err(INFER_ENOMEM, "weights_f32: out of memory for %s as fp32 (%lld x %lld)", what,
                         (long long)t->n_rows, (long long)t->n_cols);
    for (int64_t r = 0; r < t->n_rows; r++)
        dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * row_bytes, f + (size_t)r * (size_t)t->n_cols,
                       t->n_cols);
    t->type = DT_F32;
    t->data = f;
    return model_own(m, f);
}

/* infer_model_params.weights_f32: every matrix of a Llama-family model to fp32 (a tied
** classifier stays the embedding's). */
static infer_status weights_to_f32(infer_model *m)
{
    llama_weights *w = &m->w;
    int tied = w->wcls.data == w->tok_embd.data;
    infer_status st = tensor_to_f32(m, &w->tok_embd, "token_embd");
    if (!st) st = tied ? (w->wcls = w->tok_embd, INFER_OK) : tensor_to_f32(m, &w->wcls, "output");
    for (int l = 0; !st && l < m->hp.n_layers; l++) {
        llama_layer *L = &w->layers[l];
        tensor *mats[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3 };
        for (size_t i = 0; !st && i < sizeof mats / sizeof mats[0]; i++) st = tensor_to_f32(m, mats[i], "a layer matrix");
    }
    return st;
}

infer_status model_load(const char *path, const infer_model_params *mp, backend *be, size_t kv_bytes,
                        int kv_block_tokens, int prefix_cache, infer_model **out)
{
    *out = NULL;
    infer_model *m = calloc(1, sizeof *m);
    if (!m) return infer_err(INFER_ENOMEM, "out of memory for a model");
    atomic_init(&m->refs, 1);
    atomic_init(&m->unloading, 0);
    infer_status st = INFER_ENOMEM;
    m->path = infer_strdup(path);
    if (!m->path) goto fail;

    char *hf_dir = NULL;
    if ((st = hf_detect(path, &hf_dir))) goto fail;
    if (hf_dir) { /* a Hugging Face directory (or a file inside one) */
        st = hf_load_model(m, hf_dir);
        free(hf_dir);
        if (st) goto fail;
    } else if ((st = map_file(path, &m->map))) {
        goto fail;
    } else if (m->map.size >= 4 && memcmp(m->map.data, "GGUF", 4) == 0) {
        st = gguf_load_model(m, path);
        if (st) goto fail;
        const int32_t *ends = tok_end_tokens(m->tok, &m->n_end);
        m->n_end = INFER_MIN(m->n_end, (int)(sizeof m->end_tokens / sizeof m->end_tokens[0]));
        memcpy(m->end_tokens, ends, (size_t)m->n_end * sizeof *ends);
    } else {
        st = load_llama2c(m, path, mp);
        if (st) goto fail;
    }
    m->max_running = mp ? mp->max_running : 0;
    if (m->arch != ARCH_LLAMA) { /* an encoder or a vocabulary: no RoPE, no KV cache */
        *out = m;
        return INFER_OK;
    }
    if (mp && mp->weights_f32 && (st = weights_to_f32(m))) goto fail;
    st = rope_init(m);
    if (st) goto fail;
    m->weight_bytes = weight_bytes_per_step(m);
    size_t kv_elem = sizeof(float);
    int device = be && be->ops->model_init;
    if (device) {
        m->be = be;
        if ((st = be->ops->model_init(be, m, &kv_elem))) goto fail;
    }
    st = kv_pool_init(&m->kv, kv_bytes, kv_elem, !device, kv_block_tokens, m->hp.n_layers,
                      m->hp.n_kv_heads * m->hp.head_dim, prefix_cache);
    if (st) goto fail;
    if (device && (st = be->ops->model_kv(be, m))) goto fail;
    *out = m;
    return INFER_OK;
fail:
    model_free(m);
    return st;
}

void model_ref(infer_model *m)
{
    atomic_fetch_add(&m->refs, 1);
}

void model_unref(infer_model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
}

/*
** model.c — loading a model (format detection, tokenizer, KV pool) and its lifetime.
*/
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

INFER_API void infer_model_params_init(infer_model_params *p)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
}

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

static void model_free(infer_model *m)
{
    if (!m) return;
    llama_work_free(&m->work);
    kv_pool_free(&m->kv);
    tok_free(m->tok);
    free(m->w.layers);
    unmap_file(&m->map);
    free(m->name);
    free(m->version);
    free(m->path);
    free(m);
}

static size_t weight_bytes_per_step(const llama_hparams *hp)
{
    size_t D = (size_t)hp->dim, H = (size_t)hp->hidden_dim, kvd = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    size_t per_layer = 2 * D + 2 * D * D + 2 * D * kvd + 3 * D * H;
    return 4 * ((size_t)hp->n_layers * per_layer + D + (size_t)hp->vocab_size * D);
}

infer_status model_load(const char *path, const infer_model_params *mp, size_t kv_bytes,
                        int kv_block_tokens, int prefix_cache, infer_model **out)
{
    *out = NULL;
    infer_model *m = calloc(1, sizeof *m);
    if (!m) return infer_err(INFER_ENOMEM, "out of memory for a model");
    atomic_init(&m->refs, 1);
    atomic_init(&m->unloading, 0);
    infer_status st = INFER_ENOMEM;
    char *tokpath = NULL;
    m->path = infer_strdup(path);
    if (!m->path) goto fail;

    st = map_file(path, &m->map);
    if (st) goto fail;
    st = llama2c_parse(path, &m->map, &m->hp, &m->w);
    if (st) goto fail;

    tokpath = (mp && mp->tokenizer_path) ? infer_strdup(mp->tokenizer_path) : default_tokenizer_path(path);
    if (!tokpath) { st = infer_err(INFER_ENOMEM, "out of memory"); goto fail; }
    st = tok_load_llama2c(tokpath, m->hp.vocab_size, &m->tok);
    if (st == INFER_EIO && !(mp && mp->tokenizer_path)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s (a llama2.c checkpoint needs its tokenizer: pass tokenizer_path)",
                 infer_err_text());
        st = infer_err(INFER_EIO, "%s", msg);
    }
    if (st) goto fail;

    /* llama2.c ends a sample when the model emits BOS, its story separator. */
    m->end_tokens[0] = tok_bos(m->tok);
    m->n_end = 1;
    m->weight_bytes = weight_bytes_per_step(&m->hp);
    m->max_running = mp ? mp->max_running : 0;
    st = kv_pool_init(&m->kv, kv_bytes, kv_block_tokens, m->hp.n_layers, m->hp.n_kv_heads * m->hp.head_dim,
                      prefix_cache);
    if (st) goto fail;
    free(tokpath);
    *out = m;
    return INFER_OK;
fail:
    free(tokpath);
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

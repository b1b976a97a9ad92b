/*
** load_gguf.c — Llama-family models from GGUF files (llama.cpp's format): architectures
** `llama` (Llama 2/3, Mistral, SmolLM) and `qwen2`. Hyperparameters come from the
** "<arch>.*" keys, weights from the standard tensor names (token_embd, blk.N.attn_q, ...),
** the tokenizer from "tokenizer.ggml.*" and the chat template from
** "tokenizer.chat_template". Tensors stay in the mapping in their stored type; only norm
** vectors and biases are converted to f32 when stored otherwise.
*/
#include "gguf.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gguf_ctx {
    const gguf_file *g;
    const char *path;
    char arch[32];
} gguf_ctx;

/* "<arch>.<suffix>" */
static const char *akey(const gguf_ctx *c, const char *suffix, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.%s", c->arch, suffix);
    return buf;
}

static infer_status req_u32(const gguf_ctx *c, const char *suffix, int *out)
{
    char k[96];
    uint32_t v;
    infer_status st = gguf_get_u32(c->g, akey(c, suffix, k, sizeof k), &v);
    if (st == INFER_ENOTFOUND) return infer_err(INFER_EFORMAT, "'%s': required key %s is missing", c->path, k);
    if (st) return st;
    if (v == 0 || v > (1u << 24)) return infer_err(INFER_EFORMAT, "'%s': %s = %u is out of range", c->path, k, v);
    *out = (int)v;
    return INFER_OK;
}

static infer_status opt_u32(const gguf_ctx *c, const char *suffix, int *out)
{
    char k[96];
    uint32_t v;
    infer_status st = gguf_get_u32(c->g, akey(c, suffix, k, sizeof k), &v);
    if (st == INFER_ENOTFOUND) return INFER_OK;
    if (st) return st;
    if (v > (1u << 24)) return infer_err(INFER_EFORMAT, "'%s': %s = %u is out of range", c->path, k, v);
    *out = (int)v;
    return INFER_OK;
}

static infer_status opt_f32(const gguf_ctx *c, const char *suffix, float *out)
{
    char k[96];
    infer_status st = gguf_get_f32(c->g, akey(c, suffix, k, sizeof k), out);
    return st == INFER_ENOTFOUND ? INFER_OK : st;
}

/* A tensor with the expected shape (ne[0] = cols, ne[1] = rows; rows 1 for vectors). */
static infer_status get_tensor(const gguf_ctx *c, const char *name, int64_t cols, int64_t rows, int optional,
                               const gguf_tensor **out)
{
    const gguf_tensor *t = gguf_find_tensor(c->g, name);
    *out = t;
    if (!t) return optional ? INFER_OK : infer_err(INFER_EFORMAT, "'%s': tensor %s is missing", c->path, name);
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return infer_err(INFER_EFORMAT, "'%s': tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                         c->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)cols, (long long)rows);
    return INFER_OK;
}

static infer_status get_matrix(const gguf_ctx *c, const char *name, int64_t cols, int64_t rows, tensor *out)
{
    const gguf_tensor *t;
    infer_status st = get_tensor(c, name, cols, rows, 0, &t);
    if (st) return st;
    *out = (tensor){ t->type, t->data, rows, cols };
    return INFER_OK;
}

/* An f32 vector (converted into a model-owned buffer when stored as another type). */
static infer_status get_vector(infer_model *m, const gguf_ctx *c, const char *name, int64_t n, int optional,
                               const float **out)
{
    const gguf_tensor *t;
    *out = NULL;
    infer_status st = get_tensor(c, name, n, 1, optional, &t);
    if (st || !t) return st;
    if (t->type == DT_F32) {
        *out = t->data;
        return INFER_OK;
    }
    if (n % dtype_block_elems(t->type) != 0)
        return infer_err(INFER_EFORMAT, "'%s': tensor %s of %lld elements is not whole %s blocks", c->path, name,
                         (long long)n, dtype_name(t->type));
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return infer_err(INFER_ENOMEM, "out of memory converting %s", name);
    dequantize_row(t->type, t->data, v, n);
    *out = v;
    return model_own(m, v);
}

static infer_status load_hparams(infer_model *m, const gguf_ctx *c)
{
    llama_hparams *hp = &m->hp;
    infer_status st;
    if ((st = req_u32(c, "embedding_length", &hp->dim)) || (st = req_u32(c, "block_count", &hp->n_layers)) ||
        (st = req_u32(c, "feed_forward_length", &hp->hidden_dim)) ||
        (st = req_u32(c, "attention.head_count", &hp->n_heads)))
        return st;
    hp->n_kv_heads = hp->n_heads;
    hp->seq_len = 2048;
    hp->rms_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    if ((st = opt_u32(c, "attention.head_count_kv", &hp->n_kv_heads)) || (st = opt_u32(c, "context_length", &hp->seq_len)) ||
        (st = opt_f32(c, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) ||
        (st = opt_f32(c, "rope.freq_base", &hp->rope_theta)))
        return st;
    char k[96];
    if (hp->dim % hp->n_heads)
        return infer_err(INFER_EFORMAT, "'%s': %s = %d does not divide embedding_length %d", c->path,
                         akey(c, "attention.head_count", k, sizeof k), hp->n_heads, hp->dim);
    if (hp->n_kv_heads == 0 || hp->n_heads % hp->n_kv_heads)
        return infer_err(INFER_EFORMAT, "'%s': %s = %d must divide head_count %d", c->path,
                         akey(c, "attention.head_count_kv", k, sizeof k), hp->n_kv_heads, hp->n_heads);
    hp->head_dim = hp->dim / hp->n_heads;
    int rope_dims = hp->head_dim;
    if ((st = opt_u32(c, "rope.dimension_count", &rope_dims))) return st;
    if (rope_dims != hp->head_dim || hp->head_dim % 2)
        return infer_err(INFER_EUNSUPPORTED, "'%s': partial rotary embedding (rope.dimension_count %d of head size %d)",
                         c->path, rope_dims, hp->head_dim);
    if (!(hp->rope_theta > 0) || !(hp->rms_eps > 0))
        return infer_err(INFER_EFORMAT, "'%s': rope.freq_base and layer_norm_rms_epsilon must be > 0", c->path);
    /* Llama-3 scaling stored as keys (GGUFs usually store rope_freqs.weight instead). */
    gguf_str type;
    if (gguf_get_str(c->g, akey(c, "rope.scaling.type", k, sizeof k), &type) == INFER_OK && gguf_str_eq(type, "llama3")) {
        hp->rope_factor = 8;
        hp->rope_low_freq_factor = 1;
        hp->rope_high_freq_factor = 4;
        hp->rope_orig_ctx = 8192;
        if ((st = opt_f32(c, "rope.scaling.factor", &hp->rope_factor)) ||
            (st = opt_u32(c, "rope.scaling.original_context_length", &hp->rope_orig_ctx)))
            return st;
    }
    hp->rope = strcmp(c->arch, "qwen2") == 0 ? ROPE_NEOX : ROPE_NORM;
    return INFER_OK;
}

static infer_status load_weights(infer_model *m, const gguf_ctx *c)
{
    const llama_hparams *hp = &m->hp;
    llama_weights *w = &m->w;
    int64_t D = hp->dim, H = hp->hidden_dim, qd = (int64_t)hp->n_heads * hp->head_dim;
    int64_t kvd = (int64_t)hp->n_kv_heads * hp->head_dim;
    infer_status st;
    const gguf_tensor *emb = gguf_find_tensor(c->g, "token_embd.weight");
    if (!emb) return infer_err(INFER_EFORMAT, "'%s': tensor token_embd.weight is missing", c->path);
    if (emb->ne[0] != D || emb->ne[1] < 1)
        return infer_err(INFER_EFORMAT, "'%s': token_embd.weight has row length %lld, expected %lld", c->path,
                         (long long)emb->ne[0], (long long)D);
    m->hp.vocab_size = (int)emb->ne[1];
    int64_t V = emb->ne[1];
    if ((st = get_matrix(c, "token_embd.weight", D, V, &w->tok_embd))) return st;
    if ((st = get_vector(m, c, "output_norm.weight", D, 0, &w->out_norm))) return st;
    if (gguf_find_tensor(c->g, "output.weight")) {
        if ((st = get_matrix(c, "output.weight", D, V, &w->wcls))) return st;
    } else {
        w->wcls = w->tok_embd; /* tied embeddings */
    }
    if ((st = get_vector(m, c, "rope_freqs.weight", hp->head_dim / 2, 1, &w->rope_freq_factors))) return st;

    w->layers = calloc((size_t)hp->n_layers, sizeof *w->layers);
    if (!w->layers) return infer_err(INFER_ENOMEM, "out of memory for %d layers", hp->n_layers);
    for (int l = 0; l < hp->n_layers; l++) {
        llama_layer *L = &w->layers[l];
        char n[64];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
        if ((st = get_vector(m, c, NAME("attn_norm.weight"), D, 0, &L->attn_norm)) ||
            (st = get_matrix(c, NAME("attn_q.weight"), D, qd, &L->wq)) ||
            (st = get_matrix(c, NAME("attn_k.weight"), D, kvd, &L->wk)) ||
            (st = get_matrix(c, NAME("attn_v.weight"), D, kvd, &L->wv)) ||
            (st = get_matrix(c, NAME("attn_output.weight"), qd, D, &L->wo)) ||
            (st = get_vector(m, c, NAME("attn_q.bias"), qd, 1, &L->bq)) ||
            (st = get_vector(m, c, NAME("attn_k.bias"), kvd, 1, &L->bk)) ||
            (st = get_vector(m, c, NAME("attn_v.bias"), kvd, 1, &L->bv)) ||
            (st = get_vector(m, c, NAME("ffn_norm.weight"), D, 0, &L->ffn_norm)) ||
            (st = get_matrix(c, NAME("ffn_gate.weight"), D, H, &L->w1)) ||
            (st = get_matrix(c, NAME("ffn_down.weight"), H, D, &L->w2)) ||
            (st = get_matrix(c, NAME("ffn_up.weight"), D, H, &L->w3)))
            return st;
#undef NAME
    }
    return INFER_OK;
}

infer_status gguf_load_model(infer_model *m, const char *path)
{
    gguf_file g;
    infer_status st = gguf_parse(path, &m->map, &g);
    if (st) return st;
    gguf_ctx c = { &g, path, "" };
    if (g.n_tensors == 0) {
        /* llama.cpp's vocab-only files: a tokenizer to tokenize with, nothing to run */
        m->arch = ARCH_VOCAB;
        if (!(st = tok_load_gguf(&g, path, &m->tok))) m->hp.vocab_size = tok_n_vocab(m->tok);
        goto done;
    }
    gguf_str arch;
    st = gguf_get_str(&g, "general.architecture", &arch);
    if (st == INFER_ENOTFOUND) st = infer_err(INFER_EFORMAT, "'%s': general.architecture is missing", path);
    if (st) goto done;
    if (!gguf_str_eq(arch, "llama") && !gguf_str_eq(arch, "qwen2")) {
        st = infer_err(INFER_EUNSUPPORTED, "'%s': architecture '%.*s' is not supported (llama, qwen2 are)", path,
                       (int)INFER_MIN(arch.n, 64), arch.p);
        goto done;
    }
    memcpy(c.arch, arch.p, arch.n);
    c.arch[arch.n] = 0;
    if ((st = load_hparams(m, &c)) || (st = load_weights(m, &c))) goto done;
    if ((st = tok_load_gguf(&g, path, &m->tok))) goto done;
    if (tok_n_vocab(m->tok) != m->hp.vocab_size) {
        st = infer_err(INFER_EFORMAT, "'%s': the tokenizer has %d tokens but token_embd.weight has %d rows", path,
                       tok_n_vocab(m->tok), m->hp.vocab_size);
        goto done;
    }
    gguf_str tmpl;
    if (gguf_get_str(&g, "tokenizer.chat_template", &tmpl) == INFER_OK) {
        m->chat_template = malloc(tmpl.n + 1);
        if (!m->chat_template) { st = infer_err(INFER_ENOMEM, "out of memory"); goto done; }
        memcpy(m->chat_template, tmpl.p, tmpl.n);
        m->chat_template[tmpl.n] = 0;
    }
done:
    gguf_free(&g);
    return st;
}

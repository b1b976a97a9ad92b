/*
** load_llama2c.c — karpathy/llama2.c checkpoints (the "legacy" version-0 export).
**
** Layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len),
** then fp32 tensors in a fixed order, then the unused RoPE tables (2 x seq_len*head_dim/2),
** then the classifier when vocab_size < 0 ("unshared"). Nothing in the file says how long
** it is, so every field is range-checked and the exact size the shape implies must equal
** the file size before a single pointer is formed.
*/
#include "model.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Limits far above any real model: they only reject garbage before the size arithmetic. */
#define MAX_DIM     65536
#define MAX_HIDDEN  (1 << 20)
#define MAX_LAYERS  1024
#define MAX_HEADS   1024
#define MAX_VOCAB   (1 << 22)
#define MAX_SEQ     (1 << 22)

static infer_status bad(const char *path, const char *field, int32_t v, const char *why)
{
    return infer_err(INFER_EFORMAT, "'%s': llama2.c header field %s = %d %s", path, field, (int)v, why);
}

/* Point field `off` (a float pointer) of every layer at consecutive vectors of `n` floats
** from p; returns the end. (llama2.c stores each tensor kind for all layers together.) */
static const float *per_layer_vec(llama_layer *ly, int nl, size_t off, const float *p, uint64_t n)
{
    for (int l = 0; l < nl; l++) {
        const float *t = p + (uint64_t)l * n;
        memcpy((char *)&ly[l] + off, &t, sizeof t);
    }
    return p + (uint64_t)nl * n;
}

/* The same for f32 matrices of rows x cols. */
static const float *per_layer_mat(llama_layer *ly, int nl, size_t off, const float *p, uint64_t rows, uint64_t cols)
{
    for (int l = 0; l < nl; l++) {
        tensor t = { DT_F32, p + (uint64_t)l * rows * cols, (int64_t)rows, (int64_t)cols };
        memcpy((char *)&ly[l] + off, &t, sizeof t);
    }
    return p + (uint64_t)nl * rows * cols;
}

infer_status llama2c_parse(const char *path, const mapped_file *f, llama_hparams *hp, llama_weights *w)
{
    if (f->size < 28)
        return infer_err(INFER_EFORMAT, "'%s': %zu bytes is too short for a llama2.c header (28 bytes)",
                         path, f->size);
    int32_t h[7];
    memcpy(h, f->data, sizeof h);
    if (memcmp(f->data, "ak42", 4) == 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s': llama2.c version-1/2 export (magic \"ak42\") is not "
                                             "supported; export with the legacy format", path);
    if (memcmp(f->data, "GGUF", 4) == 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s' is a GGUF file, which this build cannot load yet", path);
    int32_t dim = h[0], hidden = h[1], nl = h[2], nh = h[3], nkv = h[4], vocab = h[5], seq = h[6];
    if (dim <= 0 || dim > MAX_DIM) return bad(path, "dim (offset 0)", dim, "is out of range");
    if (hidden <= 0 || hidden > MAX_HIDDEN) return bad(path, "hidden_dim (offset 4)", hidden, "is out of range");
    if (nl <= 0 || nl > MAX_LAYERS) return bad(path, "n_layers (offset 8)", nl, "is out of range");
    if (nh <= 0 || nh > MAX_HEADS) return bad(path, "n_heads (offset 12)", nh, "is out of range");
    if (dim % nh != 0) return bad(path, "n_heads (offset 12)", nh, "does not divide dim");
    if ((dim / nh) % 2 != 0) return bad(path, "n_heads (offset 12)", nh, "gives an odd head size (RoPE needs pairs)");
    if (nkv <= 0 || nkv > nh || nh % nkv != 0)
        return bad(path, "n_kv_heads (offset 16)", nkv, "must divide n_heads");
    if (vocab == 0 || vocab < -MAX_VOCAB || vocab > MAX_VOCAB)
        return bad(path, "vocab_size (offset 20)", vocab, "is out of range");
    if (seq <= 0 || seq > MAX_SEQ) return bad(path, "seq_len (offset 24)", seq, "is out of range");

    int shared = vocab > 0;
    uint64_t V = (uint64_t)(vocab > 0 ? vocab : -vocab);
    uint64_t D = (uint64_t)dim, H = (uint64_t)hidden, L = (uint64_t)nl;
    uint64_t hd = D / (uint64_t)nh, qd = (uint64_t)nh * hd, kvd = (uint64_t)nkv * hd;
    /* All counts are below 2^22 and products of at most three of them: no overflow in 64 bits. */
    uint64_t n_floats = V * D + L * D + L * D * qd + 2 * L * D * kvd + L * qd * D + L * D +
                        3 * L * D * H + D + (uint64_t)seq * hd + (shared ? 0 : V * D);
    uint64_t need = 28 + n_floats * 4;
    if ((uint64_t)f->size != need)
        return infer_err(INFER_EFORMAT,
                         "'%s': file has %zu bytes but its header (dim %d, hidden %d, layers %d, heads %d/%d, "
                         "vocab %d, seq_len %d) implies %llu bytes%s", path, f->size, dim, hidden, nl, nh, nkv,
                         vocab, seq, (unsigned long long)need, (uint64_t)f->size < need ? " (truncated?)" : "");

    hp->dim = dim;
    hp->hidden_dim = hidden;
    hp->n_layers = nl;
    hp->n_heads = nh;
    hp->n_kv_heads = nkv;
    hp->head_dim = (int)hd;
    hp->vocab_size = (int)V;
    hp->seq_len = seq;
    hp->rms_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    hp->rope = ROPE_NORM;

    w->layers = calloc((size_t)nl, sizeof *w->layers);
    if (!w->layers) return infer_err(INFER_ENOMEM, "out of memory for %d layer descriptors", nl);
    const float *p = (const float *)(const void *)(f->data + 28);
    w->tok_embd = (tensor){ DT_F32, p, (int64_t)V, (int64_t)D };
    p += V * D;
    llama_layer *ly = w->layers;
    p = per_layer_vec(ly, nl, offsetof(llama_layer, attn_norm), p, D);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, wq), p, qd, D);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, wk), p, kvd, D);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, wv), p, kvd, D);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, wo), p, D, qd);
    p = per_layer_vec(ly, nl, offsetof(llama_layer, ffn_norm), p, D);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, w1), p, H, D);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, w2), p, D, H);
    p = per_layer_mat(ly, nl, offsetof(llama_layer, w3), p, H, D);
    w->out_norm = p;                                p += D;
    p += (uint64_t)seq * hd; /* freq_cis_real + freq_cis_imag: recomputed, never read */
    w->wcls = shared ? w->tok_embd : (tensor){ DT_F32, p, (int64_t)V, (int64_t)D };
    return INFER_OK;
}

/*
** tp_shard.c — the tensor-parallel plan (who holds which heads, FFN columns, vocab rows) and
** the slicing of a rank's weights at load time, from the same mapped file every rank reads.
**
** Row slices are views (rows are whole blocks, so any dtype works); column slices of a
** row-major matrix are strided and are copied, whole blocks at a time for quantized types.
** Splits are contiguous and equal (vocab aside): rank r's block starts at r * size / R.
*/
#include "tp_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

infer_status tp_plan(const llama_hparams *hp, int n_ranks, tp_plan_t *out)
{
    memset(out, 0, sizeof *out);
    int R = n_ranks, nh = hp->n_heads, nkv = hp->n_kv_heads, H = hp->hidden_dim, V = hp->vocab_size;
    if (R < 1 || R > TP_MAX_RANKS)
        return infer_err(INFER_EINVAL, "tensor parallel: %d ranks, expected 1..%d", R, TP_MAX_RANKS);
    if (nh <= 0 || nkv <= 0 || nh % nkv != 0 || hp->head_dim <= 0 || H <= 0 || V <= 0)
        return infer_err(INFER_EINVAL, "tensor parallel: inconsistent hparams (%d heads, %d KV heads, head_dim %d, "
                         "hidden_dim %d, vocab %d)", nh, nkv, hp->head_dim, H, V);
    /* A rank with a share of a KV head would need that head replicated on several ranks
    ** (each computing the same K/V); not done, so say so plainly before the divisibility
    ** message, which would be less clear for this common case (e.g. 8 KV heads, 16 GPUs). */
    if (nkv < R)
        return infer_err(INFER_EUNSUPPORTED, "tensor parallel: the model has %d KV heads, fewer than the %d ranks; "
                         "each rank needs whole KV heads of its own (KV-head replication is not supported)", nkv, R);
    if (nh % R != 0 || nkv % R != 0)
        return infer_err(INFER_EUNSUPPORTED, "tensor parallel: %d attention heads and %d KV heads must both be "
                         "multiples of the %d ranks", nh, nkv, R);
    if (H % R != 0)
        return infer_err(INFER_EUNSUPPORTED, "tensor parallel: FFN width (hidden_dim) %d is not a multiple of the "
                         "%d ranks", H, R);
    /* Vocab: equal slices of ceil(V / R), the last one shorter (padded with -inf logits at the
    ** gather), rather than an uneven split of floor/ceil sizes: an equal-count all-gather
    ** then yields logits already in token order, with padding only at the tail. */
    int64_t vpr = ((int64_t)V + R - 1) / R;
    if ((int64_t)(R - 1) * vpr >= V)
        return infer_err(INFER_EUNSUPPORTED, "tensor parallel: a vocabulary of %d tokens is too small for %d ranks "
                         "(slices of %lld leave the last rank none)", V, R, (long long)vpr);

    out->n_ranks = R;
    out->heads_per_rank = nh / R;
    out->kv_heads_per_rank = nkv / R;
    out->ffn_per_rank = H / R;
    out->vocab_per_rank = vpr;
    for (int r = 0; r < R; r++) {
        tp_rank *k = &out->rank[r];
        /* Query head h reads KV head h / (nh / nkv); both blocks are contiguous and equal, so
        ** rank r's heads read exactly its KV heads. */
        k->head0 = r * out->heads_per_rank;
        k->head1 = k->head0 + out->heads_per_rank;
        k->kv_head0 = r * out->kv_heads_per_rank;
        k->kv_head1 = k->kv_head0 + out->kv_heads_per_rank;
        k->ffn0 = (int64_t)r * out->ffn_per_rank;
        k->ffn1 = k->ffn0 + out->ffn_per_rank;
        k->vocab0 = (int64_t)r * vpr;
        k->vocab1 = INFER_MIN(k->vocab0 + vpr, (int64_t)V);
    }
    return INFER_OK;
}

void tp_rank_hparams(const tp_plan_t *p, int rank, const llama_hparams *hp, llama_hparams *out)
{
    const tp_rank *k = &p->rank[rank];
    *out = *hp;
    out->n_heads = k->head1 - k->head0;
    out->n_kv_heads = k->kv_head1 - k->kv_head0;
    out->hidden_dim = (int)(k->ffn1 - k->ffn0);
    out->vocab_size = (int)(k->vocab1 - k->vocab0);
}

infer_status tp_slice_rows(const tensor *t, int64_t r0, int64_t r1, tensor *out)
{
    if (r0 < 0 || r1 <= r0 || r1 > t->n_rows)
        return infer_err(INFER_EINVAL, "tensor parallel: rows [%lld, %lld) outside a matrix of %lld rows",
                         (long long)r0, (long long)r1, (long long)t->n_rows);
    size_t rb = dtype_row_bytes(t->type, t->n_cols);
    if (rb == 0)
        return infer_err(INFER_EINVAL, "tensor parallel: a %s row of %lld columns is not whole blocks",
                         dtype_name(t->type), (long long)t->n_cols);
    *out = *t;
    out->data = (const uint8_t *)t->data + (size_t)r0 * rb;
    out->n_rows = r1 - r0;
    return INFER_OK;
}

infer_status tp_slice_cols(const tensor *t, int64_t c0, int64_t c1, void **owned, tensor *out)
{
    *owned = NULL;
    if (c0 < 0 || c1 <= c0 || c1 > t->n_cols)
        return infer_err(INFER_EINVAL, "tensor parallel: columns [%lld, %lld) outside a matrix of %lld columns",
                         (long long)c0, (long long)c1, (long long)t->n_cols);
    int64_t be = dtype_block_elems(t->type);
    size_t bb = dtype_block_bytes(t->type);
    size_t rb = dtype_row_bytes(t->type, t->n_cols);
    if (rb == 0)
        return infer_err(INFER_EINVAL, "tensor parallel: a %s row of %lld columns is not whole blocks",
                         dtype_name(t->type), (long long)t->n_cols);
    /* One scale covers a block of columns; re-blocking would need a requantization. */
    if (c0 % be != 0 || c1 % be != 0)
        return infer_err(INFER_EUNSUPPORTED, "tensor parallel: cannot slice columns [%lld, %lld) of a %s matrix: "
                         "%s packs %lld columns per block, so both ends must be multiples of %lld",
                         (long long)c0, (long long)c1, dtype_name(t->type), dtype_name(t->type), (long long)be,
                         (long long)be);
    size_t off = (size_t)(c0 / be) * bb, sb = (size_t)((c1 - c0) / be) * bb;
    size_t rows = (size_t)t->n_rows;
    if (rows > 0 && sb > SIZE_MAX / rows)
        return infer_err(INFER_ENOMEM, "tensor parallel: a column slice of %zu x %zu bytes overflows", rows, sb);
    size_t bytes = rows * sb;
    uint8_t *buf = malloc(bytes > 0 ? bytes : 1);
    if (!buf) return infer_err(INFER_ENOMEM, "tensor parallel: out of memory for a column slice (%zu bytes)", bytes);
    const uint8_t *src = t->data;
    for (size_t r = 0; r < rows; r++) memcpy(buf + r * sb, src + r * rb + off, sb);
    *owned = buf;
    *out = *t;
    out->data = buf;
    out->n_cols = c1 - c0;
    return INFER_OK;
}

const float *tp_slice_vec(const float *v, int64_t i0)
{
    return v ? v + i0 : NULL;
}

/* A mismatch here means the loader and the hparams disagree: slicing by hparams would then
** cut through the wrong rows, silently. */
static infer_status check_shape(const char *name, const tensor *t, int64_t rows, int64_t cols)
{
    if (t->n_rows != rows || t->n_cols != cols)
        return infer_err(INFER_EINVAL, "tensor parallel: %s is (%lld, %lld), the hparams say (%lld, %lld)", name,
                         (long long)t->n_rows, (long long)t->n_cols, (long long)rows, (long long)cols);
    return INFER_OK;
}

/* Re-record the last error with the rank and tensor in front, for a message that says where. */
static infer_status where(infer_status st, int rank, const char *name)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", infer_err_text());
    return infer_err(st, "rank %d, %s: %s", rank, name, msg);
}

infer_status tp_shard_layer(const tp_plan_t *p, int rank, const llama_hparams *hp, const llama_layer *src,
                            llama_layer *dst, void *owned[TP_LAYER_OWNED])
{
    for (int i = 0; i < TP_LAYER_OWNED; i++) owned[i] = NULL;
    if (rank < 0 || rank >= p->n_ranks)
        return infer_err(INFER_EINVAL, "tensor parallel: rank %d of %d", rank, p->n_ranks);
    const tp_rank *k = &p->rank[rank];
    int64_t D = hp->dim, hd = hp->head_dim, H = hp->hidden_dim;
    int64_t qd = (int64_t)hp->n_heads * hd, kvd = (int64_t)hp->n_kv_heads * hd;
    int64_t q0 = k->head0 * hd, q1 = k->head1 * hd, kv0 = k->kv_head0 * hd, kv1 = k->kv_head1 * hd;
    infer_status st;
    if ((st = check_shape("wq", &src->wq, qd, D)) || (st = check_shape("wk", &src->wk, kvd, D)) ||
        (st = check_shape("wv", &src->wv, kvd, D)) || (st = check_shape("wo", &src->wo, D, qd)) ||
        (st = check_shape("w1", &src->w1, H, D)) || (st = check_shape("w2", &src->w2, D, H)) ||
        (st = check_shape("w3", &src->w3, H, D)))
        return st;

    *dst = *src; /* norms are replicated: shared pointers */
    if ((st = tp_slice_rows(&src->wq, q0, q1, &dst->wq))) return where(st, rank, "wq");
    if ((st = tp_slice_rows(&src->wk, kv0, kv1, &dst->wk))) return where(st, rank, "wk");
    if ((st = tp_slice_rows(&src->wv, kv0, kv1, &dst->wv))) return where(st, rank, "wv");
    if ((st = tp_slice_rows(&src->w1, k->ffn0, k->ffn1, &dst->w1))) return where(st, rank, "w1");
    if ((st = tp_slice_rows(&src->w3, k->ffn0, k->ffn1, &dst->w3))) return where(st, rank, "w3");
    dst->bq = tp_slice_vec(src->bq, q0);
    dst->bk = tp_slice_vec(src->bk, kv0);
    dst->bv = tp_slice_vec(src->bv, kv0);
    /* WO and W2 reduce over the split dimension: each rank's product is a partial sum of the
    ** full output, completed by the all-reduce. */
    if ((st = tp_slice_cols(&src->wo, q0, q1, &owned[0], &dst->wo))) return where(st, rank, "wo");
    if ((st = tp_slice_cols(&src->w2, k->ffn0, k->ffn1, &owned[1], &dst->w2))) {
        free(owned[0]);
        owned[0] = NULL;
        return where(st, rank, "w2");
    }
    return INFER_OK;
}

infer_status tp_shard_vocab(const tp_plan_t *p, int rank, const tensor *t, tensor *out)
{
    if (rank < 0 || rank >= p->n_ranks)
        return infer_err(INFER_EINVAL, "tensor parallel: rank %d of %d", rank, p->n_ranks);
    infer_status st = tp_slice_rows(t, p->rank[rank].vocab0, p->rank[rank].vocab1, out);
    return st ? where(st, rank, "vocabulary rows") : INFER_OK;
}

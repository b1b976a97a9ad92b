/*
** tp_shard.h — tensor parallelism (Megatron-LM style): which part of a Llama model each of
** R ranks holds, and the slicing that cuts a rank's weights out of the loaded (mapped) ones.
**
** Per layer, rank r holds a contiguous block of query heads and the KV heads they use (its KV
** cache holds only those), the rows of WQ/WK/WV (and of the Qwen2 biases) for them, the WO
** columns that read them, a block of FFN columns (W1/W3 rows, W2 columns), and a block of
** the vocabulary (rows of the embedding and of the LM head). A forward pass then needs one
** sum all-reduce after WO, one after W2, and a gather of the vocab slices of the logits
** (plus, with a vocab-split embedding, a sum of the looked-up rows: only the owner's is
** non-zero). Norms are replicated. Backend-independent: no NCCL here, only shapes and views.
**
** Non-goals: KV-head replication (n_kv_heads < n_ranks), pipeline parallelism.
*/
#ifndef INFER_TP_SHARD_H
#define INFER_TP_SHARD_H

#include "model.h"

/* 8 GPUs per node is the usual tensor-parallel width (NVLink domain); 64 leaves room and
** keeps the plan a plain value with no allocation. */
#define TP_MAX_RANKS 64

/* Half-open ranges [x0, x1) in the model's global numbering. */
typedef struct tp_rank {
    int head0, head1;          /* query heads */
    int kv_head0, kv_head1;    /* KV heads: those of its query heads (GQA groups never straddle ranks) */
    int64_t ffn0, ffn1;        /* FFN columns: rows of W1/W3, columns of W2 */
    int64_t vocab0, vocab1;    /* token ids: rows of tok_embd and wcls; the last rank's may be shorter */
} tp_rank;

typedef struct tp_plan_t {
    int n_ranks;
    int heads_per_rank, kv_heads_per_rank;
    int64_t ffn_per_rank;
    /* ceil(vocab / n_ranks): every rank's logits slice is padded to this width (-inf beyond
    ** vocab1) so an equal-count all-gather (ncclAllGather) leaves logits 0..vocab-1 in
    ** order at the start of the gathered (n_ranks * vocab_per_rank) buffer. */
    int64_t vocab_per_rank;
    tp_rank rank[TP_MAX_RANKS];
} tp_plan_t;

/* Plan the split of the model described by hp over n_ranks. INFER_EINVAL for n_ranks outside
** 1..TP_MAX_RANKS or inconsistent hparams; INFER_EUNSUPPORTED (naming the numbers) when the
** heads, KV heads or hidden_dim do not divide by n_ranks, or the vocabulary is too small to
** give every rank a non-empty slice. */
infer_status tp_plan(const llama_hparams *hp, int n_ranks, tp_plan_t *out);

/* Rank-local hparams: n_heads, n_kv_heads, hidden_dim and vocab_size of the rank's shard
** (vocab_size = its unpadded slice); the rest as in hp. A backend can run its usual kernels
** on these shapes, and size the rank's KV cache with n_kv_heads * head_dim. */
void tp_rank_hparams(const tp_plan_t *p, int rank, const llama_hparams *hp, llama_hparams *out);

/* Rows [r0, r1) of t: a view (pointer offset into t's data, which must outlive it); any
** dtype, since a row is whole blocks. INFER_EINVAL for a range outside t. */
infer_status tp_slice_rows(const tensor *t, int64_t r0, int64_t r1, tensor *out);

/* Columns [c0, c1) of the row-major (n_rows, n_cols) t, copied into a malloc'd buffer that
** *owned receives (free() it after the last use of *out; NULL on failure). Dense types
** (F32/F16/BF16) slice anywhere; block-quantized ones only where c0 and c1 are multiples of
** the block size (INFER_EUNSUPPORTED naming it otherwise), since a block shares one scale.
** INFER_EINVAL for a range outside t, INFER_ENOMEM. */
infer_status tp_slice_cols(const tensor *t, int64_t c0, int64_t c1, void **owned, tensor *out);

/* Entries [i0, ...) of an f32 vector (bias), as a view; NULL stays NULL (no bias). */
const float *tp_slice_vec(const float *v, int64_t i0);

/* Buffers tp_shard_layer allocates for one layer: WO's and W2's column slices. */
#define TP_LAYER_OWNED 2

/* Rank `rank`'s part of layer src: WQ/WK/WV/W1/W3 and bq/bk/bv as views, WO and W2 column
** slices as copies (owned[0..1], to free() when the shard is dropped; all NULL on failure),
** norms shared. */
infer_status tp_shard_layer(const tp_plan_t *p, int rank, const llama_hparams *hp, const llama_layer *src,
                            llama_layer *dst, void *owned[TP_LAYER_OWNED]);

/* Rank `rank`'s vocabulary rows of t (tok_embd or wcls), as a view. */
infer_status tp_shard_vocab(const tp_plan_t *p, int rank, const tensor *t, tensor *out);

#endif

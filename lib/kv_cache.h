/*
** kv_cache.h — the paged KV cache: a pool of fixed-size blocks and per-sequence block tables.
**
** Memory is split into blocks of `block_tokens` positions (as in vLLM's PagedAttention), so a
** sequence holds only the blocks it has filled and a finished one returns them at once;
** nothing is reserved for the maximum context. One pool per loaded model (its shape fixes the
** block size in bytes). Only the engine thread touches a pool.
**
** Block layout: (n_layers, 2 [K then V], block_tokens, kv_dim) floats, so one block carries a
** span of positions for every layer and is the unit of allocation.
*/
#ifndef INFER_KV_CACHE_H
#define INFER_KV_CACHE_H

#include "internal.h"

typedef struct kv_pool {
    float *data;         /* (n_blocks, n_layers, 2, block_tokens, kv_dim) */
    int32_t n_blocks;
    int block_tokens;
    int n_layers;
    int kv_dim;
    int32_t *free_list;  /* stack of free block ids */
    int32_t n_free;
} kv_pool;

/* Sizes the pool to floor(bytes / block bytes) blocks: INFER_ENOMEM if that is 0 or the
** allocation fails. */
infer_status kv_pool_init(kv_pool *p, size_t bytes, int block_tokens, int n_layers, int kv_dim);
void kv_pool_free(kv_pool *p);
size_t kv_block_bytes(int block_tokens, int n_layers, int kv_dim);

/* Start of K (or V) rows of `layer` in `block`: block_tokens rows of kv_dim. */
static inline float *kv_k(const kv_pool *p, int32_t block, int layer)
{
    return p->data + (((size_t)block * (size_t)p->n_layers + (size_t)layer) * 2) *
                         (size_t)p->block_tokens * (size_t)p->kv_dim;
}
static inline float *kv_v(const kv_pool *p, int32_t block, int layer)
{
    return kv_k(p, block, layer) + (size_t)p->block_tokens * (size_t)p->kv_dim;
}

/* A sequence's block table: blocks[i] holds positions [i*block_tokens, (i+1)*block_tokens). */
typedef struct kv_seq {
    int32_t *blocks;
    int32_t n_blocks, cap;
} kv_seq;

/* Make the table cover positions [0, n_tokens). Returns INFER_OK, or INFER_ENOMEM when the pool
** has too few free blocks (nothing is taken then: the caller may preempt and retry). */
infer_status kv_seq_reserve(kv_pool *p, kv_seq *s, int n_tokens);
/* Return every block to the pool; the table stays allocated for reuse. */
void kv_seq_release(kv_pool *p, kv_seq *s);
void kv_seq_free(kv_pool *p, kv_seq *s);
/* Blocks needed to hold n_tokens positions. */
static inline int32_t kv_blocks_for(const kv_pool *p, int n_tokens)
{
    return (int32_t)((n_tokens + p->block_tokens - 1) / p->block_tokens);
}

#endif

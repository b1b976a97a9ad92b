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
    float *data;         /* (n_blocks, n_layers, 2, block_tokens, kv_dim); NULL when the blocks
                            live on a device (the backend holds them; same layout) */
    int32_t n_blocks;
    int block_tokens;
    int n_layers;
    int kv_dim;
    int32_t *free_list;  /* stack of free block ids (no cached content) */
    int32_t n_free;
    int32_t *refs;       /* (n_blocks) sequences holding each block */
    /* Prefix cache (prefix_cache.c): full blocks of tokens, found by a chained hash of their
    ** tokens and everything before them. A cached block nobody holds sits in an LRU list and
    ** is evicted only when the free list is empty. */
    int prefix_on;
    uint64_t *hash;      /* (n_blocks) chained hash of a cached block; 0 = not cached */
    int32_t *tokens;     /* (n_blocks, block_tokens) the tokens a cached block holds */
    int32_t *map;        /* open-addressing table hash -> block, map_cap slots, -1 empty */
    uint32_t map_cap;
    int32_t *lru_prev, *lru_next; /* (n_blocks) LRU of unreferenced cached blocks */
    int32_t lru_head, lru_tail, n_lru;
} kv_pool;

/* Sizes the pool to floor(bytes / block bytes) blocks of elem_bytes-sized elements:
** INFER_ENOMEM if that is 0 or an allocation fails. host_data = 0 keeps only the bookkeeping
** (a device backend stores the blocks). prefix_cache != 0 enables sharing of full prompt blocks. */
infer_status kv_pool_init(kv_pool *p, size_t bytes, size_t elem_bytes, int host_data, int block_tokens,
                          int n_layers, int kv_dim, int prefix_cache);
void kv_pool_free(kv_pool *p);
size_t kv_block_bytes(size_t elem_bytes, int block_tokens, int n_layers, int kv_dim);

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
/* Blocks that can be handed out now: free ones plus unreferenced cached ones. */
static inline int32_t kv_available(const kv_pool *p)
{
    return p->n_free + p->n_lru;
}
/* Blocks held by sequences. */
static inline int32_t kv_used(const kv_pool *p)
{
    return p->n_blocks - p->n_free - p->n_lru;
}
/* Take a block (free first, else evict the least recently used cached one); -1 if none. */
int32_t kv_block_alloc(kv_pool *p);
/* Drop one reference; an unreferenced block returns to the free list or, if cached, to the LRU. */
void kv_block_release(kv_pool *p, int32_t b);

/* ---- prefix cache (prefix_cache.c) ---- */
infer_status prefix_init(kv_pool *p);
void prefix_free(kv_pool *p);
/* Hash of a block of tokens chained onto the hash of the blocks before it. */
uint64_t prefix_hash(uint64_t prev, const int32_t *tokens, int n);
/* The cached block holding exactly these tokens after prefix `h`'s predecessors, taking a
** reference; -1 if none. */
int32_t prefix_lookup(kv_pool *p, uint64_t h, const int32_t *tokens);
/* Publish block b (full, holding `tokens`) under hash h; a no-op if h is already cached. */
void prefix_insert(kv_pool *p, int32_t b, uint64_t h, const int32_t *tokens);
/* Forget b's cache entry (when it is evicted). */
void prefix_forget(kv_pool *p, int32_t b);
void lru_remove(kv_pool *p, int32_t b);
void lru_push(kv_pool *p, int32_t b);

/* Blocks needed to hold n_tokens positions. */
static inline int32_t kv_blocks_for(const kv_pool *p, int n_tokens)
{
    return (int32_t)((n_tokens + p->block_tokens - 1) / p->block_tokens);
}

#endif

/*
** kv_cache.c — KV block pool (free-list stack + reference counts) and per-sequence block
** tables. A block's reference count is the number of sequences whose table holds it: more
** than one when a prompt prefix is shared through the prefix cache (prefix_cache.c).
** Shared blocks are never written: sharing is by whole blocks of prompt tokens that are
** already computed, and a sequence writes only positions past them, which lie in blocks of
** its own — so no copy-on-write is needed at this granularity.
*/
#include "kv_cache.h"

#include <stdlib.h>

size_t kv_block_bytes(size_t elem_bytes, int block_tokens, int n_layers, int kv_dim)
{
    return (size_t)block_tokens * (size_t)n_layers * 2 * (size_t)kv_dim * elem_bytes;
}

infer_status kv_pool_init(kv_pool *p, size_t bytes, size_t elem_bytes, int host_data, int block_tokens,
                          int n_layers, int kv_dim, int prefix_cache)
{
    *p = (kv_pool){ 0 };
    size_t bb = kv_block_bytes(elem_bytes, block_tokens, n_layers, kv_dim);
    size_t n = bb ? bytes / bb : 0;
    if (n == 0)
        return infer_err(INFER_ENOMEM,
                         "KV pool of %zu bytes holds no block: one block of %d tokens needs %zu bytes "
                         "(raise kv_cache_bytes)", bytes, block_tokens, bb);
    if (n > INT32_MAX / 4) n = INT32_MAX / 4;
    p->block_tokens = block_tokens;
    p->n_layers = n_layers;
    p->kv_dim = kv_dim;
    p->n_blocks = (int32_t)n;
    /* malloc, not calloc: every position is written before it is read, and untouched blocks
    ** then cost no physical memory. */
    p->data = host_data ? malloc(n * bb) : NULL;
    p->free_list = malloc(n * sizeof(int32_t));
    p->refs = calloc(n, sizeof(int32_t));
    infer_status st = INFER_OK;
    if ((host_data && !p->data) || !p->free_list || !p->refs)
        st = infer_err(INFER_ENOMEM, "cannot allocate a KV pool of %zu blocks (%zu bytes)", n, n * bb);
    else if (prefix_cache)
        st = prefix_init(p);
    if (st) {
        kv_pool_free(p);
        return st;
    }
    /* Hand out low block ids first (stack top = block 0). */
    for (int32_t i = 0; i < p->n_blocks; i++) p->free_list[i] = p->n_blocks - 1 - i;
    p->n_free = p->n_blocks;
    return INFER_OK;
}

void kv_pool_free(kv_pool *p)
{
    prefix_free(p);
    free(p->data);
    free(p->free_list);
    free(p->refs);
    *p = (kv_pool){ 0 };
}

int32_t kv_block_alloc(kv_pool *p)
{
    int32_t b;
    if (p->n_free > 0) {
        b = p->free_list[--p->n_free];
    } else if (p->n_lru > 0) {
        b = p->lru_head;
        lru_remove(p, b);
        prefix_forget(p, b);
    } else {
        return -1;
    }
    p->refs[b] = 1;
    return b;
}

void kv_block_release(kv_pool *p, int32_t b)
{
    if (--p->refs[b] > 0) return;
    if (p->prefix_on && p->hash[b]) lru_push(p, b);
    else p->free_list[p->n_free++] = b;
}

infer_status kv_seq_reserve(kv_pool *p, kv_seq *s, int n_tokens)
{
    int32_t need = kv_blocks_for(p, n_tokens);
    if (need <= s->n_blocks) return INFER_OK;
    if (need - s->n_blocks > kv_available(p)) return INFER_ENOMEM; /* the scheduler handles it */
    if (need > s->cap) {
        int32_t cap = s->cap ? s->cap : 8;
        while (cap < need) cap *= 2;
        int32_t *b = realloc(s->blocks, (size_t)cap * sizeof(int32_t));
        if (!b) return infer_err(INFER_ENOMEM, "out of memory growing a block table");
        s->blocks = b;
        s->cap = cap;
    }
    while (s->n_blocks < need) s->blocks[s->n_blocks++] = kv_block_alloc(p);
    return INFER_OK;
}

void kv_seq_release(kv_pool *p, kv_seq *s)
{
    /* Last block first, so a prefix's head blocks are the last to be evicted from the LRU. */
    for (int32_t i = s->n_blocks - 1; i >= 0; i--) kv_block_release(p, s->blocks[i]);
    s->n_blocks = 0;
}

void kv_seq_free(kv_pool *p, kv_seq *s)
{
    kv_seq_release(p, s);
    free(s->blocks);
    s->blocks = NULL;
    s->cap = 0;
}

/*
** kv_cache.c — KV block pool (a free-list stack) and per-sequence block tables.
*/
#include "kv_cache.h"

#include <stdlib.h>

size_t kv_block_bytes(int block_tokens, int n_layers, int kv_dim)
{
    return (size_t)block_tokens * (size_t)n_layers * 2 * (size_t)kv_dim * sizeof(float);
}

infer_status kv_pool_init(kv_pool *p, size_t bytes, int block_tokens, int n_layers, int kv_dim)
{
    size_t bb = kv_block_bytes(block_tokens, n_layers, kv_dim);
    size_t n = bb ? bytes / bb : 0;
    if (n == 0)
        return infer_err(INFER_ENOMEM,
                         "KV pool of %zu bytes holds no block: one block of %d tokens needs %zu bytes "
                         "(raise kv_cache_bytes)", bytes, block_tokens, bb);
    if (n > INT32_MAX / 2) n = INT32_MAX / 2;
    p->block_tokens = block_tokens;
    p->n_layers = n_layers;
    p->kv_dim = kv_dim;
    p->n_blocks = (int32_t)n;
    /* malloc, not calloc: every position is written before it is read, and untouched blocks
    ** then cost no physical memory. */
    p->data = malloc(n * bb);
    p->free_list = malloc(n * sizeof(int32_t));
    if (!p->data || !p->free_list) {
        free(p->data);
        free(p->free_list);
        p->data = NULL;
        p->free_list = NULL;
        return infer_err(INFER_ENOMEM, "cannot allocate a KV pool of %zu blocks (%zu bytes)", n, n * bb);
    }
    /* Hand out low block ids first (stack top = block 0). */
    for (int32_t i = 0; i < p->n_blocks; i++) p->free_list[i] = p->n_blocks - 1 - i;
    p->n_free = p->n_blocks;
    return INFER_OK;
}

void kv_pool_free(kv_pool *p)
{
    free(p->data);
    free(p->free_list);
    p->data = NULL;
    p->free_list = NULL;
    p->n_blocks = p->n_free = 0;
}

infer_status kv_seq_reserve(kv_pool *p, kv_seq *s, int n_tokens)
{
    int32_t need = kv_blocks_for(p, n_tokens);
    if (need <= s->n_blocks) return INFER_OK;
    int32_t extra = need - s->n_blocks;
    if (extra > p->n_free) return INFER_ENOMEM; /* no message: the scheduler handles it */
    if (need > s->cap) {
        int32_t cap = s->cap ? s->cap : 8;
        while (cap < need) cap *= 2;
        int32_t *b = realloc(s->blocks, (size_t)cap * sizeof(int32_t));
        if (!b) return infer_err(INFER_ENOMEM, "out of memory growing a block table");
        s->blocks = b;
        s->cap = cap;
    }
    while (s->n_blocks < need) s->blocks[s->n_blocks++] = p->free_list[--p->n_free];
    return INFER_OK;
}

void kv_seq_release(kv_pool *p, kv_seq *s)
{
    /* Push in reverse so the next sequence gets the same blocks in the same order. */
    for (int32_t i = s->n_blocks - 1; i >= 0; i--) p->free_list[p->n_free++] = s->blocks[i];
    s->n_blocks = 0;
}

void kv_seq_free(kv_pool *p, kv_seq *s)
{
    kv_seq_release(p, s);
    free(s->blocks);
    s->blocks = NULL;
    s->cap = 0;
}

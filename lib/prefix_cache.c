/*
** prefix_cache.c — sharing the KV of identical prompt prefixes (vLLM's automatic prefix
** caching). Each full block of tokens is named by a 64-bit hash chained over all blocks
** before it, so equal hashes mean equal prefixes (the block's tokens are also compared, so a
** hash collision can never hand out the wrong KV). A new request walks its prompt block by
** block and takes every cached block that matches, computing only the rest.
**
** A cached block nobody holds stays in an LRU list and keeps its content until the free list
** is empty and a new block is needed. The table is open addressing with linear probing and
** backward-shift deletion, sized to twice the pool so it never fills.
*/
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

infer_status prefix_init(kv_pool *p)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)p->n_blocks * 2u) cap *= 2;
    p->map_cap = cap;
    p->map = malloc(cap * sizeof *p->map);
    p->hash = calloc((size_t)p->n_blocks, sizeof *p->hash);
    p->tokens = malloc((size_t)p->n_blocks * (size_t)p->block_tokens * sizeof *p->tokens);
    p->lru_prev = malloc((size_t)p->n_blocks * sizeof *p->lru_prev);
    p->lru_next = malloc((size_t)p->n_blocks * sizeof *p->lru_next);
    if (!p->map || !p->hash || !p->tokens || !p->lru_prev || !p->lru_next)
        return infer_err(INFER_ENOMEM, "out of memory for the prefix cache of %d blocks", p->n_blocks);
    for (uint32_t i = 0; i < cap; i++) p->map[i] = -1;
    p->lru_head = p->lru_tail = -1;
    p->n_lru = 0;
    p->prefix_on = 1;
    return INFER_OK;
}

void prefix_free(kv_pool *p)
{
    free(p->map);
    free(p->hash);
    free(p->tokens);
    free(p->lru_prev);
    free(p->lru_next);
    p->map = NULL;
    p->hash = NULL;
    p->tokens = NULL;
    p->lru_prev = p->lru_next = NULL;
    p->prefix_on = 0;
}

/* splitmix64's finaliser: a cheap, well-mixed 64-bit hash step. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t prefix_hash(uint64_t prev, const int32_t *tokens, int n)
{
    uint64_t h = mix(prev ^ 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < n; i++) h = mix(h ^ (uint32_t)tokens[i]);
    return h ? h : 1; /* 0 means "not cached" */
}

static uint32_t slot_of(const kv_pool *p, uint64_t h)
{
    return (uint32_t)h & (p->map_cap - 1);
}

void lru_remove(kv_pool *p, int32_t b)
{
    int32_t pv = p->lru_prev[b], nx = p->lru_next[b];
    if (pv >= 0) p->lru_next[pv] = nx;
    else p->lru_head = nx;
    if (nx >= 0) p->lru_prev[nx] = pv;
    else p->lru_tail = pv;
    p->n_lru--;
}

void lru_push(kv_pool *p, int32_t b)
{
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0) p->lru_next[p->lru_tail] = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_lru++;
}

int32_t prefix_lookup(kv_pool *p, uint64_t h, const int32_t *tokens)
{
    if (!p->prefix_on) return -1;
    size_t bt = (size_t)p->block_tokens;
    for (uint32_t i = slot_of(p, h);; i = (i + 1) & (p->map_cap - 1)) {
        int32_t b = p->map[i];
        if (b < 0) return -1;
        if (p->hash[b] == h && memcmp(p->tokens + (size_t)b * bt, tokens, bt * sizeof *tokens) == 0) {
            if (p->refs[b] == 0) lru_remove(p, b);
            p->refs[b]++;
            return b;
        }
    }
}

void prefix_insert(kv_pool *p, int32_t b, uint64_t h, const int32_t *tokens)
{
    if (!p->prefix_on || p->hash[b]) return;
    uint32_t i = slot_of(p, h);
    for (; p->map[i] >= 0; i = (i + 1) & (p->map_cap - 1))
        if (p->hash[p->map[i]] == h) return; /* that prefix is cached already, in another block */
    p->map[i] = b;
    p->hash[b] = h;
    memcpy(p->tokens + (size_t)b * (size_t)p->block_tokens, tokens, (size_t)p->block_tokens * sizeof *tokens);
}

void prefix_forget(kv_pool *p, int32_t b)
{
    if (!p->prefix_on || !p->hash[b]) return;
    uint32_t mask = p->map_cap - 1, i = slot_of(p, p->hash[b]);
    while (p->map[i] != b) i = (i + 1) & mask;
    /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
    for (uint32_t j = (i + 1) & mask; p->map[j] >= 0; j = (j + 1) & mask) {
        uint32_t home = slot_of(p, p->hash[p->map[j]]);
        /* Move j's entry into the hole at i if its home is not in (i, j] cyclically. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            p->map[i] = p->map[j];
            i = j;
        }
    }
    p->map[i] = -1;
    p->hash[b] = 0;
}

/*
** ops_attn.h — the CPU backend's paged attention kernel (ops_attn.c): for each row of the batch
** and each query head, softmax over positions 0..pos of q·k / sqrt(head_dim), times v, reading
** K and V from the pool's blocks through the row's block table (backend.h's attn_args).
*/
#ifndef INFER_OPS_ATTN_H
#define INFER_OPS_ATTN_H

#include "../backend.h"
#include "../kv_cache.h"
#include "ops_simd.h"

/* Threaded over (row, query head) pairs. scores: (tp_size(tp), scores_cap) floats of scratch,
** scores_cap >= a->max_ctx. A pair's result depends on nothing but its row (batch invariance). */
void ops_attention(threadpool *tp, const attn_args *a, float *scores, int scores_cap);
/* The same at a forced SIMD level (tests). */
void ops_attention_level(ops_simd_level level, threadpool *tp, const attn_args *a, float *scores,
                         int scores_cap);

#endif

/*
** batch.h — one engine step's flattened batch: every token fed this step, from every
** sequence, with its position and its sequence's block table. Decode rows (one token of a
** running sequence) and prefill chunks (several consecutive tokens of one sequence) mix
** freely; rows of one sequence are consecutive and in position order.
*/
#ifndef INFER_BATCH_H
#define INFER_BATCH_H

#include "kv_cache.h"

typedef struct batch {
    int n, cap;
    int32_t *tokens;         /* (n) token fed at each row */
    int32_t *pos;            /* (n) its position in its sequence */
    const kv_seq **tables;   /* (n) the sequence's block table (covers pos) */
    uint8_t *want_logits;    /* (n) 1 = logits of this row are needed */
    uint8_t *full_logits;    /* (n) 1 = the host needs the whole row (sampling other than greedy,
                                or the request wants logits); else a device backend may return
                                only the row's argmax */
    float *dsamp;            /* (n, 6) device sampling of a row (sampler_device_params), mode 0 =
                                none: the row's token is then its argmax or the host's draw */
    int n_logits;            /* rows with want_logits, in row order, in the output */
} batch;

infer_status batch_reserve(batch *b, int cap);
void batch_clear(batch *b);
void batch_free(batch *b);
/* Append a row (cap must allow it). */
void batch_add(batch *b, int32_t token, int32_t pos, const kv_seq *table, int want_logits, int full_logits);

#endif

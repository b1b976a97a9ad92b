/*
** batch.c — storage for the step batch; grown once to the token budget and reused.
*/
#include "batch.h"

#include <stdlib.h>

infer_status batch_reserve(batch *b, int cap)
{
    if (cap <= b->cap) return INFER_OK;
    int32_t *t = realloc(b->tokens, (size_t)cap * sizeof *t);
    if (t) b->tokens = t;
    int32_t *p = realloc(b->pos, (size_t)cap * sizeof *p);
    if (p) b->pos = p;
    const kv_seq **s = realloc(b->tables, (size_t)cap * sizeof *s);
    if (s) b->tables = s;
    uint8_t *w = realloc(b->want_logits, (size_t)cap);
    if (w) b->want_logits = w;
    uint8_t *f = realloc(b->full_logits, (size_t)cap);
    if (f) b->full_logits = f;
    float *d = realloc(b->dsamp, (size_t)cap * 6 * sizeof(float));
    if (d) b->dsamp = d;
    if (!t || !p || !s || !w || !f || !d) return infer_err(INFER_ENOMEM, "out of memory for a batch of %d tokens", cap);
    b->cap = cap;
    return INFER_OK;
}

void batch_clear(batch *b)
{
    b->n = 0;
    b->n_logits = 0;
}

void batch_free(batch *b)
{
    free(b->tokens);
    free(b->pos);
    free(b->tables);
    free(b->want_logits);
    free(b->full_logits);
    free(b->dsamp);
    *b = (batch){0};
}

void batch_add(batch *b, int32_t token, int32_t pos, const kv_seq *table, int want_logits, int full_logits)
{
    int i = b->n++;
    b->tokens[i] = token;
    b->pos[i] = pos;
    b->tables[i] = table;
    b->want_logits[i] = (uint8_t)(want_logits != 0);
    b->full_logits[i] = (uint8_t)(want_logits != 0 && full_logits != 0);
    b->dsamp[6 * (size_t)i] = 0.0f;
    b->n_logits += want_logits != 0;
}

/*
** util.c — small shared helpers: growable strings, strdup, logging dispatch.
*/
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

infer_status sb_append(strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return infer_err(INFER_ENOMEM, "out of memory growing a string to %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return INFER_OK;
}

void sb_clear(strbuf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = 0;
}

void sb_free(strbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *infer_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void infer_log(const infer_logger *lg, infer_log_level level, const char *fmt, ...)
{
    if (!lg || !lg->fn || level > lg->level) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg->fn(lg->user, level, msg);
}

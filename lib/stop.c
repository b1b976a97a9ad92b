/*
** stop.c — stop strings over streamed text.
**
** Generated text arrives a token (a few bytes) at a time, and a stop string may span many
** tokens, so text that could still be the start of a stop string is held back until the
** next bytes show whether it is. When any stop string appears complete, the text before its
** earliest occurrence is released and nothing after it ever is (the OpenAI API's `stop`
** semantics: the returned text does not contain the stop sequence).
**
** The held text is always shorter than the longest stop string, so each feed scans at most
** (longest - 1 + new bytes) positions against each stop string; stop lists are short.
*/
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

struct stop_matcher {
    char **stops;
    size_t *lens;
    size_t n;
    strbuf held;   /* text not yet released: new text plus a possible stop-string prefix */
    int matched;   /* a stop string completed: release nothing more */
};

void stop_free(stop_matcher *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    sb_free(&m->held);
    free(m);
}

infer_status stop_create(const char *const *stops, size_t n, stop_matcher **out)
{
    if (!out) return infer_err(INFER_EINVAL, "stop_create: NULL argument");
    *out = NULL;
    if (n > 0 && !stops) return infer_err(INFER_EINVAL, "stop strings: NULL list of %zu", n);
    for (size_t i = 0; i < n; i++) {
        /* An empty stop string would match before the first byte and end every request. */
        if (!stops[i]) return infer_err(INFER_EINVAL, "stop strings: stop[%zu] is NULL", i);
        if (!stops[i][0]) return infer_err(INFER_EINVAL, "stop strings: stop[%zu] is empty", i);
    }
    stop_matcher *m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    if (n > 0) {
        m->stops = calloc(n, sizeof *m->stops);
        m->lens = calloc(n, sizeof *m->lens);
        if (!m->stops || !m->lens) goto nomem;
        for (size_t i = 0; i < n; i++) {
            m->stops[i] = infer_strdup(stops[i]);
            if (!m->stops[i]) goto nomem;
            m->lens[i] = strlen(stops[i]);
            m->n = i + 1; /* what stop_free must release */
        }
    }
    *out = m;
    return INFER_OK;
nomem:
    stop_free(m);
    return infer_err(INFER_ENOMEM, "stop strings: out of memory");
}

/* Release held[0..k) to out and keep the rest. */
static infer_status release(stop_matcher *m, size_t k, strbuf *out)
{
    if (k == 0) return INFER_OK;
    infer_status st = sb_append(out, m->held.p, k);
    if (st != INFER_OK) return st;
    memmove(m->held.p, m->held.p + k, m->held.len - k);
    m->held.len -= k;
    m->held.p[m->held.len] = 0;
    return INFER_OK;
}

infer_status stop_feed(stop_matcher *m, const char *text, size_t len, strbuf *out, int *matched)
{
    if (!m || !out || !matched || (len > 0 && !text)) return infer_err(INFER_EINVAL, "stop_feed: NULL argument");
    *matched = m->matched;
    if (m->matched) return INFER_OK;
    infer_status st = sb_append(&m->held, text, len);
    if (st != INFER_OK) return st;
    if (m->n == 0) return release(m, m->held.len, out);

    /* Scan every start position: the first one where a stop string fits completely is the
    ** match; otherwise the first one where the rest of the text is a prefix of some stop
    ** string is where holding starts. A later full match beats an earlier partial one:
    ** the partial one may never complete, the full one already has. */
    const char *h = m->held.p;
    const size_t hl = m->held.len;
    size_t hold = hl;
    for (size_t i = 0; i < hl; i++) {
        for (size_t j = 0; j < m->n; j++) {
            size_t sl = m->lens[j], rest = hl - i;
            if (sl <= rest) {
                if (memcmp(h + i, m->stops[j], sl) == 0) {
                    st = release(m, i, out);
                    if (st != INFER_OK) return st;
                    m->matched = 1;
                    *matched = 1;
                    sb_free(&m->held); /* the stop string and anything after: never released */
                    return INFER_OK;
                }
            } else if (hold == hl && memcmp(h + i, m->stops[j], rest) == 0) {
                hold = i;
            }
        }
    }
    return release(m, hold, out);
}

infer_status stop_flush(stop_matcher *m, strbuf *out)
{
    if (!m || !out) return infer_err(INFER_EINVAL, "stop_flush: NULL argument");
    if (m->matched) return INFER_OK;
    return release(m, m->held.len, out);
}

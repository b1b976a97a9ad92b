/*
** utf8.c — UTF-8 validation and the streaming assembler used by detokenization.
**
** Why a streaming assembler: byte-fallback tokens (<0xC3> <0xA9>) and byte-level BPE
** pieces split characters across tokens, and a host printing each token's text as it
** arrives must never see half a character. Bytes of an unfinished character wait in the
** caller's `pend`; anything that can never become a valid character is replaced by
** U+FFFD at the earliest byte that proves it invalid, so output is always valid UTF-8.
*/
#include "utf8.h"

#include <string.h>

int utf8_seq_len(unsigned char lead)
{
    if (lead < 0x80) return 1;
    if (lead < 0xC2) return 0; /* continuation byte, or C0/C1 (overlong 2-byte forms) */
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    if (lead < 0xF5) return 4;
    return 0; /* F5..FF would encode above U+10FFFF */
}

/* Is `b` acceptable as byte `idx` (1..3) of the character led by `lead`? The second
** byte's range is narrowed for E0/ED/F0/F4 to exclude overlongs, surrogates and code
** points above U+10FFFF (Unicode table 3-7). */
static int cont_ok(unsigned char lead, int idx, unsigned char b)
{
    if (idx == 1) {
        switch (lead) {
        case 0xE0: return b >= 0xA0 && b <= 0xBF;
        case 0xED: return b >= 0x80 && b <= 0x9F;
        case 0xF0: return b >= 0x90 && b <= 0xBF;
        case 0xF4: return b >= 0x80 && b <= 0x8F;
        default: break;
        }
    }
    return (b & 0xC0) == 0x80;
}

int utf8_is_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int need = utf8_seq_len(p[i]);
        if (need == 0 || (size_t)need > n - i) return 0;
        for (int k = 1; k < need; k++)
            if (!cont_ok(p[i], k, p[i + k])) return 0;
        i += (size_t)need;
    }
    return 1;
}

/* Output is gathered in a small local buffer so a piece costs one strbuf append, not one
** per character. */
typedef struct outbuf {
    strbuf *sb;
    size_t n;
    char b[256];
} outbuf;

static infer_status ob_put(outbuf *o, const void *p, size_t n)
{
    if (o->n + n > sizeof o->b) {
        infer_status st = sb_append(o->sb, o->b, o->n);
        if (st != INFER_OK) return st;
        o->n = 0;
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
    return INFER_OK;
}

static infer_status ob_done(outbuf *o)
{
    /* Append even when empty so `out->p` is a valid NUL-terminated string afterwards. */
    return sb_append(o->sb, o->b, o->n);
}

infer_status utf8_stream_feed(unsigned char pend[4], int *n_pend, const char *s, size_t n,
                              strbuf *out)
{
    if (*n_pend < 0 || *n_pend > 3)
        return infer_err(INFER_EINVAL, "utf8 stream state holds %d pending bytes (0..3 allowed)",
                         *n_pend);
    const unsigned char *p = (const unsigned char *)s;
    outbuf o = {.sb = out, .n = 0};
    infer_status st = INFER_OK;
    for (size_t i = 0; i < n && st == INFER_OK; i++) {
        unsigned char b = p[i];
        if (*n_pend > 0) {
            if (cont_ok(pend[0], *n_pend, b)) {
                pend[(*n_pend)++] = b;
                if (*n_pend == utf8_seq_len(pend[0])) {
                    st = ob_put(&o, pend, (size_t)*n_pend);
                    *n_pend = 0;
                }
                continue;
            }
            /* The pending prefix can never complete: one U+FFFD for it, then `b` is
            ** looked at afresh (it may well start a valid character). */
            st = ob_put(&o, UTF8_REPLACEMENT, 3);
            *n_pend = 0;
            if (st != INFER_OK) break;
        }
        int need = utf8_seq_len(b);
        if (need == 0) {
            st = ob_put(&o, UTF8_REPLACEMENT, 3);
        } else if (need == 1) {
            st = ob_put(&o, &b, 1);
        } else {
            pend[0] = b;
            *n_pend = 1;
        }
    }
    if (st != INFER_OK) return st;
    return ob_done(&o);
}

infer_status utf8_stream_flush(unsigned char pend[4], int *n_pend, strbuf *out)
{
    (void)pend;
    int had = *n_pend;
    *n_pend = 0;
    if (had == 0) return sb_append(out, "", 0);
    return sb_append(out, UTF8_REPLACEMENT, 3);
}

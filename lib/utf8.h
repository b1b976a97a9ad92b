/*
** utf8.h — UTF-8 helpers shared by the tokenizers (internal to lib/).
**
** Validity follows RFC 3629 / Unicode 15 table 3-7: no overlong forms, no surrogates
** (U+D800..DFFF), nothing above U+10FFFF. The streaming assembler replaces each maximal
** invalid subpart with one U+FFFD (the W3C/WHATWG "substitution of maximal subparts"
** practice), so a decoder built on it emits valid UTF-8 whatever tokens it is fed.
*/
#ifndef INFER_UTF8_H
#define INFER_UTF8_H

#include "internal.h"

#define UTF8_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD, 3 bytes */

/* Length of the character that `lead` starts (1..4), or 0 if `lead` cannot start one
** (a continuation byte 80..BF, C0, C1, F5..FF). */
int utf8_seq_len(unsigned char lead);

/* 1 if s[0..n) is entirely valid UTF-8, else 0. */
int utf8_is_valid(const char *s, size_t n);

/* Streaming assembly. `pend`/`*n_pend` hold the bytes of a character still incomplete
** after the previous call (n_pend 0..3; start with 0). Appends to `out` every character
** that s[0..n) completes, plus U+FFFD for each invalid subpart; bytes of a character not
** yet complete stay in pend. Fails only with INFER_ENOMEM (from the strbuf). */
infer_status utf8_stream_feed(unsigned char pend[4], int *n_pend, const char *s, size_t n,
                              strbuf *out);

/* End of input: a pending incomplete character becomes one U+FFFD; pend is emptied. */
infer_status utf8_stream_flush(unsigned char pend[4], int *n_pend, strbuf *out);

#endif

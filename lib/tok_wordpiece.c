/*
** tok_wordpiece.c — BERT WordPiece (GGUF tokenizer.ggml.model "bert", or a vocab list from
** a Hugging Face vocab.txt / tokenizer.json).
**
** Matches google-research/bert tokenization.py (and HF BertTokenizer):
**  BasicTokenizer: drop NUL, U+FFFD and control characters (Cc/Cf, not \t\n\r); whitespace
**  (White_Space) separates words; each CJK ideograph is a word of its own; for uncased
**  models lowercase, then strip accents (NFD, drop Mn); every punctuation character (P*, and
**  the ASCII symbols 33-47, 58-64, 91-96, 123-126) is a word of its own.
**  WordpieceTokenizer: per word, greedy longest-match-first from the left, pieces after the
**  first carrying the continuation prefix; a word with no full match, or longer than
**  max_word_chars (100), becomes [UNK].
** Vocab conventions: Hugging Face marks continuations ("##ing"); llama.cpp's GGUF converter
** rewrites the vocab to mark word starts instead ("▁un", "aff"), and both are read here.
** Limits of the built-in case/accent tables (generated from Python's unicodedata, below):
** lowercasing covers the BMP's one-to-one mappings; accent stripping covers precomposed
** Latin, Greek and Cyrillic letters, and drops combining marks (Mn) everywhere. Invalid UTF-8
** bytes are dropped like control characters. Decoding is lossy by nature (case, accents,
** spacing around punctuation): "##" pieces join, other words get a space before them.
*/
#include "tokenizer.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

/* Generated with Python 3.11 unicodedata (Unicode 14.0.0): str.lower() of the BMP above ASCII where it
** is one code point, as runs {first, last, delta, step} (step 2: every other code point). */
static const struct lower_run { uint16_t lo, hi; int32_t delta; uint8_t step; } LOWER_RUNS[] = {
    {0xC0, 0xD6, 32, 1}, {0xD8, 0xDE, 32, 1}, {0x100, 0x12E, 1, 2}, {0x132, 0x136, 1, 2},
    {0x139, 0x147, 1, 2}, {0x14A, 0x176, 1, 2}, {0x178, 0x178, -121, 1}, {0x179, 0x17D, 1, 2},
    {0x181, 0x181, 210, 1}, {0x182, 0x184, 1, 2}, {0x186, 0x186, 206, 1}, {0x187, 0x187, 1, 1},
    {0x189, 0x18A, 205, 1}, {0x18B, 0x18B, 1, 1}, {0x18E, 0x18E, 79, 1}, {0x18F, 0x18F, 202, 1},
    {0x190, 0x190, 203, 1}, {0x191, 0x191, 1, 1}, {0x193, 0x193, 205, 1}, {0x194, 0x194, 207, 1},
    {0x196, 0x196, 211, 1}, {0x197, 0x197, 209, 1}, {0x198, 0x198, 1, 1}, {0x19C, 0x19C, 211, 1},
    {0x19D, 0x19D, 213, 1}, {0x19F, 0x19F, 214, 1}, {0x1A0, 0x1A4, 1, 2}, {0x1A6, 0x1A6, 218, 1},
    {0x1A7, 0x1A7, 1, 1}, {0x1A9, 0x1A9, 218, 1}, {0x1AC, 0x1AC, 1, 1}, {0x1AE, 0x1AE, 218, 1},
    {0x1AF, 0x1AF, 1, 1}, {0x1B1, 0x1B2, 217, 1}, {0x1B3, 0x1B5, 1, 2}, {0x1B7, 0x1B7, 219, 1},
    {0x1B8, 0x1B8, 1, 1}, {0x1BC, 0x1BC, 1, 1}, {0x1C4, 0x1C4, 2, 1}, {0x1C5, 0x1C5, 1, 1},
    {0x1C7, 0x1C7, 2, 1}, {0x1C8, 0x1C8, 1, 1}, {0x1CA, 0x1CA, 2, 1}, {0x1CB, 0x1DB, 1, 2},
    {0x1DE, 0x1EE, 1, 2}, {0x1F1, 0x1F1, 2, 1}, {0x1F2, 0x1F4, 1, 2}, {0x1F6, 0x1F6, -97, 1},
    {0x1F7, 0x1F7, -56, 1}, {0x1F8, 0x21E, 1, 2}, {0x220, 0x220, -130, 1}, {0x222, 0x232, 1, 2},
    {0x23A, 0x23A, 10795, 1}, {0x23B, 0x23B, 1, 1}, {0x23D, 0x23D, -163, 1}, {0x23E, 0x23E, 10792, 1},
    {0x241, 0x241, 1, 1}, {0x243, 0x243, -195, 1}, {0x244, 0x244, 69, 1}, {0x245, 0x245, 71, 1},
    {0x246, 0x24E, 1, 2}, {0x370, 0x372, 1, 2}, {0x376, 0x376, 1, 1}, {0x37F, 0x37F, 116, 1},
    {0x386, 0x386, 38, 1}, {0x388, 0x38A, 37, 1}, {0x38C, 0x38C, 64, 1}, {0x38E, 0x38F, 63, 1},
    {0x391, 0x3A1, 32, 1}, {0x3A3, 0x3AB, 32, 1}, {0x3CF, 0x3CF, 8, 1}, {0x3D8, 0x3EE, 1, 2},
    {0x3F4, 0x3F4, -60, 1}, {0x3F7, 0x3F7, 1, 1}, {0x3F9, 0x3F9, -7, 1}, {0x3FA, 0x3FA, 1, 1},
    {0x3FD, 0x3FF, -130, 1}, {0x400, 0x40F, 80, 1}, {0x410, 0x42F, 32, 1}, {0x460, 0x480, 1, 2},
    {0x48A, 0x4BE, 1, 2}, {0x4C0, 0x4C0, 15, 1}, {0x4C1, 0x4CD, 1, 2}, {0x4D0, 0x52E, 1, 2},
    {0x531, 0x556, 48, 1}, {0x10A0, 0x10C5, 7264, 1}, {0x10C7, 0x10C7, 7264, 1}, {0x10CD, 0x10CD, 7264, 1},
    {0x13A0, 0x13EF, 38864, 1}, {0x13F0, 0x13F5, 8, 1}, {0x1C90, 0x1CBA, -3008, 1}, {0x1CBD, 0x1CBF, -3008, 1},
    {0x1E00, 0x1E94, 1, 2}, {0x1E9E, 0x1E9E, -7615, 1}, {0x1EA0, 0x1EFE, 1, 2}, {0x1F08, 0x1F0F, -8, 1},
    {0x1F18, 0x1F1D, -8, 1}, {0x1F28, 0x1F2F, -8, 1}, {0x1F38, 0x1F3F, -8, 1}, {0x1F48, 0x1F4D, -8, 1},
    {0x1F59, 0x1F5F, -8, 2}, {0x1F68, 0x1F6F, -8, 1}, {0x1F88, 0x1F8F, -8, 1}, {0x1F98, 0x1F9F, -8, 1},
    {0x1FA8, 0x1FAF, -8, 1}, {0x1FB8, 0x1FB9, -8, 1}, {0x1FBA, 0x1FBB, -74, 1}, {0x1FBC, 0x1FBC, -9, 1},
    {0x1FC8, 0x1FCB, -86, 1}, {0x1FCC, 0x1FCC, -9, 1}, {0x1FD8, 0x1FD9, -8, 1}, {0x1FDA, 0x1FDB, -100, 1},
    {0x1FE8, 0x1FE9, -8, 1}, {0x1FEA, 0x1FEB, -112, 1}, {0x1FEC, 0x1FEC, -7, 1}, {0x1FF8, 0x1FF9, -128, 1},
    {0x1FFA, 0x1FFB, -126, 1}, {0x1FFC, 0x1FFC, -9, 1}, {0x2126, 0x2126, -7517, 1}, {0x212A, 0x212A, -8383, 1},
    {0x212B, 0x212B, -8262, 1}, {0x2132, 0x2132, 28, 1}, {0x2160, 0x216F, 16, 1}, {0x2183, 0x2183, 1, 1},
    {0x24B6, 0x24CF, 26, 1}, {0x2C00, 0x2C2F, 48, 1}, {0x2C60, 0x2C60, 1, 1}, {0x2C62, 0x2C62, -10743, 1},
    {0x2C63, 0x2C63, -3814, 1}, {0x2C64, 0x2C64, -10727, 1}, {0x2C67, 0x2C6B, 1, 2}, {0x2C6D, 0x2C6D, -10780, 1},
    {0x2C6E, 0x2C6E, -10749, 1}, {0x2C6F, 0x2C6F, -10783, 1}, {0x2C70, 0x2C70, -10782, 1}, {0x2C72, 0x2C72, 1, 1},
    {0x2C75, 0x2C75, 1, 1}, {0x2C7E, 0x2C7F, -10815, 1}, {0x2C80, 0x2CE2, 1, 2}, {0x2CEB, 0x2CED, 1, 2},
    {0x2CF2, 0x2CF2, 1, 1}, {0xA640, 0xA66C, 1, 2}, {0xA680, 0xA69A, 1, 2}, {0xA722, 0xA72E, 1, 2},
    {0xA732, 0xA76E, 1, 2}, {0xA779, 0xA77B, 1, 2}, {0xA77D, 0xA77D, -35332, 1}, {0xA77E, 0xA786, 1, 2},
    {0xA78B, 0xA78B, 1, 1}, {0xA78D, 0xA78D, -42280, 1}, {0xA790, 0xA792, 1, 2}, {0xA796, 0xA7A8, 1, 2},
    {0xA7AA, 0xA7AA, -42308, 1}, {0xA7AB, 0xA7AB, -42319, 1}, {0xA7AC, 0xA7AC, -42315, 1}, {0xA7AD, 0xA7AD, -42305, 1},
    {0xA7AE, 0xA7AE, -42308, 1}, {0xA7B0, 0xA7B0, -42258, 1}, {0xA7B1, 0xA7B1, -42282, 1}, {0xA7B2, 0xA7B2, -42261, 1},
    {0xA7B3, 0xA7B3, 928, 1}, {0xA7B4, 0xA7C2, 1, 2}, {0xA7C4, 0xA7C4, -48, 1}, {0xA7C5, 0xA7C5, -42307, 1},
    {0xA7C6, 0xA7C6, -35384, 1}, {0xA7C7, 0xA7C9, 1, 2}, {0xA7D0, 0xA7D0, 1, 1}, {0xA7D6, 0xA7D8, 1, 2},
    {0xA7F5, 0xA7F5, 1, 1}, {0xFF21, 0xFF3A, 32, 1},
};
/* NFD base letter of U+00C0..U+024F ('.' = none or not ASCII). */
static const char LATIN_BASE_00C0[] =
    "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.yAaAaAaCc"
    "CcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLl....NnNnNn...OoOo"
    "Oo..RrRrRrSsSsSsSsTtTt..UuUuUuUuUuUuWwYyYZzZzZz........................."
    "........Oo.............Uu............................AaIiOoUuUuUuUuUu.Aa"
    "Aa....GgKkOoOo..j...Gg..NnAa....AaAaEeEeIiIiOoOoRrRrUuUuSsTt..Hh......Aa"
    "EeOoOoOoOoYy............................"
;
/* NFD base letter of U+1E00..U+1EFF ('.' = none or not ASCII). */
static const char LATIN_BASE_1E00[] =
    "AaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMmMmMmNnNn"
    "NnNnOoOoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVvWwWwWwWwWwXxXxYy"
    "ZzZzZzhtwy......AaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEeEeEeEeEeIiIiOoOoOoOoOoOo"
    "OoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy......"
;
/* NFD base of the other precomposed Latin, Greek and Cyrillic letters, sorted. */
static const uint16_t OTHER_BASE[][2] = {
    {0x1E2, 0xC6}, {0x1E3, 0xE6}, {0x1EE, 0x1B7}, {0x1EF, 0x292}, {0x1FC, 0xC6}, {0x1FD, 0xE6},
    {0x1FE, 0xD8}, {0x1FF, 0xF8}, {0x385, 0xA8}, {0x386, 0x391}, {0x388, 0x395}, {0x389, 0x397},
    {0x38A, 0x399}, {0x38C, 0x39F}, {0x38E, 0x3A5}, {0x38F, 0x3A9}, {0x390, 0x3B9}, {0x3AA, 0x399},
    {0x3AB, 0x3A5}, {0x3AC, 0x3B1}, {0x3AD, 0x3B5}, {0x3AE, 0x3B7}, {0x3AF, 0x3B9}, {0x3B0, 0x3C5},
    {0x3CA, 0x3B9}, {0x3CB, 0x3C5}, {0x3CC, 0x3BF}, {0x3CD, 0x3C5}, {0x3CE, 0x3C9}, {0x3D3, 0x3D2},
    {0x3D4, 0x3D2}, {0x400, 0x415}, {0x401, 0x415}, {0x403, 0x413}, {0x407, 0x406}, {0x40C, 0x41A},
    {0x40D, 0x418}, {0x40E, 0x423}, {0x419, 0x418}, {0x439, 0x438}, {0x450, 0x435}, {0x451, 0x435},
    {0x453, 0x433}, {0x457, 0x456}, {0x45C, 0x43A}, {0x45D, 0x438}, {0x45E, 0x443}, {0x476, 0x474},
    {0x477, 0x475}, {0x4C1, 0x416}, {0x4C2, 0x436}, {0x4D0, 0x410}, {0x4D1, 0x430}, {0x4D2, 0x410},
    {0x4D3, 0x430}, {0x4D6, 0x415}, {0x4D7, 0x435}, {0x4DA, 0x4D8}, {0x4DB, 0x4D9}, {0x4DC, 0x416},
    {0x4DD, 0x436}, {0x4DE, 0x417}, {0x4DF, 0x437}, {0x4E2, 0x418}, {0x4E3, 0x438}, {0x4E4, 0x418},
    {0x4E5, 0x438}, {0x4E6, 0x41E}, {0x4E7, 0x43E}, {0x4EA, 0x4E8}, {0x4EB, 0x4E9}, {0x4EC, 0x42D},
    {0x4ED, 0x44D}, {0x4EE, 0x423}, {0x4EF, 0x443}, {0x4F0, 0x423}, {0x4F1, 0x443}, {0x4F2, 0x423},
    {0x4F3, 0x443}, {0x4F4, 0x427}, {0x4F5, 0x447}, {0x4F8, 0x42B}, {0x4F9, 0x44B},
};

static uint32_t wp_tolower(uint32_t cp)
{
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t n = sizeof LOWER_RUNS / sizeof *LOWER_RUNS, lo = 0, hi = n;
    if (cp > 0xFFFF) return cp;
    while (lo < hi) { /* first run ending at or after cp */
        size_t mid = (lo + hi) / 2;
        if (LOWER_RUNS[mid].hi < cp) lo = mid + 1;
        else hi = mid;
    }
    for (; lo < n && LOWER_RUNS[lo].lo <= cp; lo++)
        if (cp <= LOWER_RUNS[lo].hi && (LOWER_RUNS[lo].step == 1 || (cp - LOWER_RUNS[lo].lo) % 2 == 0))
            return (uint32_t)((int32_t)cp + LOWER_RUNS[lo].delta);
    return cp;
}

/* The letter a precomposed character decomposes to under NFD, without its marks. */
static uint32_t wp_base(uint32_t cp)
{
    if (cp < 0xC0) return cp;
    if (cp < 0x250 && LATIN_BASE_00C0[cp - 0xC0] != '.') return (unsigned char)LATIN_BASE_00C0[cp - 0xC0];
    if (cp >= 0x1E00 && cp < 0x1F00 && LATIN_BASE_1E00[cp - 0x1E00] != '.')
        return (unsigned char)LATIN_BASE_1E00[cp - 0x1E00];
    size_t lo = 0, hi = sizeof OTHER_BASE / sizeof *OTHER_BASE;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (OTHER_BASE[mid][0] == cp) return OTHER_BASE[mid][1];
        if (OTHER_BASE[mid][0] < cp) lo = mid + 1;
        else hi = mid;
    }
    return cp;
}

/* BERT's _is_chinese_char: the CJK Unified Ideographs blocks (not Hangul or kana). */
static int is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* BERT's _is_punctuation: every non-alphanumeric ASCII printable, and Unicode P*. */
static int is_punct(uint32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    return (unicode_flags(cp) & UNI_PUNCT) != 0;
}

static size_t put_utf8(char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (char)(0xC0 | cp >> 6);
        p[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (char)(0xE0 | cp >> 12);
        p[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        p[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (char)(0xF0 | cp >> 18);
    p[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    p[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    p[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static infer_status push_unk(const tokenizer *t, tok_ids *o)
{
    if (t->special[TOK_SPECIAL_UNK] < 0)
        return infer_err(INFER_EUNSUPPORTED, "cannot encode a word: the WordPiece vocab has no unknown token");
    return tok_ids_push(o, t->special[TOK_SPECIAL_UNK]);
}

/* WordpieceTokenizer on one word word[0..n) of n_chars characters; key is scratch space of
** 16 + n bytes for "prefix + candidate". */
static infer_status wordpiece(const tokenizer *t, const char *word, size_t n, size_t n_chars, char *key, tok_ids *o)
{
    if (n == 0) return INFER_OK;
    if (n_chars > (size_t)t->wp_max_chars) return push_unk(t, o);
    const char *start_pfx = t->wp_phantom ? "\xE2\x96\x81" : "";
    const char *cont_pfx = t->wp_phantom ? "" : t->wp_prefix;
    size_t mark = o->n;
    infer_status st = INFER_OK;
    for (size_t start = 0; start < n && !st;) {
        const char *pfx = start == 0 ? start_pfx : cont_pfx;
        size_t pl = strlen(pfx), end = n;
        if (end - start > t->max_len) end = start + t->max_len;
        memcpy(key, pfx, pl);
        int32_t id = -1;
        for (; end > start; end--) {
            if (end < n && (word[end] & 0xC0) == 0x80) continue; /* not a character boundary */
            memcpy(key + pl, word + start, end - start);
            if ((id = tok_lookup(t, key, pl + end - start)) >= 0) break;
        }
        if (id < 0) { /* no piece fits: the whole word is unknown */
            o->n = mark;
            return push_unk(t, o);
        }
        st = tok_ids_push(o, id);
        start = end;
    }
    return st;
}

infer_status tok_wordpiece_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, tok_ids *o)
{
    /* Layout of the scratch buffer: the current word, then the lookup key. A character of
    ** 1..4 bytes becomes at most 3 (BMP lowercase) or stays 4 bytes. */
    size_t cap = 2 * n + 40;
    infer_status st = tok_work_buf(w, 2 * cap);
    if (st) return st;
    char *word = w->buf, *key = w->buf + cap;
    size_t wn = 0, wc = 0;
    for (size_t i = 0; i < n && !st;) {
        uint32_t cp = 0;
        i += unicode_utf8_decode(s + i, n - i, &cp);
        unicode_gc gc = unicode_category(cp);
        int ws = cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || gc == UNICODE_GC_ZS;
        if (!ws && (cp == 0 || cp == 0xFFFD || UNICODE_IS_ESCAPED_BYTE(cp) || gc == UNICODE_GC_CC ||
                    gc == UNICODE_GC_CF))
            continue; /* BERT _clean_text: removed without breaking the word */
        if (t->wp_lower) cp = wp_tolower(cp);
        if (t->wp_strip_accents) {
            if (unicode_category(cp) == UNICODE_GC_MN) continue;
            cp = wp_base(cp);
        }
        int alone = !ws && ((t->wp_cjk && is_cjk(cp)) || is_punct(cp));
        if (ws || alone) {
            st = wordpiece(t, word, wn, wc, key, o);
            wn = wc = 0;
        }
        if (ws || st) continue;
        wn += put_utf8(word + wn, cp);
        wc++;
        if (alone) {
            st = wordpiece(t, word, wn, wc, key, o);
            wn = wc = 0;
        }
    }
    if (!st) st = wordpiece(t, word, wn, wc, key, o);
    return st;
}

/* ---------------------------------------------------------------------- setup */

static const char *const SPECIAL_TEXT[TOK_SPECIAL_COUNT] = {
    [TOK_SPECIAL_UNK] = "[UNK]", [TOK_SPECIAL_CLS] = "[CLS]", [TOK_SPECIAL_SEP] = "[SEP]",
    [TOK_SPECIAL_PAD] = "[PAD]", [TOK_SPECIAL_MASK] = "[MASK]",
};

infer_status tok_wordpiece_setup(tokenizer *t, int phantom)
{
    t->wp_phantom = phantom;
    if (phantom) { /* GGUF: llama.cpp always lowercases; BERT GGUFs are uncased models */
        t->wp_lower = t->wp_strip_accents = t->wp_cjk = 1;
        t->wp_max_chars = 100;
        for (int r = 0; r < TOK_SPECIAL_COUNT; r++)
            if (SPECIAL_TEXT[r] && t->special[r] < 0)
                t->special[r] = tok_lookup(t, SPECIAL_TEXT[r], strlen(SPECIAL_TEXT[r]));
    }
    if (t->special[TOK_SPECIAL_BOS] < 0) t->special[TOK_SPECIAL_BOS] = t->special[TOK_SPECIAL_CLS];
    if (t->special[TOK_SPECIAL_EOS] < 0) t->special[TOK_SPECIAL_EOS] = t->special[TOK_SPECIAL_SEP];
    for (int r = 0; r < TOK_SPECIAL_COUNT; r++) {
        int32_t id = t->special[r];
        if (id >= 0 && t->type[id] == TOK_TYPE_NORMAL)
            t->type[id] = r == TOK_SPECIAL_UNK ? TOK_TYPE_UNKNOWN : TOK_TYPE_CONTROL;
    }
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) total += t->len[i] + 2;
    t->dec = malloc(total);
    t->dec_off = malloc((size_t)t->n_vocab * sizeof *t->dec_off);
    t->dec_len = malloc((size_t)t->n_vocab * sizeof *t->dec_len);
    if (!t->dec || !t->dec_off || !t->dec_len)
        return infer_err(INFER_ENOMEM, "out of memory for the pieces of %d tokens", t->n_vocab);
    size_t o = 0, pl = strlen(t->wp_prefix);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = t->blob + t->off[i];
        size_t n = t->len[i];
        uint8_t ty = t->type[i];
        t->dec_off[i] = (uint32_t)o;
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED) {
            /* as stored */
        } else if (phantom && n >= 3 && memcmp(s, "\xE2\x96\x81", 3) == 0) {
            t->dec[o++] = ' '; /* word start "▁un" -> " un" */
            s += 3;
            n -= 3;
        } else if (!phantom && pl > 0 && n >= pl && memcmp(s, t->wp_prefix, pl) == 0) {
            s += pl; /* continuation "##aff" -> "aff" */
            n -= pl;
        } else if (!phantom) {
            t->dec[o++] = ' ';
        }
        memcpy(t->dec + o, s, n);
        o += n;
        t->dec_len[i] = (uint32_t)(o - t->dec_off[i]);
        t->dec[o++] = 0;
    }
    return INFER_OK;
}

void tok_wordpiece_opts_init(tok_wordpiece_opts *o)
{
    memset(o, 0, sizeof *o);
    o->lowercase = 1;
    o->strip_accents = -1;
    o->split_cjk = 1;
    o->max_word_chars = 100;
    o->prefix = "##";
    o->unk = "[UNK]";
    o->cls = "[CLS]";
    o->sep = "[SEP]";
    o->pad = "[PAD]";
    o->mask = "[MASK]";
}

static infer_status find_special(tokenizer *t, tok_special role, const char *text, const char *what)
{
    if (!text) return INFER_OK;
    t->special[role] = tok_lookup(t, text, strlen(text));
    if (t->special[role] < 0 && role == TOK_SPECIAL_UNK)
        return infer_err(INFER_EINVAL, "WordPiece vocab: the %s token '%s' is not in the vocab", what, text);
    return INFER_OK;
}

infer_status tok_load_wordpiece(const char *const *vocab, int32_t n_vocab, const tok_wordpiece_opts *o,
                                tokenizer **out)
{
    if (!out) return infer_err(INFER_EINVAL, "tok_load_wordpiece: out is NULL");
    *out = NULL;
    tok_wordpiece_opts def;
    if (!o) {
        tok_wordpiece_opts_init(&def);
        o = &def;
    }
    if (!vocab || n_vocab < 1 || n_vocab > (1 << 24))
        return infer_err(INFER_EINVAL, "tok_load_wordpiece: need 1..%d vocab entries, got %d", 1 << 24, n_vocab);
    if (!o->unk) return infer_err(INFER_EINVAL, "tok_load_wordpiece: WordPiece needs an unknown token");
    const char *prefix = o->prefix ? o->prefix : "##";
    if (strlen(prefix) >= sizeof ((tokenizer *)0)->wp_prefix)
        return infer_err(INFER_EINVAL, "tok_load_wordpiece: continuation prefix '%s' is too long", prefix);
    size_t blob = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (!vocab[i]) return infer_err(INFER_EINVAL, "tok_load_wordpiece: vocab entry %d is NULL", i);
        blob += strlen(vocab[i]) + 1;
        if (blob > ((size_t)1 << 30)) return infer_err(INFER_EINVAL, "tok_load_wordpiece: vocab text over 1 GiB");
    }
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return infer_err(INFER_ENOMEM, "out of memory for a tokenizer");
    t->family = TOK_FAMILY_WORDPIECE;
    infer_status st = tok_alloc_vocab(t, n_vocab, blob, 0);
    size_t off = 0;
    for (int32_t i = 0; i < n_vocab && !st; i++) {
        size_t n = strlen(vocab[i]);
        memcpy(t->blob + off, vocab[i], n + 1);
        t->off[i] = (uint32_t)off;
        t->len[i] = (uint32_t)n;
        off += n + 1;
    }
    if (!st) st = tok_index_vocab(t, 1); /* HF's vocab dict: a later duplicate wins */
    if (!st) st = find_special(t, TOK_SPECIAL_UNK, o->unk, "unknown");
    if (!st) st = find_special(t, TOK_SPECIAL_CLS, o->cls, "cls");
    if (!st) st = find_special(t, TOK_SPECIAL_SEP, o->sep, "sep");
    if (!st) st = find_special(t, TOK_SPECIAL_PAD, o->pad, "pad");
    if (!st) st = find_special(t, TOK_SPECIAL_MASK, o->mask, "mask");
    if (!st) {
        memcpy(t->wp_prefix, prefix, strlen(prefix) + 1);
        t->wp_lower = o->lowercase != 0;
        t->wp_strip_accents = o->strip_accents < 0 ? t->wp_lower : o->strip_accents != 0;
        t->wp_cjk = o->split_cjk != 0;
        t->wp_max_chars = o->max_word_chars > 0 ? o->max_word_chars : 100;
        t->add_bos = t->add_eos = 1;
        st = tok_wordpiece_setup(t, 0);
    }
    if (!st) st = tok_index_specials(t);
    if (st) {
        tok_free(t);
        return st;
    }
    *out = t;
    return INFER_OK;
}

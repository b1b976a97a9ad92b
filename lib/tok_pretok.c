/*
** tok_pretok.c — byte-level BPE pre-tokenizers, hand-written (no regex engine).
**
** What: split text into the pieces BPE merges inside of, exactly as these regexes do (patterns
** from llama.cpp src/llama-vocab.cpp; GPT-2 is also HF tokenizers' ByteLevel default):
**   GPT-2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
**   Llama 3  (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+
**            |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
**   Qwen2    the Llama 3 pattern with \p{N} in place of \p{N}{1,3}
**   SmolLM   \p{N}, then GPT-2            (also StarCoder, Refact, Command-R, CodeShell, EXAONE)
**   Falcon   [\p{P}\$\+<=>\^~\|`]+, then GPT-2, then [0-9][0-9][0-9]
**   default  [\p{P}\$\+<=>\^~\|]+, then GPT-2, then \p{N}+, then [0-9][0-9][0-9]
** A list of regexes is applied as llama.cpp's unicode_regex_split() does: the first splits the
** text into its matches and the unmatched gaps between them, each later one splits every piece
** of the previous stage the same way, never looking across a piece boundary. Here the stages
** are chained (each piece a stage produces goes straight into the next), so no intermediate
** list is built.
**
** Why hand-written: linear time with no allocation, no regex library, and exact Unicode
** categories (lib/unicode_data.c). The GPT-2 and Llama 3 stages follow the structure of
** llama.cpp's custom splitters (unicode_regex_split_custom_gpt2/_llama3); the alternation is
** first-match, so each position tries the alternatives in pattern order. The lookahead in
** \s+(?!\S) means: a whitespace run followed by a non-space gives up its last character, which
** then starts the next piece (" word", or a lone "\t" before a word). llama.cpp runs Qwen2 and
** the single-class stages through std::regex on category-collapsed text, i.e. plain regex
** semantics. tests/gen_pretok_ref.py checks our expectations against the Python `regex` module
** and a Python port of llama.cpp's custom splitters; no disagreement was found between them.
**
** Characters are decoded on the fly (unicode_utf8_decode): an invalid byte is one character of
** class [^\s\p{L}\p{N}], kept as is (llama.cpp would substitute U+FFFD, same class).
*/
#include "tok_pretok.h"

#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#define PT_END 0xFFFFFFFFu /* "code point" past the end of a piece (llama.cpp's OUT_OF_RANGE) */
#define PT_LNW (UNI_LETTER | UNI_NUMBER | UNI_WHITESPACE)

typedef struct pt_run pt_run;
/* A stage splits text[beg..end) and passes each piece on with pt_emit(r, stage, ...). */
typedef infer_status (*pt_stage_fn)(pt_run *r, int stage, size_t beg, size_t end);

struct pt_run {
    const char *text;
    const pt_stage_fn *stages;
    int n_stages;
    pretok_span **spans;
    size_t *n, *cap;
};

/* One decoded character: code point (PT_END past the piece), UNI_* flags (0 past the piece,
** never 0 inside it), and the byte offset of the character after it. */
typedef struct pt_ch {
    uint32_t cp, fl;
    size_t next;
} pt_ch;

static pt_ch pt_at(const char *t, size_t i, size_t end)
{
    pt_ch c = {PT_END, 0, i};
    if (i < end) {
        c.next = i + unicode_utf8_decode(t + i, end - i, &c.cp);
        c.fl = unicode_flags(c.cp);
    }
    return c;
}

/* [^\s\p{L}\p{N}]: any character (inside the piece) that is no letter, number or space. */
static int pt_is_other(uint32_t fl)
{
    return fl != 0 && !(fl & PT_LNW);
}

static infer_status pt_push(pt_run *r, size_t beg, size_t end)
{
    if (*r->n == *r->cap) {
        size_t cap = *r->cap ? *r->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(pretok_span))
            return infer_err(INFER_ENOMEM, "pre-tokenizer: too many pieces");
        pretok_span *p = realloc(*r->spans, cap * sizeof *p);
        if (!p) return infer_err(INFER_ENOMEM, "pre-tokenizer: out of memory for %zu pieces", cap);
        *r->spans = p;
        *r->cap = cap;
    }
    (*r->spans)[(*r->n)++] = (pretok_span){(uint32_t)beg, (uint32_t)(end - beg)};
    return INFER_OK;
}

/* Hand a piece to the next stage, or record it after the last one. Empty pieces vanish. */
static infer_status pt_emit(pt_run *r, int stage, size_t beg, size_t end)
{
    if (beg >= end) return INFER_OK;
    if (stage + 1 < r->n_stages) return r->stages[stage + 1](r, stage + 1, beg, end);
    return pt_push(r, beg, end);
}

/* End of the run from i of characters whose flags meet `mask` (want = 1) or miss it (want = 0). */
static size_t pt_skip(const char *t, size_t i, size_t end, uint32_t mask, int want)
{
    while (i < end) {
        pt_ch c = pt_at(t, i, end);
        if (((c.fl & mask) != 0) != want) break;
        i = c.next;
    }
    return i;
}

static unsigned pt_lower(unsigned b)
{
    return (b >= 'A' && b <= 'Z') ? b + ('a' - 'A') : b;
}

/* Byte length of 's 't 're 've 'm 'll 'd at the apostrophe t[i], or 0. `fold`: ASCII case-
** insensitive, Llama 3's '[sS]... (llama.cpp lowercases with full Unicode tables there, but no
** other code point lowercases to one of these letters, so ASCII folding is the same thing).
** Note: HF tokenizer.json spells it (?i:'s|...), and a case-folding engine also matches U+017F
** LONG S there ("'ſt" -> "'ſ" "t"); llama.cpp's '[sS] form does not ("'ſt" is one letter
** piece). We follow llama.cpp; tests/test_pretok.c test_examples pins it. */
static size_t pt_contraction(const char *t, size_t i, size_t end, int fold)
{
    if (i + 1 >= end) return 0;
    unsigned a = (unsigned char)t[i + 1], b = i + 2 < end ? (unsigned char)t[i + 2] : 0;
    if (fold) a = pt_lower(a), b = pt_lower(b);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* End of the whitespace alternatives at i (t[i] is whitespace), tried in pattern order:
**   \s*[\r\n]+  (only if nl): through the run's last \r or \n;
**   \s+(?!\S)   a run followed by a non-space (inside the piece) gives up its last character;
**   \s+         the whole run (at the piece's end, or a single space before a non-space). */
static size_t pt_space(const char *t, size_t i, size_t end, int nl)
{
    size_t p = i, last = i, nl_end = 0, count = 0;
    for (;;) {
        pt_ch c = pt_at(t, p, end);
        if (!(c.fl & UNI_WHITESPACE)) break;
        if (nl && (c.cp == '\r' || c.cp == '\n')) nl_end = c.next;
        last = p;
        p = c.next;
        count++;
    }
    if (nl_end) return nl_end;
    if (count > 1 && p < end) return last;
    if (count == 0) return pt_at(t, i, end).next; /* not whitespace: one character (unreachable) */
    return p;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static infer_status pt_gpt2(pt_run *r, int stage, size_t beg, size_t end)
{
    const char *t = r->text;
    size_t pos = beg;
    while (pos < end) {
        pt_ch c = pt_at(t, pos, end);
        size_t stop = c.cp == '\'' ? pt_contraction(t, pos, end, 0) : 0;
        if (stop) {
            stop += pos;
        } else {
            /* " ?X+": the class is that of the character after an optional leading space */
            pt_ch h = c.cp == ' ' ? pt_at(t, c.next, end) : c;
            size_t body = c.cp == ' ' ? c.next : pos;
            if (h.fl & UNI_LETTER)
                stop = pt_skip(t, body, end, UNI_LETTER, 1);
            else if (h.fl & UNI_NUMBER)
                stop = pt_skip(t, body, end, UNI_NUMBER, 1);
            else if (pt_is_other(h.fl))
                stop = pt_skip(t, body, end, PT_LNW, 0);
            else
                stop = pt_space(t, pos, end, 0);
        }
        infer_status st = pt_emit(r, stage, pos, stop);
        if (st != INFER_OK) return st;
        pos = stop;
    }
    return INFER_OK;
}

/* Llama 3 (max_digits 3) and Qwen2 (max_digits 1):
** (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}
** | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static infer_status pt_llama3_like(pt_run *r, int stage, size_t beg, size_t end, unsigned max_digits)
{
    const char *t = r->text;
    size_t pos = beg;
    while (pos < end) {
        pt_ch c = pt_at(t, pos, end);
        size_t stop = c.cp == '\'' ? pt_contraction(t, pos, end, 1) : 0;
        if (stop) {
            stop += pos;
        } else if (!(c.cp == '\r' || c.cp == '\n' || (c.fl & UNI_NUMBER)) &&
                   ((c.fl & UNI_LETTER) || (pt_at(t, c.next, end).fl & UNI_LETTER))) {
            /* [^\r\n\p{L}\p{N}]?\p{L}+ : c is the letter or the one-character prefix */
            stop = pt_skip(t, c.next, end, UNI_LETTER, 1);
        } else if (c.fl & UNI_NUMBER) {
            stop = c.next;
            for (unsigned k = 1; k < max_digits; k++) {
                pt_ch d = pt_at(t, stop, end);
                if (!(d.fl & UNI_NUMBER)) break;
                stop = d.next;
            }
        } else {
            pt_ch h = c.cp == ' ' ? pt_at(t, c.next, end) : c;
            if (pt_is_other(h.fl)) { /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
                stop = pt_skip(t, c.cp == ' ' ? c.next : pos, end, PT_LNW, 0);
                while (stop < end && (t[stop] == '\r' || t[stop] == '\n')) stop++;
            } else {
                stop = pt_space(t, pos, end, 1);
            }
        }
        infer_status st = pt_emit(r, stage, pos, stop);
        if (st != INFER_OK) return st;
        pos = stop;
    }
    return INFER_OK;
}

static infer_status pt_llama3(pt_run *r, int stage, size_t beg, size_t end)
{
    return pt_llama3_like(r, stage, beg, end, 3);
}

static infer_status pt_qwen2(pt_run *r, int stage, size_t beg, size_t end)
{
    return pt_llama3_like(r, stage, beg, end, 1);
}

/* One-class stages: matches of a character class (each character alone, or maximal runs)
** and the unmatched gaps between them all become pieces. */
typedef int (*pt_pred)(uint32_t cp, uint32_t fl);

static infer_status pt_isolate(pt_run *r, int stage, size_t beg, size_t end, pt_pred pred,
                               int runs)
{
    const char *t = r->text;
    size_t gap = beg, pos = beg;
    while (pos < end) {
        pt_ch c = pt_at(t, pos, end);
        if (!pred(c.cp, c.fl)) {
            pos = c.next;
            continue;
        }
        size_t stop = c.next;
        while (runs && stop < end) {
            pt_ch d = pt_at(t, stop, end);
            if (!pred(d.cp, d.fl)) break;
            stop = d.next;
        }
        infer_status st = pt_emit(r, stage, gap, pos);
        if (st == INFER_OK) st = pt_emit(r, stage, pos, stop);
        if (st != INFER_OK) return st;
        gap = pos = stop;
    }
    return pt_emit(r, stage, gap, end);
}

static int pt_pred_number(uint32_t cp, uint32_t fl)
{
    (void)cp;
    return (fl & UNI_NUMBER) != 0;
}

/* [\p{P}\$\+<=>\^~\|] and Falcon's [\p{P}\$\+<=>\^~\|`] */
static int pt_pred_punct(uint32_t cp, uint32_t fl)
{
    return (fl & UNI_PUNCT) || (cp < 128 && cp && strchr("$+<=>^~|", (int)cp));
}

static int pt_pred_punct_bq(uint32_t cp, uint32_t fl)
{
    return pt_pred_punct(cp, fl) || cp == '`';
}

static infer_status pt_digit_each(pt_run *r, int stage, size_t beg, size_t end) /* \p{N} */
{
    return pt_isolate(r, stage, beg, end, pt_pred_number, 0);
}

static infer_status pt_number_runs(pt_run *r, int stage, size_t beg, size_t end) /* \p{N}+ */
{
    return pt_isolate(r, stage, beg, end, pt_pred_number, 1);
}

static infer_status pt_punct_runs(pt_run *r, int stage, size_t beg, size_t end)
{
    return pt_isolate(r, stage, beg, end, pt_pred_punct, 1);
}

static infer_status pt_punct_runs_bq(pt_run *r, int stage, size_t beg, size_t end)
{
    return pt_isolate(r, stage, beg, end, pt_pred_punct_bq, 1);
}

/* [0-9][0-9][0-9]: leftmost groups of three ASCII digits; anything else (including a run's
** last one or two digits) joins the gap around it. Bytewise: ASCII never occurs inside a
** multi-byte character. */
static infer_status pt_ascii3(pt_run *r, int stage, size_t beg, size_t end)
{
    const char *t = r->text;
    size_t gap = beg, pos = beg;
#define PT_DIG(i) (t[(i)] >= '0' && t[(i)] <= '9')
    while (pos + 3 <= end) {
        if (PT_DIG(pos) && PT_DIG(pos + 1) && PT_DIG(pos + 2)) {
            infer_status st = pt_emit(r, stage, gap, pos);
            if (st == INFER_OK) st = pt_emit(r, stage, pos, pos + 3);
            if (st != INFER_OK) return st;
            gap = pos = pos + 3;
        } else {
            pos++;
        }
    }
#undef PT_DIG
    return pt_emit(r, stage, gap, end);
}

static const pt_stage_fn pt_st_gpt2[] = {pt_gpt2};
static const pt_stage_fn pt_st_llama3[] = {pt_llama3};
static const pt_stage_fn pt_st_qwen2[] = {pt_qwen2};
static const pt_stage_fn pt_st_smollm[] = {pt_digit_each, pt_gpt2};
static const pt_stage_fn pt_st_falcon[] = {pt_punct_runs_bq, pt_gpt2, pt_ascii3};
static const pt_stage_fn pt_st_default[] = {pt_punct_runs, pt_gpt2, pt_number_runs, pt_ascii3};

static const struct {
    const char *name;
    const pt_stage_fn *stages;
    int n_stages;
} pt_kinds[PRETOK_COUNT] = {
    [PRETOK_GPT2] = {"gpt2", pt_st_gpt2, 1},
    [PRETOK_LLAMA3] = {"llama3", pt_st_llama3, 1},
    [PRETOK_QWEN2] = {"qwen2", pt_st_qwen2, 1},
    [PRETOK_SMOLLM] = {"smollm", pt_st_smollm, 2},
    [PRETOK_FALCON] = {"falcon", pt_st_falcon, 3},
    [PRETOK_DEFAULT] = {"default", pt_st_default, 4},
};

/* tokenizer.ggml.pre values -> kind, after llama.cpp's llama_vocab::impl::load (the names
** whose llama.cpp pre-type uses one of the regex lists above). */
static const struct {
    const char *name;
    pretok_kind kind;
} pt_names[] = {
    {"default", PRETOK_DEFAULT},
    {"gpt-2", PRETOK_GPT2}, {"phi-2", PRETOK_GPT2}, {"mpt", PRETOK_GPT2}, {"olmo", PRETOK_GPT2},
    {"jais", PRETOK_GPT2}, {"jina-es", PRETOK_GPT2}, {"jina-de", PRETOK_GPT2},
    {"jina-v2-es", PRETOK_GPT2}, {"jina-v2-de", PRETOK_GPT2}, {"jina-v1-en", PRETOK_GPT2},
    {"jina-v2-code", PRETOK_GPT2}, {"roberta-bpe", PRETOK_GPT2}, {"gigachat", PRETOK_GPT2},
    {"a.x-4.0", PRETOK_GPT2}, {"mellum", PRETOK_GPT2}, {"modern-bert", PRETOK_GPT2},
    {"exaone4", PRETOK_GPT2},
    {"llama3", PRETOK_LLAMA3}, {"llama-v3", PRETOK_LLAMA3}, {"llama-bpe", PRETOK_LLAMA3},
    {"falcon3", PRETOK_LLAMA3}, {"falcon-h1", PRETOK_LLAMA3}, {"pixtral", PRETOK_LLAMA3},
    {"midm-2.0", PRETOK_LLAMA3}, {"lfm2", PRETOK_LLAMA3}, {"dbrx", PRETOK_LLAMA3},
    {"smaug-bpe", PRETOK_LLAMA3}, {"chatglm-bpe", PRETOK_LLAMA3}, {"glm4", PRETOK_LLAMA3},
    {"qwen2", PRETOK_QWEN2}, {"deepseek-r1-qwen", PRETOK_QWEN2}, {"stablelm2", PRETOK_QWEN2},
    {"megrez", PRETOK_QWEN2}, {"kormo", PRETOK_QWEN2}, {"f2llmv2", PRETOK_QWEN2},
    {"smollm", PRETOK_SMOLLM}, {"starcoder", PRETOK_SMOLLM}, {"refact", PRETOK_SMOLLM},
    {"command-r", PRETOK_SMOLLM}, {"codeshell", PRETOK_SMOLLM}, {"exaone", PRETOK_SMOLLM},
    {"minerva-7b", PRETOK_SMOLLM},
    {"falcon", PRETOK_FALCON},
};

infer_status pretok_from_name(const char *gguf_pre_name, pretok_kind *out)
{
    if (!out) return infer_err(INFER_EINVAL, "pretok_from_name: NULL output");
    if (!gguf_pre_name || !*gguf_pre_name) {
        *out = PRETOK_DEFAULT;
        return INFER_OK;
    }
    for (size_t i = 0; i < sizeof pt_names / sizeof pt_names[0]; i++) {
        if (strcmp(pt_names[i].name, gguf_pre_name) == 0) {
            *out = pt_names[i].kind;
            return INFER_OK;
        }
    }
    return infer_err(INFER_EUNSUPPORTED, "unsupported pre-tokenizer '%.64s' (tokenizer.ggml.pre)",
                     gguf_pre_name);
}

const char *pretok_kind_name(pretok_kind k)
{
    return ((unsigned)k < PRETOK_COUNT) ? pt_kinds[k].name : "?";
}

infer_status pretok_split(pretok_kind k, const char *text, size_t len, pretok_span **spans,
                          size_t *n_spans, size_t *cap)
{
    if (!spans || !n_spans || !cap) return infer_err(INFER_EINVAL, "pretok_split: NULL output");
    *n_spans = 0;
    if ((unsigned)k >= PRETOK_COUNT) return infer_err(INFER_EINVAL, "pretok_split: bad kind %d", (int)k);
    if (!text && len) return infer_err(INFER_EINVAL, "pretok_split: NULL text");
    if (len > UINT32_MAX)
        return infer_err(INFER_EINVAL, "pretok_split: text of %zu bytes exceeds the limit of %u",
                         len, (unsigned)UINT32_MAX);
    if (len == 0) return INFER_OK;
    pt_run r = {text, pt_kinds[k].stages, pt_kinds[k].n_stages, spans, n_spans, cap};
    infer_status st = r.stages[0](&r, 0, 0, len);
    if (st != INFER_OK) *n_spans = 0;
    return st;
}

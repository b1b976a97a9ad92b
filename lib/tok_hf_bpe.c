/*
** tok_hf_bpe.c — the BPE parts of a Hugging Face tokenizer.json: which pre-tokenization it
** uses, its merges, and for byte-level BPE the byte maps and decoded pieces.
**
** Two kinds of "BPE" model are found in tokenizer.json files (HF tokenizers' serialization):
**  - byte-level (GPT-2, Llama 3, Qwen2, SmolLM): pre_tokenizer ByteLevel, alone (GPT-2's split
**    regex built in) or after a Split whose regex we recognise by its exact text (the patterns
**    of tok_pretok.h) or after Digits(individual_digits) (SmolLM). Encoding is tok_bpe.c's:
**    merges by rank over GPT-2's bytes_to_unicode symbols;
**  - SentencePiece converted (Llama 2, Mistral; transformers' LlamaConverter): byte_fallback,
**    and spaces turned into "▁" either by the normalizer (Prepend "▁" + Replace " " -> "▁") or
**    by a Metaspace pre-tokenizer without splitting. HF applies the merges by rank; the
**    converter lists, for each piece in descending score order, every split of it into two
**    pieces, so ranks follow the SentencePiece scores. We give each piece the score
**    -(rank of the first merge producing it) and run tok_spm.c's score-driven merge loop, which
**    merges the same pairs in the same order. Known difference: a pair whose concatenation is
**    a piece produced by no merge still merges here (last), as in SentencePiece itself, where
**    HF would leave it; converted vocabs have no such pairs.
** merges entries are "a b" strings (exactly one space) or ["a", "b"] pairs (tokenizers >= 0.20);
** a, b and a+b must all be in the vocab (HF refuses such a file too).
*/
#include "hf.h"
#include "tok_pretok.h"

#include <stdlib.h>
#include <string.h>

#define TOK_HF_MAX_MERGES (1 << 24)
#define SPACE_MARK "\xE2\x96\x81" /* U+2581 */

/* The JSON type name of a pre_tokenizer / normalizer object, or "" */
static const char *jtype_name(const cJSON *o)
{
    const cJSON *t = hf_get(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static int is_type(const cJSON *o, const char *type)
{
    return strcmp(jtype_name(o), type) == 0;
}

/* ---------------------------------------------------------------------- which kind */

/* Replace(" " -> "▁"), with or without Prepend("▁") (in either order: same result), alone or in
** a Sequence. */
static int spm_normalizer(const cJSON *n, int *prefix)
{
    const cJSON *items = is_type(n, "Sequence") ? hf_get(n, "normalizers") : NULL;
    int replace = 0, prepend = 0, other = 0;
    const cJSON *one = n;
    for (const cJSON *x = items ? items->child : one; x; x = items ? x->next : NULL) {
        const cJSON *pat = hf_get(hf_get(x, "pattern"), "String"), *content = hf_get(x, "content");
        const cJSON *pre = hf_get(x, "prepend");
        if (is_type(x, "Replace") && cJSON_IsString(pat) && strcmp(pat->valuestring, " ") == 0 &&
            cJSON_IsString(content) && strcmp(content->valuestring, SPACE_MARK) == 0)
            replace = 1;
        else if (is_type(x, "Prepend") && cJSON_IsString(pre) && strcmp(pre->valuestring, SPACE_MARK) == 0)
            prepend = 1;
        else
            other = 1;
    }
    *prefix = prepend;
    return replace && !other;
}

infer_status tok_hf_spm_style(const hf_tok_ctx *c, int *spm, int *prefix)
{
    const cJSON *norm = hf_get(c->root, "normalizer"), *pre = hf_get(c->root, "pre_tokenizer");
    *spm = 0;
    *prefix = 0;
    int byte_level = is_type(pre, "ByteLevel");
    const cJSON *seq = is_type(pre, "Sequence") ? hf_get(pre, "pretokenizers") : NULL;
    for (const cJSON *x = cJSON_IsArray(seq) ? seq->child : NULL; x; x = x->next) byte_level |= is_type(x, "ByteLevel");
    if (byte_level) {
        /* NFC is accepted as a no-op: text is expected in NFC already (llama.cpp does the same). */
        if (norm && !is_type(norm, "NFC"))
            return infer_err(INFER_EUNSUPPORTED, "'%s': normalizer '%.40s' is not supported with a ByteLevel "
                             "pre-tokenizer", c->file, jtype_name(norm));
        return INFER_OK;
    }
    if (!pre && norm && spm_normalizer(norm, prefix)) {
        *spm = 1;
        return INFER_OK;
    }
    if (is_type(pre, "Metaspace") && !norm) {
        const cJSON *rep = hf_get(pre, "replacement"), *split = hf_get(pre, "split");
        const cJSON *scheme = hf_get(pre, "prepend_scheme"), *aps = hf_get(pre, "add_prefix_space");
        if (!cJSON_IsString(rep) || strcmp(rep->valuestring, SPACE_MARK) != 0)
            return infer_err(INFER_EUNSUPPORTED, "'%s': pre_tokenizer.replacement must be \"\xE2\x96\x81\"", c->file);
        if (!split || cJSON_IsTrue(split))
            return infer_err(INFER_EUNSUPPORTED, "'%s': pre_tokenizer Metaspace with split = true (words split at "
                             "every \xE2\x96\x81) is not supported", c->file);
        /* "first" adds the prefix only at the very start; we also add it after special
        ** tokens, as "always" and llama.cpp do. */
        *prefix = cJSON_IsString(scheme) ? strcmp(scheme->valuestring, "never") != 0 : !aps || cJSON_IsTrue(aps);
        *spm = 1;
        return INFER_OK;
    }
    return infer_err(INFER_EUNSUPPORTED, "'%s': BPE with pre_tokenizer '%.40s' and normalizer '%.40s' is not "
                     "supported (ByteLevel, or SentencePiece-style Metaspace / Prepend+Replace \xE2\x96\x81)",
                     c->file, pre ? jtype_name(pre) : "null", norm ? jtype_name(norm) : "null");
}

/* Split regexes of HF tokenizer.json files, and the pretok kinds that implement them. */
static const struct {
    const char *regex;
    pretok_kind kind;
} KNOWN_SPLITS[] = {
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", PRETOK_GPT2},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", PRETOK_LLAMA3},
    {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?"
     "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", PRETOK_LLAMA3},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", PRETOK_QWEN2},
};

static infer_status byte_level_opts(const hf_tok_ctx *c, const cJSON *bl, int want_regex)
{
    const cJSON *aps = hf_get(bl, "add_prefix_space"), *re = hf_get(bl, "use_regex");
    if (cJSON_IsTrue(aps))
        return infer_err(INFER_EUNSUPPORTED, "'%s': pre_tokenizer ByteLevel with add_prefix_space = true is not "
                         "supported", c->file);
    int regex = re ? cJSON_IsTrue(re) : 1;
    if (regex != want_regex)
        return infer_err(INFER_EUNSUPPORTED, "'%s': pre_tokenizer ByteLevel use_regex = %s is not supported here",
                         c->file, regex ? "true" : "false");
    return INFER_OK;
}

static infer_status pick_pretok(const hf_tok_ctx *c, pretok_kind *kind)
{
    const cJSON *pre = hf_get(c->root, "pre_tokenizer");
    if (is_type(pre, "ByteLevel")) {
        *kind = PRETOK_GPT2;
        return byte_level_opts(c, pre, 1);
    }
    const cJSON *seq = hf_get(pre, "pretokenizers");
    const cJSON *a = cJSON_IsArray(seq) && cJSON_GetArraySize(seq) == 2 ? seq->child : NULL;
    const cJSON *b = a ? a->next : NULL;
    if (a && is_type(a, "Digits") && cJSON_IsTrue(hf_get(a, "individual_digits")) && is_type(b, "ByteLevel")) {
        *kind = PRETOK_SMOLLM;
        return byte_level_opts(c, b, 1);
    }
    if (a && is_type(a, "Split") && is_type(b, "ByteLevel")) {
        const cJSON *re = hf_get(hf_get(a, "pattern"), "Regex"), *beh = hf_get(a, "behavior");
        const cJSON *inv = hf_get(a, "invert");
        if (!cJSON_IsString(re) || !cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 ||
            cJSON_IsTrue(inv))
            return infer_err(INFER_EUNSUPPORTED, "'%s': pre_tokenizer Split must have a Regex pattern, behavior "
                             "Isolated and invert false", c->file);
        for (size_t i = 0; i < sizeof KNOWN_SPLITS / sizeof *KNOWN_SPLITS; i++)
            if (strcmp(re->valuestring, KNOWN_SPLITS[i].regex) == 0) {
                *kind = KNOWN_SPLITS[i].kind;
                return byte_level_opts(c, b, 0);
            }
        return infer_err(INFER_EUNSUPPORTED, "'%s': pre_tokenizer Split regex '%.160s' is not one we implement "
                         "(GPT-2, Llama 3, Qwen2)", c->file, re->valuestring);
    }
    return infer_err(INFER_EUNSUPPORTED, "'%s': this ByteLevel pre_tokenizer sequence is not supported (ByteLevel; "
                     "Split + ByteLevel; Digits + ByteLevel)", c->file);
}

/* ---------------------------------------------------------------------- merges */

typedef struct hf_merge {
    const char *a, *b;
    size_t na, nb;
} hf_merge;

/* Merge i of model.merges, checked: a, b and a+b in the vocab. *merged = id of a+b. */
static infer_status get_merge(const tokenizer *t, const hf_tok_ctx *c, const cJSON *e, size_t i, char **buf,
                              size_t *cap, hf_merge *m, int32_t *merged)
{
    if (cJSON_IsString(e)) {
        const char *s = e->valuestring, *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return infer_err(INFER_EFORMAT, "'%s': model.merges[%zu] = '%.60s' is not of the form \"a b\"", c->file, i,
                             s);
        *m = (hf_merge){ s, sp + 1, (size_t)(sp - s), strlen(sp + 1) };
    } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
               cJSON_IsString(e->child->next) && *e->child->valuestring && *e->child->next->valuestring) {
        const char *a = e->child->valuestring, *b = e->child->next->valuestring;
        *m = (hf_merge){ a, b, strlen(a), strlen(b) };
    } else {
        return infer_err(INFER_EFORMAT, "'%s': model.merges[%zu] is neither \"a b\" nor a pair of strings", c->file,
                         i);
    }
    if (tok_lookup(t, m->a, m->na) < 0 || tok_lookup(t, m->b, m->nb) < 0)
        return infer_err(INFER_EFORMAT, "'%s': model.merges[%zu]: '%.60s' is not in model.vocab", c->file, i,
                         tok_lookup(t, m->a, m->na) < 0 ? m->a : m->b);
    if (m->na + m->nb > *cap) {
        size_t nc = 2 * (m->na + m->nb);
        char *p = realloc(*buf, nc);
        if (!p) return infer_err(INFER_ENOMEM, "out of memory reading merges");
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf, m->a, m->na);
    memcpy(*buf + m->na, m->b, m->nb);
    *merged = tok_lookup(t, *buf, m->na + m->nb);
    if (*merged < 0)
        return infer_err(INFER_EFORMAT, "'%s': model.merges[%zu]: the merged token '%.*s%.*s' is not in model.vocab",
                         c->file, i, (int)INFER_MIN(m->na, 60), m->a, (int)INFER_MIN(m->nb, 60), m->b);
    return INFER_OK;
}

static infer_status merges_array(const hf_tok_ctx *c, const cJSON **out)
{
    *out = hf_get(c->model, "merges");
    if (!cJSON_IsArray(*out))
        return infer_err(INFER_EFORMAT, "'%s': model.merges is %s", c->file, *out ? "not an array" : "missing");
    if (cJSON_GetArraySize(*out) > TOK_HF_MAX_MERGES)
        return infer_err(INFER_EFORMAT, "'%s': model.merges has over %d entries", c->file, TOK_HF_MAX_MERGES);
    return INFER_OK;
}

infer_status tok_hf_spm_scores(tokenizer *t, const hf_tok_ctx *c)
{
    const cJSON *arr;
    infer_status st = merges_array(c, &arr);
    if (st) return st;
    for (int32_t i = 0; i < t->n_vocab; i++) t->score[i] = -1e30f; /* produced by no merge */
    char *buf = NULL;
    size_t cap = 0, i = 0;
    for (const cJSON *e = arr->child; e && !st; e = e->next, i++) {
        hf_merge m;
        int32_t id;
        if ((st = get_merge(t, c, e, i, &buf, &cap, &m, &id))) break;
        if (t->score[id] == -1e30f) t->score[id] = -(float)i; /* exact: ranks < 2^24 */
    }
    free(buf);
    return st;
}

/* ---------------------------------------------------------------------- byte-level */

/* The rank table tok_bpe.c's bpe_pair reads: "a b" texts, the split, an open-addressing hash
** over the texts (the first of duplicate merges keeps its rank). */
static infer_status rank_table(tokenizer *t, const hf_tok_ctx *c, const cJSON *arr)
{
    size_t n = (size_t)cJSON_GetArraySize(arr), total = 0, i = 0, cap = 0;
    char *buf = NULL;
    infer_status st = INFER_OK;
    for (const cJSON *e = arr->child; e && !st; e = e->next, i++) {
        hf_merge m;
        int32_t id;
        if (!(st = get_merge(t, c, e, i, &buf, &cap, &m, &id))) total += m.na + m.nb + 2;
        if (total > ((size_t)1 << 30)) st = infer_err(INFER_EFORMAT, "'%s': model.merges holds over 1 GiB", c->file);
    }
    free(buf);
    if (st) return st;
    uint32_t hcap = 16;
    while (hcap < 2 * n) hcap *= 2;
    size_t nn = n ? n : 1;
    t->n_merges = (uint32_t)n;
    t->merge_mask = hcap - 1;
    t->merge_blob = malloc(total ? total : 1);
    t->merge_off = malloc(nn * sizeof *t->merge_off);
    t->merge_len = malloc(nn * sizeof *t->merge_len);
    t->merge_split = malloc(nn * sizeof *t->merge_split);
    t->merge_hash = malloc(hcap * sizeof *t->merge_hash);
    if (!t->merge_blob || !t->merge_off || !t->merge_len || !t->merge_split || !t->merge_hash)
        return infer_err(INFER_ENOMEM, "out of memory for %zu merges", n);
    memset(t->merge_hash, 0xff, hcap * sizeof *t->merge_hash);
    size_t off = 0;
    i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        const char *a, *b;
        if (cJSON_IsString(e)) {
            a = e->valuestring;
            b = strchr(a, ' ') + 1;
        } else {
            a = e->child->valuestring;
            b = e->child->next->valuestring;
        }
        size_t na = cJSON_IsString(e) ? (size_t)(b - 1 - a) : strlen(a), nb = strlen(b);
        char *p = t->merge_blob + off;
        memcpy(p, a, na);
        p[na] = ' ';
        memcpy(p + na + 1, b, nb);
        p[na + 1 + nb] = 0;
        uint32_t len = (uint32_t)(na + 1 + nb);
        t->merge_off[i] = (uint32_t)off;
        t->merge_len[i] = len;
        t->merge_split[i] = (uint32_t)na;
        off += len + 1;
        for (uint32_t h = tok_hash_bytes(p, len, TOK_HASH_SEED) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
            int32_t j = t->merge_hash[h];
            if (j < 0) {
                t->merge_hash[h] = (int32_t)i;
                break;
            }
            if (t->merge_len[j] == len && t->merge_split[j] == na && memcmp(t->merge_blob + t->merge_off[j], p, len) == 0)
                break;
        }
    }
    return INFER_OK;
}

infer_status tok_hf_bpe_setup(tokenizer *t, const hf_tok_ctx *c)
{
    pretok_kind kind = PRETOK_GPT2;
    const cJSON *arr;
    infer_status st = pick_pretok(c, &kind);
    if (st || (st = merges_array(c, &arr))) return st;
    int ignore = 0;
    if ((st = hf_get_bool(c->model, c->file, "model", "ignore_merges", &ignore))) return st;
    t->pretok = (int)kind;
    t->ignore_merges = ignore;
    tok_bpe_byte_maps(t);
    if ((st = rank_table(t, c, arr))) return st;
    return tok_bpe_pieces(t); /* HF's ByteLevel decoder: the same mapping back */
}

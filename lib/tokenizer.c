/*
** tokenizer.c — the front of the tokenizer family: the shared vocab (hash lookup, token
** types, special ids), loading from GGUF metadata (tokenizer.ggml.*), special-token
** matching before BPE, the BOS/EOS/end-of-generation rules, dispatch to the family encoders
** (tok_spm.c, tok_bpe.c, tok_wordpiece.c), tok_piece and streaming decode.
**
** What it matches: llama.cpp src/llama-vocab.cpp — llama_vocab::impl::load (keys, defaults,
** the end-of-generation token set), tokenizer_st_partition (special tokens split out before
** BPE: user-defined ones always, control/unknown ones only when parsing specials), tokenize
** (SentencePiece's dummy-prefix space at the start and after each special token); the merge
** loop both BPE families share is tok_merge_spans in tok_bpe.c. Two deliberate differences: specials are matched
** leftmost-longest in one scan (llama.cpp matches each special, longest first, over the
** whole text — the two differ only for overlapping specials), and every GGUF field is
** validated (llama.cpp warns about and ignores e.g. an out-of-range BOS id).
*/
#include "tokenizer.h"
#include "utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX_VOCAB (1 << 24)          /* 16M tokens: far past any real vocab */
#define TOK_MAX_TEXT ((size_t)1 << 30)  /* bytes of all token texts together */

/* ---------------------------------------------------------------------- small helpers */

size_t tok_utf8_len(unsigned char lead)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

uint32_t tok_hash_bytes(const char *s, size_t n, uint32_t h)
{
    for (size_t i = 0; i < n; i++) { /* FNV-1a: short keys, no state */
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

infer_status tok_ids_push(tok_ids *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) return infer_err(INFER_ENOMEM, "out of memory encoding text (%zu tokens)", cap);
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return INFER_OK;
}

/* ---------------------------------------------------------------------- vocab */

infer_status tok_alloc_vocab(tokenizer *t, int32_t n, size_t blob_bytes, int with_score)
{
    size_t nv = (size_t)n;
    uint32_t hcap = 16;
    while (hcap < 2u * (uint32_t)n) hcap *= 2; /* load factor <= 1/2 */
    t->n_vocab = n;
    t->hash_mask = hcap - 1;
    t->blob = malloc(blob_bytes ? blob_bytes : 1);
    t->off = malloc(nv * sizeof *t->off);
    t->len = malloc(nv * sizeof *t->len);
    t->type = malloc(nv);
    t->hash = malloc(hcap * sizeof *t->hash);
    if (with_score) t->score = calloc(nv, sizeof *t->score);
    if (!t->blob || !t->off || !t->len || !t->type || !t->hash || (with_score && !t->score))
        return infer_err(INFER_ENOMEM, "out of memory for a vocab of %d tokens", n);
    memset(t->type, TOK_TYPE_NORMAL, nv);
    for (int i = 0; i < TOK_SPECIAL_COUNT; i++) t->special[i] = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return INFER_OK;
}

infer_status tok_index_vocab(tokenizer *t, int last_wins)
{
    memset(t->hash, 0xff, ((size_t)t->hash_mask + 1) * sizeof *t->hash);
    t->max_len = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint32_t n = t->len[i];
        const char *s = t->blob + t->off[i];
        if (n == 0) continue; /* an empty token can never be produced by a lookup */
        if (n > t->max_len) t->max_len = n;
        for (uint32_t h = tok_hash_bytes(s, n, TOK_HASH_SEED) & t->hash_mask;; h = (h + 1) & t->hash_mask) {
            int32_t id = t->hash[h];
            if (id < 0) {
                t->hash[h] = i;
                break;
            }
            if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) {
                if (last_wins) t->hash[h] = i;
                break;
            }
        }
    }
    return INFER_OK;
}

int32_t tok_lookup(const tokenizer *t, const char *s, size_t n)
{
    if (!t || n == 0 || n > t->max_len) return -1;
    for (uint32_t h = tok_hash_bytes(s, n, TOK_HASH_SEED) & t->hash_mask;; h = (h + 1) & t->hash_mask) {
        int32_t id = t->hash[h];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) return id;
    }
}

static int is_special_type(uint8_t ty)
{
    return ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED;
}

/* Sort order of the special matcher: first byte, then longest first, then lowest id. */
static int spec_cmp(const tokenizer *t, int32_t a, int32_t b)
{
    unsigned char fa = (unsigned char)t->blob[t->off[a]], fb = (unsigned char)t->blob[t->off[b]];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (t->len[a] != t->len[b]) return t->len[a] > t->len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Insertion sort within each first-byte bucket keeps this reentrant (no qsort context);
** buckets are small (a few hundred specials at most share '<'). */
static void sort_specials(const tokenizer *t, int32_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int32_t x = v[i];
        size_t j = i;
        while (j > 0 && spec_cmp(t, x, v[j - 1]) < 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static void add_end(tokenizer *t, int32_t id)
{
    if (id < 0 || t->n_end >= TOK_MAX_END) return;
    int i = t->n_end;
    for (int k = 0; k < t->n_end; k++)
        if (t->end_ids[k] == id) return;
    while (i > 0 && t->end_ids[i - 1] > id) {
        t->end_ids[i] = t->end_ids[i - 1];
        i--;
    }
    t->end_ids[i] = id;
    t->n_end++;
}

/* Add one more end-of-generation id (Hugging Face generation_config.json eos_token_id). */
infer_status tok_add_end_token(tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return infer_err(INFER_EINVAL, "end token id %d is outside the vocab", id);
    add_end(t, id);
    return INFER_OK;
}

/* llama.cpp's end-of-generation texts (llama_vocab::impl::load), plus <|end_of_text|>. */
static const char *const EOG_TEXTS[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<EOT>", "<|eom_id|>", "<|end_of_text|>"};

infer_status tok_index_specials(tokenizer *t)
{
    if (t->special[TOK_SPECIAL_EOT] < 0) /* llama.cpp auto-detects EOT by text */
        for (size_t k = 0; k < 6 && t->special[TOK_SPECIAL_EOT] < 0; k++)
            t->special[TOK_SPECIAL_EOT] = tok_lookup(t, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
    for (size_t k = 0; k < sizeof EOG_TEXTS / sizeof *EOG_TEXTS; k++) {
        int32_t id = tok_lookup(t, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
        if (id < 0) continue;
        t->type[id] = TOK_TYPE_CONTROL; /* as llama.cpp: "control-looking token ... overridden" */
        add_end(t, id);
    }
    add_end(t, t->special[TOK_SPECIAL_EOS]);
    add_end(t, t->special[TOK_SPECIAL_EOT]);
    add_end(t, t->special[TOK_SPECIAL_EOM]);

    size_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (is_special_type(t->type[i]) && t->len[i] > 0) n++;
    t->spec_ids = malloc((n ? n : 1) * sizeof *t->spec_ids);
    if (!t->spec_ids) return infer_err(INFER_ENOMEM, "out of memory indexing %zu special tokens", n);
    n = 0;
    t->n_user_defined = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (is_special_type(t->type[i]) && t->len[i] > 0) {
            t->spec_ids[n++] = i;
            t->n_user_defined += t->type[i] == TOK_TYPE_USER_DEFINED;
        }
    sort_specials(t, t->spec_ids, n);
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        t->spec_first[b] = (uint32_t)k;
        while (k < n && (unsigned char)t->blob[t->off[t->spec_ids[k]]] == b) k++;
    }
    t->spec_first[256] = (uint32_t)n;
    return INFER_OK;
}

void tok_free(tokenizer *t)
{
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->hash);
    free(t->dec);
    free(t->dec_off);
    free(t->dec_len);
    free(t->spec_ids);
    free(t->merge_blob);
    free(t->merge_off);
    free(t->merge_len);
    free(t->merge_split);
    free(t->merge_hash);
    free(t->byte);
    free(t);
}

tok_family tok_get_family(const tokenizer *t) { return t ? t->family : TOK_FAMILY_LLAMA2C; }
int32_t tok_n_vocab(const tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t tok_bos(const tokenizer *t) { return t ? t->special[TOK_SPECIAL_BOS] : -1; }
int32_t tok_eos(const tokenizer *t) { return t ? t->special[TOK_SPECIAL_EOS] : -1; }
/* A flag asking for a token the vocab lacks is ignored rather than failing every prompt. */
int tok_default_add_bos(const tokenizer *t) { return t && t->add_bos && t->special[TOK_SPECIAL_BOS] >= 0; }
int tok_default_add_eos(const tokenizer *t) { return t && t->add_eos && t->special[TOK_SPECIAL_EOS] >= 0; }

int32_t tok_special_id(const tokenizer *t, tok_special which)
{
    if (!t || (int)which < 0 || which >= TOK_SPECIAL_COUNT) return -1;
    return t->special[which];
}

tok_type tok_token_type(const tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return TOK_TYPE_UNDEFINED;
    return (tok_type)t->type[id];
}

const int32_t *tok_end_tokens(const tokenizer *t, int *n)
{
    if (n) *n = t ? t->n_end : 0;
    return t ? t->end_ids : NULL;
}

/* ---------------------------------------------------------------------- GGUF loading */

#define KEY_PREFIX "tokenizer.ggml."

static const struct {
    const char *key;
    tok_special role;
} SPECIAL_KEYS[] = {
    {KEY_PREFIX "bos_token_id", TOK_SPECIAL_BOS},     {KEY_PREFIX "eos_token_id", TOK_SPECIAL_EOS},
    {KEY_PREFIX "eot_token_id", TOK_SPECIAL_EOT},     {KEY_PREFIX "eom_token_id", TOK_SPECIAL_EOM},
    {KEY_PREFIX "unknown_token_id", TOK_SPECIAL_UNK}, {KEY_PREFIX "padding_token_id", TOK_SPECIAL_PAD},
    {KEY_PREFIX "seperator_token_id", TOK_SPECIAL_SEP}, /* sic: the GGUF spec's spelling */
    {KEY_PREFIX "separator_token_id", TOK_SPECIAL_SEP}, {KEY_PREFIX "cls_token_id", TOK_SPECIAL_CLS},
    {KEY_PREFIX "mask_token_id", TOK_SPECIAL_MASK},
};

static infer_status opt_bool(const gguf_file *g, const char *key, int *v)
{
    return gguf_find_kv(g, key) ? gguf_get_bool(g, key, v) : INFER_OK;
}

/* An optional array parallel to tokens: right element kind and the same length. */
static infer_status parallel_arr(const gguf_file *g, const char *path, const char *key, int want_float,
                                 uint64_t n, const gguf_kv **out)
{
    *out = gguf_find_kv(g, key);
    if (!*out) return INFER_OK;
    infer_status st = gguf_get_arr(g, key, GGUF_TYPE_ANY, out);
    if (st) return st;
    uint32_t et = (*out)->arr_type;
    int is_float = et == GGUF_TYPE_FLOAT32 || et == GGUF_TYPE_FLOAT64;
    int is_int = et <= GGUF_TYPE_INT32 || et == GGUF_TYPE_UINT64 || et == GGUF_TYPE_INT64;
    if (want_float ? !is_float : !is_int)
        return infer_err(INFER_EFORMAT, "'%s': %s is an array of %s, expected %s", path, key, gguf_type_name(et),
                         want_float ? "float32" : "integers");
    if ((*out)->arr_n != n)
        return infer_err(INFER_EFORMAT, "'%s': %s has %llu entries but tokenizer.ggml.tokens has %llu", path, key,
                         (unsigned long long)(*out)->arr_n, (unsigned long long)n);
    return INFER_OK;
}

static infer_status load_tokens(tokenizer *t, const gguf_file *g, const char *path)
{
    const gguf_kv *tk, *sc, *ty;
    infer_status st = gguf_get_arr(g, KEY_PREFIX "tokens", GGUF_TYPE_STRING, &tk);
    if (st == INFER_ENOTFOUND)
        return infer_err(INFER_EFORMAT, "'%s': tokenizer.ggml.tokens is missing", path);
    if (st) return st;
    uint64_t n = tk->arr_n;
    if (n == 0 || n > TOK_MAX_VOCAB)
        return infer_err(INFER_EFORMAT, "'%s': tokenizer.ggml.tokens has %llu entries (expected 1..%d)", path,
                         (unsigned long long)n, TOK_MAX_VOCAB);
    if ((st = parallel_arr(g, path, KEY_PREFIX "scores", 1, n, &sc))) return st;
    if ((st = parallel_arr(g, path, KEY_PREFIX "token_type", 0, n, &ty))) return st;
    size_t blob = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s;
        if ((st = gguf_arr_str(tk, i, &s))) return st;
        blob += (size_t)s.n + 1;
        if (blob > TOK_MAX_TEXT)
            return infer_err(INFER_EFORMAT, "'%s': tokenizer.ggml.tokens holds over %zu bytes of text", path,
                             TOK_MAX_TEXT);
    }
    if ((st = tok_alloc_vocab(t, (int32_t)n, blob, t->family == TOK_FAMILY_SPM))) return st;
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s;
        gguf_arr_str(tk, i, &s);
        memcpy(t->blob + off, s.p, s.n);
        t->blob[off + s.n] = 0;
        t->off[i] = (uint32_t)off;
        t->len[i] = (uint32_t)s.n;
        off += s.n + 1;
        if (sc && t->score) {
            float f = gguf_arr_f32(sc, i);
            if (isnan(f))
                return infer_err(INFER_EFORMAT, "'%s': tokenizer.ggml.scores[%llu] is NaN", path,
                                 (unsigned long long)i);
            t->score[i] = f;
        }
        if (ty) {
            int32_t v = gguf_arr_i32(ty, i);
            if (v < TOK_TYPE_UNDEFINED || v > TOK_TYPE_BYTE)
                return infer_err(INFER_EFORMAT, "'%s': tokenizer.ggml.token_type[%llu] = %d is not a token type "
                                 "(0..6)", path, (unsigned long long)i, v);
            t->type[i] = (uint8_t)v;
        }
    }
    return INFER_OK;
}

static infer_status load_specials(tokenizer *t, const gguf_file *g, const char *path)
{
    infer_status st;
    for (size_t k = 0; k < sizeof SPECIAL_KEYS / sizeof *SPECIAL_KEYS; k++) {
        if (!gguf_find_kv(g, SPECIAL_KEYS[k].key)) continue;
        uint32_t id;
        if ((st = gguf_get_u32(g, SPECIAL_KEYS[k].key, &id))) return st;
        /* llama.cpp writes UINT32_MAX (-1 as int32) for "no such token" */
        if (id == UINT32_MAX) continue;
        if (id >= (uint32_t)t->n_vocab)
            return infer_err(INFER_EFORMAT, "'%s': %s = %u is out of range (vocab of %d tokens)", path,
                             SPECIAL_KEYS[k].key, id, t->n_vocab);
        t->special[SPECIAL_KEYS[k].role] = (int32_t)id;
    }
    if ((st = opt_bool(g, KEY_PREFIX "add_bos_token", &t->add_bos))) return st;
    if ((st = opt_bool(g, KEY_PREFIX "add_eos_token", &t->add_eos))) return st;
    return opt_bool(g, KEY_PREFIX "add_space_prefix", &t->add_space_prefix);
}

infer_status tok_load_gguf(const gguf_file *g, const char *path, tokenizer **out)
{
    if (!out) return infer_err(INFER_EINVAL, "tok_load_gguf: out is NULL");
    *out = NULL;
    if (!g) return infer_err(INFER_EINVAL, "tok_load_gguf: gguf_file is NULL");
    if (!path) path = g->path ? g->path : "(gguf)";
    gguf_str model;
    infer_status st = gguf_get_str(g, KEY_PREFIX "model", &model);
    if (st == INFER_ENOTFOUND)
        return infer_err(INFER_EFORMAT, "'%s' holds no tokenizer: tokenizer.ggml.model is missing", path);
    if (st) return st;
    tok_family fam;
    if (gguf_str_eq(model, "llama")) fam = TOK_FAMILY_SPM;
    else if (gguf_str_eq(model, "gpt2")) fam = TOK_FAMILY_BPE;
    else if (gguf_str_eq(model, "bert")) fam = TOK_FAMILY_WORDPIECE;
    else
        return infer_err(INFER_EUNSUPPORTED, "'%s': tokenizer.ggml.model '%.*s' is not supported (known: llama, "
                         "gpt2, bert)", path, (int)INFER_MIN(model.n, 64), model.p);

    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return infer_err(INFER_ENOMEM, "out of memory for a tokenizer");
    t->family = fam;
    /* llama.cpp's defaults per vocab type; the file's keys override them. */
    t->add_bos = fam != TOK_FAMILY_BPE;
    t->add_eos = fam == TOK_FAMILY_WORDPIECE;
    t->add_space_prefix = fam == TOK_FAMILY_SPM;
    st = load_tokens(t, g, path);
    if (!st && fam == TOK_FAMILY_SPM && t->n_vocab > 2) {
        t->special[TOK_SPECIAL_UNK] = 0;
        t->special[TOK_SPECIAL_BOS] = 1;
        t->special[TOK_SPECIAL_EOS] = 2;
    }
    if (!st) st = tok_index_vocab(t, 1);
    if (!st && fam == TOK_FAMILY_BPE) st = tok_bpe_setup(t, g, path); /* may set add_bos (Llama 3) */
    if (!st) st = load_specials(t, g, path);
    if (!st && fam == TOK_FAMILY_SPM) st = tok_spm_setup(t, path);
    if (!st && fam == TOK_FAMILY_WORDPIECE) st = tok_wordpiece_setup(t, 1);
    if (!st) st = tok_index_specials(t);
    if (st) {
        tok_free(t);
        return st;
    }
    *out = t;
    return INFER_OK;
}

/* ---------------------------------------------------------------------- encoding */

/* The special token at s[0..n) to split out, or -1: leftmost-longest among the eligible. */
static int32_t match_special(const tokenizer *t, const char *s, size_t n, unsigned flags)
{
    unsigned char b = (unsigned char)s[0];
    for (uint32_t k = t->spec_first[b]; k < t->spec_first[b + 1]; k++) {
        int32_t id = t->spec_ids[k];
        if (!(flags & TOK_PARSE_SPECIAL) && t->type[id] != TOK_TYPE_USER_DEFINED) continue;
        if (t->len[id] <= n && memcmp(t->blob + t->off[id], s, t->len[id]) == 0) return id;
    }
    return -1;
}

static infer_status encode_text(const tokenizer *t, tok_work *w, const char *s, size_t n, int after_special,
                                tok_ids *o)
{
    switch (t->family) {
    case TOK_FAMILY_SPM: return tok_spm_encode(t, w, s, n, after_special && t->add_space_prefix, o);
    case TOK_FAMILY_BPE: return tok_bpe_encode(t, w, s, n, o);
    case TOK_FAMILY_WORDPIECE: return tok_wordpiece_encode(t, w, s, n, o);
    default: return infer_err(INFER_EINTERNAL, "tokenizer family %d has no text encoder", (int)t->family);
    }
}

static infer_status need_special(const tokenizer *t, tok_special role, const char *what)
{
    if (t->special[role] >= 0) return INFER_OK;
    return infer_err(INFER_EINVAL, "cannot add %s: this vocab has no %s token", what, what);
}

infer_status tok_encode_ex(const tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                           size_t *n_ids)
{
    if (!ids || !n_ids) return infer_err(INFER_EINVAL, "tok_encode_ex: ids or n_ids is NULL");
    *ids = NULL;
    *n_ids = 0;
    if (!t || (!text && len > 0)) return infer_err(INFER_EINVAL, "tok_encode_ex: NULL tokenizer or text");
    if (flags & ~(unsigned)(TOK_ADD_BOS | TOK_ADD_EOS | TOK_PARSE_SPECIAL))
        return infer_err(INFER_EINVAL, "tok_encode_ex: unknown flags 0x%x", flags);
    if (len > (size_t)INT32_MAX / 4)
        return infer_err(INFER_EINVAL, "text of %zu bytes is too long to encode (limit %d)", len, INT32_MAX / 4);
    infer_status st = INFER_OK;
    if ((flags & TOK_ADD_BOS) && (st = need_special(t, TOK_SPECIAL_BOS, "BOS"))) return st;
    if ((flags & TOK_ADD_EOS) && (st = need_special(t, TOK_SPECIAL_EOS, "EOS"))) return st;
    if (t->family == TOK_FAMILY_LLAMA2C) {
        st = tok_llama2c_encode(t, text, len, (flags & TOK_ADD_BOS) != 0, ids, n_ids);
        if (st || !(flags & TOK_ADD_EOS)) return st;
        tok_ids o = {*ids, *n_ids, *n_ids};
        st = tok_ids_push(&o, t->special[TOK_SPECIAL_EOS]);
        *ids = o.v;
        *n_ids = o.n;
        if (st) {
            free(o.v);
            *ids = NULL;
            *n_ids = 0;
        }
        return st;
    }

    tok_ids o = {0};
    tok_work w = {0};
    if (flags & TOK_ADD_BOS) st = tok_ids_push(&o, t->special[TOK_SPECIAL_BOS]);
    /* Split out special tokens first (llama.cpp tokenizer_st_partition); each run of text
    ** between them goes to the family's encoder. Without eligible specials, skip the scan. */
    int scan = (flags & TOK_PARSE_SPECIAL) ? t->spec_first[256] > 0 : t->n_user_defined > 0;
    int after_special = 1; /* SentencePiece puts its dummy prefix at the start too */
    size_t start = 0;
    for (size_t i = 0; scan && i < len && !st;) {
        int32_t id = match_special(t, text + i, len - i, flags);
        if (id < 0) {
            i++;
            continue;
        }
        if (i > start) st = encode_text(t, &w, text + start, i - start, after_special, &o);
        if (!st) st = tok_ids_push(&o, id);
        after_special = 1;
        i += t->len[id];
        start = i;
    }
    if (!st && start < len) st = encode_text(t, &w, text + start, len - start, after_special, &o);
    if (!st && (flags & TOK_ADD_EOS)) st = tok_ids_push(&o, t->special[TOK_SPECIAL_EOS]);
    if (!st && !o.v) { /* callers get a valid (empty) array, as from tok_llama2c_encode */
        o.v = malloc(sizeof *o.v);
        if (!o.v) st = infer_err(INFER_ENOMEM, "out of memory encoding text");
    }
    tok_work_free(&w);
    if (st) {
        free(o.v);
        return st;
    }
    *ids = o.v;
    *n_ids = o.n;
    return INFER_OK;
}

infer_status tok_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                        size_t *n_ids)
{
    return tok_encode_ex(t, text, len, add_bos ? TOK_ADD_BOS : 0, ids, n_ids);
}

/* ---------------------------------------------------------------------- decoding */

infer_status tok_piece(const tokenizer *t, int32_t id, const char **bytes, size_t *len)
{
    if (!t || !bytes || !len) return infer_err(INFER_EINVAL, "tok_piece: NULL argument");
    if (id < 0 || id >= t->n_vocab)
        return infer_err(INFER_EINVAL, "token id %d is outside the vocab (0..%d)", id, t->n_vocab - 1);
    if (t->family == TOK_FAMILY_LLAMA2C) {
        tok_llama2c_stream_piece(t, -2, id, bytes, len);
        return INFER_OK;
    }
    *bytes = t->dec + t->dec_off[id];
    *len = t->dec_len[id];
    return INFER_OK;
}

void tok_stream_init(tok_stream *st, int32_t prev_token)
{
    memset(st, 0, sizeof *st);
    st->prev = prev_token;
}

infer_status tok_stream_feed(const tokenizer *t, tok_stream *st, int32_t token, strbuf *out)
{
    if (!t || !st || !out) return infer_err(INFER_EINVAL, "tok_stream_feed: NULL argument");
    if (token < 0 || token >= t->n_vocab)
        return infer_err(INFER_EINVAL, "token id %d is outside the vocab (0..%d)", token, t->n_vocab - 1);
    int32_t prev = st->prev;
    st->prev = token;
    const char *p;
    size_t n;
    if (t->family == TOK_FAMILY_LLAMA2C) {
        if (!tok_llama2c_stream_piece(t, prev, token, &p, &n)) return sb_append(out, "", 0);
        return utf8_stream_feed(st->pend, &st->n_pend, p, n, out);
    }
    uint8_t ty = t->type[token];
    if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_UNUSED || ty == TOK_TYPE_UNDEFINED)
        return sb_append(out, "", 0); /* keeps pending bytes waiting */
    p = t->dec + t->dec_off[token];
    n = t->dec_len[token];
    int first = prev < 0 || prev >= t->n_vocab;
    int strip = 0;
    if (t->family == TOK_FAMILY_SPM)
        strip = t->add_space_prefix && (first || prev == t->special[TOK_SPECIAL_BOS]);
    else if (t->family == TOK_FAMILY_WORDPIECE)
        strip = first || t->type[prev] == TOK_TYPE_CONTROL;
    if (strip && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    return utf8_stream_feed(st->pend, &st->n_pend, p, n, out);
}

infer_status tok_stream_flush(tok_stream *st, strbuf *out)
{
    if (!st || !out) return infer_err(INFER_EINVAL, "tok_stream_flush: NULL argument");
    return utf8_stream_flush(st->pend, &st->n_pend, out);
}

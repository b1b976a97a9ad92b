/*
** tok_hf.c — a tokenizer from a Hugging Face directory: tokenizer.json (the serialization of
** HF `tokenizers`), tokenizer_config.json (transformers: bos/eos/unk/pad tokens, add_bos_token,
** add_eos_token, chat_template), config.json (bos_token_id / eos_token_id when the former has no
** tokens) and generation_config.json (eos_token_id, an int or a list: more end tokens).
**
** Models: "BPE" (byte-level, or SentencePiece converted: tok_hf_bpe.c) and "WordPiece" (BERT:
** vocab, unk_token, continuing_subword_prefix, max_input_chars_per_word; BertNormalizer options
** lowercase / strip_accents / handle_chinese_chars; tok_wordpiece.c). Ids: model.vocab maps
** text -> id, added_tokens add (or re-type) entries {id, content, special}: special ones become
** control tokens (split out of text only with TOK_PARSE_SPECIAL), the others user-defined
** (always split out, as HF does). Every id below the largest must be defined; the model may have
** more ids than the tokenizer (padded embedding rows): those become empty unused tokens.
** BOS/EOS flags: tokenizer_config's add_bos_token / add_eos_token, else what the post_processor
** template adds around a single sequence, else the family's default (SentencePiece: BOS).
*/
#include "hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF_TOK_MAX_VOCAB (1 << 24)

typedef struct hf_files {
    char *tc_path, *cfg_path, *gen_path;
    cJSON *tc, *cfg, *gen;  /* tokenizer_config.json, config.json, generation_config.json (may be NULL) */
} hf_files;

/* ---------------------------------------------------------------------- vocab */

static int byte_token(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    return strlen(s) == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && strchr(hex, s[3]) && strchr(hex, s[4]) &&
           s[3] && s[4];
}

/* Ids and texts from model.vocab and added_tokens, into t (allocated here). */
static infer_status build_vocab(tokenizer *t, const hf_tok_ctx *c, int32_t model_vocab, int byte_fallback)
{
    const cJSON *vocab = hf_get(c->model, "vocab"), *added = hf_get(c->root, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return infer_err(INFER_EFORMAT, "'%s': model.vocab is %s", c->file, vocab ? "not an object" : "missing");
    if (added && !cJSON_IsArray(added)) return infer_err(INFER_EFORMAT, "'%s': added_tokens is not an array", c->file);
    int64_t max_id = -1, id;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!hf_json_int(e, 0, HF_TOK_MAX_VOCAB - 1, &id))
            return infer_err(INFER_EFORMAT, "'%s': model.vocab['%.60s'] is not an id in 0..%d", c->file, e->string,
                             HF_TOK_MAX_VOCAB - 1);
        max_id = INFER_MAX(max_id, id);
    }
    size_t k = 0;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, k++) {
        const cJSON *content = hf_get(e, "content");
        if (!hf_json_int(hf_get(e, "id"), 0, HF_TOK_MAX_VOCAB - 1, &id) || !cJSON_IsString(content) ||
            !*content->valuestring)
            return infer_err(INFER_EFORMAT, "'%s': added_tokens[%zu] needs an id in 0..%d and a non-empty content",
                             c->file, k, HF_TOK_MAX_VOCAB - 1);
        max_id = INFER_MAX(max_id, id);
    }
    if (max_id < 0) return infer_err(INFER_EFORMAT, "'%s': model.vocab is empty", c->file);
    if (max_id >= model_vocab)
        return infer_err(INFER_EFORMAT, "'%s': token id %lld is past the model's vocab_size %d", c->file,
                         (long long)max_id, model_vocab);
    int32_t n = model_vocab;
    const char **txt = calloc((size_t)n, sizeof *txt);
    uint8_t *ty = calloc((size_t)n, 1);
    infer_status st = txt && ty ? INFER_OK : infer_err(INFER_ENOMEM, "out of memory for a vocab of %d", n);
    for (const cJSON *e = vocab->child; e && !st; e = e->next) {
        hf_json_int(e, 0, HF_TOK_MAX_VOCAB - 1, &id);
        if (txt[id])
            st = infer_err(INFER_EFORMAT, "'%s': model.vocab gives id %lld to both '%.60s' and '%.60s'", c->file,
                           (long long)id, txt[id], e->string);
        txt[id] = e->string;
        ty[id] = byte_fallback && byte_token(e->string) ? TOK_TYPE_BYTE : TOK_TYPE_NORMAL;
    }
    for (const cJSON *e = added ? added->child : NULL; e && !st; e = e->next) {
        hf_json_int(hf_get(e, "id"), 0, HF_TOK_MAX_VOCAB - 1, &id);
        txt[id] = hf_get(e, "content")->valuestring;
        ty[id] = cJSON_IsTrue(hf_get(e, "special")) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
    }
    size_t blob = 0;
    for (int32_t i = 0; i < n && !st; i++) {
        if (!txt[i] && i <= max_id)
            st = infer_err(INFER_EFORMAT, "'%s': token id %d is in neither model.vocab nor added_tokens", c->file, i);
        blob += (txt[i] ? strlen(txt[i]) : 0) + 1;
        if (blob > ((size_t)1 << 30)) st = infer_err(INFER_EFORMAT, "'%s': the vocab holds over 1 GiB", c->file);
    }
    if (!st) st = tok_alloc_vocab(t, n, blob, t->family == TOK_FAMILY_SPM);
    size_t off = 0;
    for (int32_t i = 0; i < n && !st; i++) {
        size_t l = txt[i] ? strlen(txt[i]) : 0; /* past the tokenizer: empty, never looked up */
        memcpy(t->blob + off, txt[i] ? txt[i] : "", l + 1);
        t->off[i] = (uint32_t)off;
        t->len[i] = (uint32_t)l;
        t->type[i] = txt[i] ? ty[i] : TOK_TYPE_UNUSED;
        off += l + 1;
    }
    free(txt);
    free(ty);
    return st ? st : tok_index_vocab(t, 1); /* an added token wins over an equal vocab entry */
}

/* ---------------------------------------------------------------------- special tokens */

/* tokenizer_config.json `key`: a string, or {"content": string} (a serialized AddedToken). */
static infer_status config_token(const tokenizer *t, const hf_files *f, const char *key, int32_t *id)
{
    const cJSON *v = hf_get(f->tc, key);
    if (!v) return INFER_OK;
    const cJSON *s = cJSON_IsObject(v) ? hf_get(v, "content") : v;
    if (!cJSON_IsString(s))
        return infer_err(INFER_EFORMAT, "'%s': %s is neither a string nor an object with a content string",
                         f->tc_path, key);
    int32_t i = tok_lookup(t, s->valuestring, strlen(s->valuestring));
    if (i < 0) return infer_err(INFER_EFORMAT, "'%s': %s '%.60s' is not a token", f->tc_path, key, s->valuestring);
    *id = i;
    return INFER_OK;
}

/* An id field (int, or a list of ints when `list`) of a JSON file; calls add for each. */
static infer_status config_ids(tokenizer *t, const cJSON *j, const char *path, const char *key, int32_t *first,
                               int add_end)
{
    const cJSON *v = hf_get(j, key);
    if (!v) return INFER_OK;
    int k = 0;
    for (const cJSON *x = cJSON_IsArray(v) ? v->child : v; x; x = cJSON_IsArray(v) ? x->next : NULL, k++) {
        int64_t id;
        if (!hf_json_int(x, 0, t->n_vocab - 1, &id))
            return infer_err(INFER_EFORMAT, "'%s': %s is not a token id (0..%d) or a list of them", path, key,
                             t->n_vocab - 1);
        if (k == 0 && first && *first < 0) *first = (int32_t)id;
        if (add_end) tok_add_end_token(t, (int32_t)id);
    }
    return INFER_OK;
}

/* The TemplateProcessing post-processor (alone or in a Sequence): whether a single sequence
** starts / ends with a special token, and which. */
static void template_specials(const tokenizer *t, const cJSON *root, int *bos, int32_t *bos_id, int *eos,
                              int32_t *eos_id)
{
    const cJSON *pp = hf_get(root, "post_processor"), *tp = NULL;
    const cJSON *procs = hf_get(pp, "processors");
    for (const cJSON *x = cJSON_IsArray(procs) ? procs->child : pp; x; x = cJSON_IsArray(procs) ? x->next : NULL) {
        const cJSON *ty = hf_get(x, "type");
        if (cJSON_IsString(ty) && strcmp(ty->valuestring, "TemplateProcessing") == 0) tp = x;
    }
    const cJSON *single = hf_get(tp, "single");
    if (!cJSON_IsArray(single)) return;
    *bos = *eos = 0;
    int n = cJSON_GetArraySize(single);
    for (int i = 0; i < n; i += n - 1 > 0 ? n - 1 : 1) {
        const cJSON *id = hf_get(hf_get(cJSON_GetArrayItem(single, i), "SpecialToken"), "id");
        int32_t tid = cJSON_IsString(id) ? tok_lookup(t, id->valuestring, strlen(id->valuestring)) : -1;
        if (tid < 0) continue;
        if (i == 0) *bos = 1, *bos_id = tid;
        else *eos = 1, *eos_id = tid;
    }
}

static void mark_control(tokenizer *t, int32_t id, uint8_t type)
{
    if (id >= 0 && t->type[id] == TOK_TYPE_NORMAL) t->type[id] = type;
}

static infer_status load_specials(tokenizer *t, const hf_tok_ctx *c, const hf_files *f)
{
    int32_t *sp = t->special;
    const char *unk = NULL;
    infer_status st = hf_get_str(c->model, c->file, "model", "unk_token", t->family == TOK_FAMILY_WORDPIECE, &unk);
    if (st) return st;
    if (unk && (sp[TOK_SPECIAL_UNK] = tok_lookup(t, unk, strlen(unk))) < 0)
        return infer_err(INFER_EFORMAT, "'%s': model.unk_token '%.60s' is not in the vocab", c->file, unk);
    if ((st = config_token(t, f, "bos_token", &sp[TOK_SPECIAL_BOS])) ||
        (st = config_token(t, f, "eos_token", &sp[TOK_SPECIAL_EOS])) ||
        (st = config_token(t, f, "pad_token", &sp[TOK_SPECIAL_PAD])) ||
        (st = config_token(t, f, "cls_token", &sp[TOK_SPECIAL_CLS])) ||
        (st = config_token(t, f, "sep_token", &sp[TOK_SPECIAL_SEP])) ||
        (st = config_token(t, f, "mask_token", &sp[TOK_SPECIAL_MASK])) ||
        (st = config_ids(t, f->cfg, f->cfg_path, "bos_token_id", &sp[TOK_SPECIAL_BOS], 0)) ||
        (st = config_ids(t, f->cfg, f->cfg_path, "eos_token_id", &sp[TOK_SPECIAL_EOS], 0)))
        return st;
    int tb = -1, te = -1;
    int32_t tb_id = -1, te_id = -1;
    template_specials(t, c->root, &tb, &tb_id, &te, &te_id);
    if (t->family == TOK_FAMILY_WORDPIECE) {
        static const char *const names[] = {"[CLS]", "[SEP]", "[PAD]", "[MASK]"};
        static const tok_special roles[] = {TOK_SPECIAL_CLS, TOK_SPECIAL_SEP, TOK_SPECIAL_PAD, TOK_SPECIAL_MASK};
        if (sp[TOK_SPECIAL_CLS] < 0) sp[TOK_SPECIAL_CLS] = tb_id;
        if (sp[TOK_SPECIAL_SEP] < 0) sp[TOK_SPECIAL_SEP] = te_id;
        for (int i = 0; i < 4; i++)
            if (sp[roles[i]] < 0) sp[roles[i]] = tok_lookup(t, names[i], strlen(names[i]));
        t->add_bos = tb != 0;
        t->add_eos = te != 0;
    } else {
        if (sp[TOK_SPECIAL_BOS] < 0) sp[TOK_SPECIAL_BOS] = tb_id;
        t->add_bos = tb >= 0 ? tb : t->family == TOK_FAMILY_SPM;
        t->add_eos = te > 0;
    }
    if ((st = hf_get_bool(f->tc, f->tc_path, "", "add_bos_token", &t->add_bos)) ||
        (st = hf_get_bool(f->tc, f->tc_path, "", "add_eos_token", &t->add_eos)))
        return st;
    if (sp[TOK_SPECIAL_UNK] >= 0 && t->type[sp[TOK_SPECIAL_UNK]] == TOK_TYPE_CONTROL) /* as llama.cpp types it */
        t->type[sp[TOK_SPECIAL_UNK]] = TOK_TYPE_UNKNOWN;
    mark_control(t, sp[TOK_SPECIAL_UNK], TOK_TYPE_UNKNOWN);
    for (int r = 0; r < TOK_SPECIAL_COUNT; r++) mark_control(t, sp[r], TOK_TYPE_CONTROL);
    return INFER_OK;
}

/* ---------------------------------------------------------------------- families */

static infer_status no_bpe_options(const hf_tok_ctx *c)
{
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = hf_get(c->model, keys[i]);
        if (v && !(cJSON_IsString(v) && !*v->valuestring))
            return infer_err(INFER_EUNSUPPORTED, "'%s': model.%s is not supported in a BPE model", c->file, keys[i]);
    }
    const cJSON *d = hf_get(c->model, "dropout");
    if (d && !(cJSON_IsNumber(d) && d->valuedouble == 0))
        return infer_err(INFER_EUNSUPPORTED, "'%s': model.dropout (BPE-dropout) is not supported", c->file);
    return INFER_OK;
}

static infer_status wordpiece_setup(tokenizer *t, const hf_tok_ctx *c)
{
    const char *prefix = "##";
    int64_t maxc = 100;
    infer_status st;
    if ((st = hf_get_str(c->model, c->file, "model", "continuing_subword_prefix", 0, &prefix)) ||
        (st = hf_get_int(c->model, c->file, "model", "max_input_chars_per_word", 0, 1, 1 << 20, &maxc)))
        return st;
    if (strlen(prefix) >= sizeof t->wp_prefix)
        return infer_err(INFER_EUNSUPPORTED, "'%s': model.continuing_subword_prefix '%.40s' is too long", c->file,
                         prefix);
    memcpy(t->wp_prefix, prefix, strlen(prefix) + 1);
    t->wp_max_chars = (int)maxc;
    const cJSON *norm = hf_get(c->root, "normalizer"), *pre = hf_get(c->root, "pre_tokenizer");
    const cJSON *pt = hf_get(pre, "type"), *nt = hf_get(norm, "type");
    if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "BertPreTokenizer") != 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s': a WordPiece model needs pre_tokenizer BertPreTokenizer", c->file);
    int lower = 0, strip = -1, cjk = 0;
    if (norm) {
        if (!cJSON_IsString(nt) || strcmp(nt->valuestring, "BertNormalizer") != 0)
            return infer_err(INFER_EUNSUPPORTED, "'%s': normalizer '%.40s' is not supported with WordPiece "
                             "(BertNormalizer is)", c->file, cJSON_IsString(nt) ? nt->valuestring : "?");
        lower = cjk = 1;
        if ((st = hf_get_bool(norm, c->file, "normalizer", "lowercase", &lower)) ||
            (st = hf_get_bool(norm, c->file, "normalizer", "handle_chinese_chars", &cjk)) ||
            (st = hf_get_bool(norm, c->file, "normalizer", "strip_accents", &strip)))
            return st;
    }
    t->wp_lower = lower;
    t->wp_strip_accents = strip < 0 ? lower : strip; /* null: follow lowercase, as BERT does */
    t->wp_cjk = cjk;
    return tok_wordpiece_setup(t, 0);
}

static infer_status chat_template_of(const hf_files *f, char **out)
{
    const cJSON *ct = hf_get(f->tc, "chat_template");
    if (!ct) return INFER_OK;
    const cJSON *s = cJSON_IsString(ct) ? ct : NULL;
    for (const cJSON *x = cJSON_IsArray(ct) ? ct->child : NULL; x; x = x->next) { /* [{name, template}] */
        const cJSON *name = hf_get(x, "name"), *tmpl = hf_get(x, "template");
        if (cJSON_IsString(tmpl) && (!s || (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0)))
            s = tmpl;
    }
    if (!s) return infer_err(INFER_EFORMAT, "'%s': chat_template is neither a string nor a list of templates", f->tc_path);
    *out = infer_strdup(s->valuestring);
    return *out ? INFER_OK : infer_err(INFER_ENOMEM, "out of memory");
}

/* ---------------------------------------------------------------------- entry */

static infer_status load_files(const char *dir, hf_files *f)
{
    if (!(f->tc_path = hf_path_join(dir, "tokenizer_config.json")) || !(f->cfg_path = hf_path_join(dir, "config.json")) ||
        !(f->gen_path = hf_path_join(dir, "generation_config.json")))
        return INFER_ENOMEM;
    infer_status st;
    if ((st = hf_json_load(f->tc_path, 1, &f->tc)) || (st = hf_json_load(f->cfg_path, 1, &f->cfg)) ||
        (st = hf_json_load(f->gen_path, 1, &f->gen)))
        return st;
    if ((f->tc && !cJSON_IsObject(f->tc)) || (f->cfg && !cJSON_IsObject(f->cfg)) || (f->gen && !cJSON_IsObject(f->gen)))
        return infer_err(INFER_EFORMAT, "'%s': tokenizer_config.json, config.json and generation_config.json must be "
                         "JSON objects", dir);
    return INFER_OK;
}

static infer_status build(tokenizer *t, const hf_tok_ctx *c, const hf_files *f, int32_t model_vocab)
{
    const cJSON *type = hf_get(c->model, "type");
    if (!cJSON_IsObject(c->model) || !cJSON_IsString(type))
        return infer_err(INFER_EFORMAT, "'%s': model.type is missing (model must be an object)", c->file);
    int spm = 0, prefix = 0, byte_fallback = 0;
    infer_status st;
    if (strcmp(type->valuestring, "WordPiece") == 0) {
        t->family = TOK_FAMILY_WORDPIECE;
    } else if (strcmp(type->valuestring, "BPE") == 0) {
        if ((st = tok_hf_spm_style(c, &spm, &prefix)) || (st = no_bpe_options(c)) ||
            (st = hf_get_bool(c->model, c->file, "model", "byte_fallback", &byte_fallback)))
            return st;
        t->family = spm ? TOK_FAMILY_SPM : TOK_FAMILY_BPE;
        t->add_space_prefix = prefix;
    } else {
        return infer_err(INFER_EUNSUPPORTED, "'%s': model.type '%.40s' is not supported (BPE, WordPiece are)", c->file,
                         type->valuestring);
    }
    if ((st = build_vocab(t, c, model_vocab, spm && byte_fallback)) || (st = load_specials(t, c, f))) return st;
    if (t->family == TOK_FAMILY_WORDPIECE) st = wordpiece_setup(t, c);
    else if (t->family == TOK_FAMILY_BPE) st = tok_hf_bpe_setup(t, c);
    else if (!(st = tok_hf_spm_scores(t, c))) st = tok_spm_setup(t, c->file);
    if (st || (st = tok_index_specials(t))) return st;
    /* More end tokens: every eos id of config.json and generation_config.json. */
    if ((st = config_ids(t, f->cfg, f->cfg_path, "eos_token_id", NULL, 1)) ||
        (st = config_ids(t, f->gen, f->gen_path, "eos_token_id", NULL, 1)))
        return st;
    return INFER_OK;
}

infer_status tok_load_hf(const char *dir, int32_t model_vocab, tokenizer **out, char **chat_template)
{
    *out = NULL;
    if (chat_template) *chat_template = NULL;
    hf_files f = {0};
    cJSON *root = NULL;
    char *path = hf_path_join(dir, "tokenizer.json");
    tokenizer *t = calloc(1, sizeof *t);
    infer_status st = path && t ? INFER_OK : infer_err(INFER_ENOMEM, "out of memory");
    if (!st) st = hf_json_load(path, 0, &root);
    if (!st && !cJSON_IsObject(root)) st = infer_err(INFER_EFORMAT, "'%s' is not a JSON object", path);
    if (!st) st = load_files(dir, &f);
    if (!st && (model_vocab < 1 || model_vocab > HF_TOK_MAX_VOCAB))
        st = infer_err(INFER_EFORMAT, "'%s': vocab_size %d is out of range", dir, model_vocab);
    if (!st) {
        hf_tok_ctx c = { path, root, hf_get(root, "model") };
        st = build(t, &c, &f, model_vocab);
    }
    char *tmpl = NULL;
    if (!st && chat_template) st = chat_template_of(&f, &tmpl);
    cJSON_Delete(root);
    cJSON_Delete(f.tc);
    cJSON_Delete(f.cfg);
    cJSON_Delete(f.gen);
    free(f.tc_path);
    free(f.cfg_path);
    free(f.gen_path);
    free(path);
    if (st) {
        tok_free(t);
        return st;
    }
    if (chat_template) *chat_template = tmpl;
    *out = t;
    return INFER_OK;
}

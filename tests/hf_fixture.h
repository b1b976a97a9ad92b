/*
** hf_fixture.h — write Hugging Face model directories for tests (header-only, like test_util.h):
** a safetensors writer, a SentencePiece-style tokenizer.json writer (vocab + scores -> merges, as
** transformers' LlamaConverter does), and stories260K (llama2.c .bin + tok512.bin from ../shared)
** written as an HF LlamaForCausalLM directory, with q/k rows permuted from llama2.c's
** interleaved-pair RoPE layout to HF's rotate_half layout exactly as
** convert_llama_weights_to_hf.py's permute() does.
** JSON is built with cJSON (the library's JSON dependency) so escaping is always right.
*/
#ifndef INFER_HF_FIXTURE_H
#define INFER_HF_FIXTURE_H

#include "test_util.h"

#include <cjson/cJSON.h>
#include <infer.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"

#define SPM_SPACE "\xE2\x96\x81"

/* ------------------------------------------------------------------ files, sessions */

/* A fresh /tmp/infer-test-hf-XXXXXX into buf. */
static inline void fx_mkdtemp(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/infer-test-hf-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

/* rm -rf dir, unless INFER_HF_KEEP is set (then it says where it is). */
static inline void fx_rmdir(const char *dir)
{
    if (getenv("INFER_HF_KEEP")) {
        printf("kept %s\n", dir);
        return;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* dir/name, created; the string lives until the 4th next call. */
static inline const char *fx_subdir(const char *dir, const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) & 3;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    mkdir(buf[i], 0755);
    return buf[i];
}

/* A session that runs engine steps in infer_poll, with a small KV pool per model. */
static inline infer_session *fx_session(void)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    sp.kv_cache_bytes = 8u << 20;
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    return s;
}

static inline void fx_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static inline void fx_write_json(const char *dir, const char *name, const cJSON *j)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = cJSON_PrintUnformatted(j);
    assert_non_null(s);
    fx_write(path, s, strlen(s));
    free(s);
}

/* ------------------------------------------------------------------ safetensors */

typedef struct fx_tensor {
    char name[96];
    int64_t rows, cols; /* cols 0: a vector of rows elements */
    float *data;        /* owned */
} fx_tensor;

typedef struct fx_st {
    fx_tensor *t;
    int n, cap;
} fx_st;

static inline void fx_st_add(fx_st *s, const char *name, int64_t rows, int64_t cols, const float *src)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->t = realloc(s->t, (size_t)s->cap * sizeof *s->t);
    }
    fx_tensor *t = &s->t[s->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    t->data = malloc(n * sizeof(float));
    memcpy(t->data, src, n * sizeof(float));
}

static inline void fx_st_free(fx_st *s)
{
    for (int i = 0; i < s->n; i++) free(s->t[i].data);
    free(s->t);
    memset(s, 0, sizeof *s);
}

/* Bytes of a safetensors file (header padded with spaces before its closing brace so the data
** starts 8-byte aligned); dt "F32", "F16" or "BF16". *hdr_len gets N. */
static inline uint8_t *fx_st_bytes(const fx_st *s, const char *dt, size_t *size, size_t *hdr_len)
{
    size_t es = strcmp(dt, "F32") == 0 ? 4 : 2, off = 0;
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    for (int i = 0; i < s->n; i++) {
        const fx_tensor *t = &s->t[i];
        size_t n = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1);
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", dt);
        double shape[2] = { (double)t->rows, (double)t->cols };
        cJSON_AddItemToObject(e, "shape", cJSON_CreateDoubleArray(shape, t->cols ? 2 : 1));
        double offs[2] = { (double)off, (double)(off + n * es) };
        cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
        off += n * es;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t jn = strlen(js), pad = (8 - (8 + jn) % 8) % 8;
    *hdr_len = jn + pad;
    *size = 8 + *hdr_len + off;
    uint8_t *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)*hdr_len >> (8 * i));
    memcpy(b + 8, js, jn - 1);
    memset(b + 8 + jn - 1, ' ', pad);
    b[8 + *hdr_len - 1] = '}';
    free(js);
    uint8_t *d = b + 8 + *hdr_len;
    for (int i = 0; i < s->n; i++) {
        const fx_tensor *t = &s->t[i];
        size_t n = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1);
        for (size_t k = 0; k < n; k++, d += es) {
            if (es == 4) {
                memcpy(d, &t->data[k], 4);
            } else {
                uint16_t v = strcmp(dt, "F16") == 0 ? f32_to_f16(t->data[k]) : f32_to_bf16(t->data[k]);
                memcpy(d, &v, 2);
            }
        }
    }
    return b;
}

/* ------------------------------------------------------------------ SentencePiece-style tokenizer.json */

/* A vocab with scores (pieces in "▁" form); types: 0 normal, 1 control, 2 unknown, 3 byte. */
typedef struct fx_vocab {
    int n;
    char **piece;
    float *score;
    int *type;
    int *hash;          /* open addressing, -1 empty */
    unsigned mask;
} fx_vocab;

static inline unsigned fx_hash(const char *s, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static inline void fx_vocab_index(fx_vocab *v)
{
    unsigned cap = 16;
    while (cap < 4u * (unsigned)v->n) cap *= 2;
    v->mask = cap - 1;
    v->hash = malloc(cap * sizeof *v->hash);
    memset(v->hash, 0xff, cap * sizeof *v->hash);
    for (int i = 0; i < v->n; i++) {
        unsigned h = fx_hash(v->piece[i], strlen(v->piece[i])) & v->mask;
        while (v->hash[h] >= 0) h = (h + 1) & v->mask;
        v->hash[h] = i;
    }
}

static inline int fx_vocab_find(const fx_vocab *v, const char *s, size_t n)
{
    for (unsigned h = fx_hash(s, n) & v->mask;; h = (h + 1) & v->mask) {
        int i = v->hash[h];
        if (i < 0) return -1;
        if (strlen(v->piece[i]) == n && memcmp(v->piece[i], s, n) == 0) return i;
    }
}

static inline void fx_vocab_free(fx_vocab *v)
{
    for (int i = 0; i < v->n; i++) free(v->piece[i]);
    free(v->piece);
    free(v->score);
    free(v->type);
    free(v->hash);
    memset(v, 0, sizeof *v);
}

static const fx_vocab *fx_sort_vocab;
static inline int fx_by_score(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    float si = fx_sort_vocab->score[i], sj = fx_sort_vocab->score[j];
    if (si != sj) return si > sj ? -1 : 1;
    return i - j;
}

/* transformers' SentencePieceExtractor: for each piece in descending score order, every split
** into two vocab pieces (at character boundaries), ordered by (left id, right id). */
static inline cJSON *fx_spm_merges(const fx_vocab *v)
{
    int *order = malloc((size_t)v->n * sizeof *order);
    for (int i = 0; i < v->n; i++) order[i] = i;
    fx_sort_vocab = v;
    qsort(order, (size_t)v->n, sizeof *order, fx_by_score);
    cJSON *arr = cJSON_CreateArray();
    char buf[512];
    for (int k = 0; k < v->n; k++) {
        int id = order[k];
        if (v->type[id] != 0) continue;
        const char *p = v->piece[id];
        size_t n = strlen(p);
        int pairs[64][2], np = 0;
        for (size_t s = 1; s < n && np < 64; s++) {
            if (((unsigned char)p[s] & 0xC0) == 0x80) continue;
            int l = fx_vocab_find(v, p, s), r = fx_vocab_find(v, p + s, n - s);
            if (l < 0 || r < 0 || v->type[l] == 1 || v->type[r] == 1) continue;
            int j = np++;
            while (j > 0 && (pairs[j - 1][0] > l || (pairs[j - 1][0] == l && pairs[j - 1][1] > r))) {
                pairs[j][0] = pairs[j - 1][0];
                pairs[j][1] = pairs[j - 1][1];
                j--;
            }
            pairs[j][0] = l;
            pairs[j][1] = r;
        }
        for (int j = 0; j < np; j++) {
            snprintf(buf, sizeof buf, "%s %s", v->piece[pairs[j][0]], v->piece[pairs[j][1]]);
            cJSON_AddItemToArray(arr, cJSON_CreateString(buf));
        }
    }
    free(order);
    return arr;
}

static inline cJSON *fx_special(const char *content, int id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 0);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

/* tokenizer.json as transformers' LlamaConverter writes it (legacy normalizer form); vocab
** ids 0, 1, 2 = <unk>, <s>, </s>. */
static inline cJSON *fx_spm_tokenizer_json(const fx_vocab *v)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(added, fx_special(v->piece[i], i));
    cJSON *norm = cJSON_AddObjectToObject(j, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON_AddItemToObject(norm, "normalizers", cJSON_Parse("[{\"type\":\"Prepend\",\"prepend\":\"" SPM_SPACE "\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" SPM_SPACE "\"}]"));
    cJSON_AddNullToObject(j, "pre_tokenizer");
    cJSON_AddItemToObject(j, "post_processor", cJSON_Parse(
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":1}},"
        "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],"
        "\"tokens\":[\"<s>\"]}}}"));
    cJSON_AddItemToObject(j, "decoder", cJSON_Parse(
        "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"" SPM_SPACE "\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
        "\"start\":1,\"stop\":0}]}"));
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddStringToObject(m, "unk_token", v->piece[0]);
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", 1);
    cJSON_AddBoolToObject(m, "byte_fallback", 1);
    cJSON_AddBoolToObject(m, "ignore_merges", 0);
    cJSON *vo = cJSON_AddObjectToObject(m, "vocab");
    for (int i = 0; i < v->n; i++) cJSON_AddNumberToObject(vo, v->piece[i], i);
    cJSON_AddItemToObject(m, "merges", fx_spm_merges(v));
    return j;
}

/* ------------------------------------------------------------------ stories260K */

typedef struct fx_stories {
    int D, H, L, NH, NKV, V, S;
    float *file;
    const float *emb, *att_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w1, *w2, *w3, *out_norm;
    fx_vocab tok;       /* tok512, "▁" form; <s>, </s> for llama2.c's "\n<s>\n", "\n</s>\n" */
} fx_stories;

static inline void fx_stories_load(fx_stories *s)
{
    size_t n;
    char *f = read_file(shared_path("models/stories260K.bin"), &n);
    assert_non_null(f);
    int32_t h[7];
    memcpy(h, f, sizeof h);
    s->D = h[0], s->H = h[1], s->L = h[2], s->NH = h[3], s->NKV = h[4], s->V = h[5], s->S = h[6];
    assert_true(s->V > 0); /* shared classifier */
    s->file = (float *)(void *)f;
    int64_t D = s->D, H = s->H, L = s->L, kvd = (int64_t)s->NKV * (D / s->NH);
    const float *p = s->file + 7;
    s->emb = p, p += s->V * D;
    s->att_norm = p, p += L * D;
    s->wq = p, p += L * D * D;
    s->wk = p, p += L * kvd * D;
    s->wv = p, p += L * kvd * D;
    s->wo = p, p += L * D * D;
    s->ffn_norm = p, p += L * D;
    s->w1 = p, p += L * H * D;
    s->w2 = p, p += L * D * H;
    s->w3 = p, p += L * H * D;
    s->out_norm = p;

    char *t = read_file(shared_path("models/tok512.bin"), &n);
    assert_non_null(t);
    fx_vocab *v = &s->tok;
    v->n = s->V;
    v->piece = calloc((size_t)v->n, sizeof *v->piece);
    v->score = calloc((size_t)v->n, sizeof *v->score);
    v->type = calloc((size_t)v->n, sizeof *v->type);
    size_t off = 4;
    for (int i = 0; i < v->n; i++) {
        int32_t len;
        memcpy(&v->score[i], t + off, 4);
        memcpy(&len, t + off + 4, 4);
        const char *src = t + off + 8;
        off += 8 + (size_t)len;
        char *d = malloc(3 * (size_t)len + 1), *o = d;
        for (int k = 0; k < len; k++) {
            if (src[k] == ' ') { memcpy(o, SPM_SPACE, 3); o += 3; }
            else *o++ = src[k];
        }
        *o = 0;
        v->piece[i] = d;
        v->type[i] = (len == 6 && !memcmp(src, "<0x", 3)) ? 3 : 0;
    }
    free(t);
    free(v->piece[0]), v->piece[0] = strdup("<unk>"), v->type[0] = 2;
    free(v->piece[1]), v->piece[1] = strdup("<s>"), v->type[1] = 1;
    free(v->piece[2]), v->piece[2] = strdup("</s>"), v->type[2] = 1;
    fx_vocab_index(v);
}

static inline void fx_stories_free(fx_stories *s)
{
    free(s->file);
    fx_vocab_free(&s->tok);
}

/* convert_llama_weights_to_hf.py permute(): rows of each head go from pairs (2i, 2i+1) to
** halves (i, i + hd/2): new row h*hd + j*hd/2 + i = old row h*hd + 2i + j. */
static inline float *fx_permute(const float *w, int n_heads, int64_t rows, int64_t cols)
{
    float *o = malloc((size_t)(rows * cols) * sizeof *o);
    int64_t hd = rows / n_heads;
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < 2; j++)
            for (int64_t i = 0; i < hd / 2; i++)
                memcpy(o + (h * hd + j * hd / 2 + i) * cols, w + (h * hd + 2 * i + j) * cols, (size_t)cols * sizeof *o);
    return o;
}

/* The tensors of stories260K under HF Llama names. */
static inline void fx_stories_tensors(const fx_stories *s, fx_st *st)
{
    int64_t D = s->D, H = s->H, kvd = (int64_t)s->NKV * (D / s->NH);
    char n[96];
    fx_st_add(st, "model.embed_tokens.weight", s->V, D, s->emb);
    for (int l = 0; l < s->L; l++) {
#define FX_NAME(x) (snprintf(n, sizeof n, "model.layers.%d." x, l), n)
        float *q = fx_permute(s->wq + l * D * D, s->NH, D, D), *k = fx_permute(s->wk + l * kvd * D, s->NKV, kvd, D);
        fx_st_add(st, FX_NAME("input_layernorm.weight"), D, 0, s->att_norm + l * D);
        fx_st_add(st, FX_NAME("self_attn.q_proj.weight"), D, D, q);
        fx_st_add(st, FX_NAME("self_attn.k_proj.weight"), kvd, D, k);
        fx_st_add(st, FX_NAME("self_attn.v_proj.weight"), kvd, D, s->wv + l * kvd * D);
        fx_st_add(st, FX_NAME("self_attn.o_proj.weight"), D, D, s->wo + l * D * D);
        fx_st_add(st, FX_NAME("post_attention_layernorm.weight"), D, 0, s->ffn_norm + l * D);
        fx_st_add(st, FX_NAME("mlp.gate_proj.weight"), H, D, s->w1 + l * H * D);
        fx_st_add(st, FX_NAME("mlp.down_proj.weight"), D, H, s->w2 + l * D * H);
        fx_st_add(st, FX_NAME("mlp.up_proj.weight"), H, D, s->w3 + l * H * D);
        free(q);
        free(k);
#undef FX_NAME
    }
    fx_st_add(st, "model.norm.weight", D, 0, s->out_norm);
}

static inline cJSON *fx_stories_config(const fx_stories *s)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "architectures", cJSON_Parse("[\"LlamaForCausalLM\"]"));
    cJSON_AddStringToObject(c, "model_type", "llama");
    cJSON_AddNumberToObject(c, "hidden_size", s->D);
    cJSON_AddNumberToObject(c, "intermediate_size", s->H);
    cJSON_AddNumberToObject(c, "num_hidden_layers", s->L);
    cJSON_AddNumberToObject(c, "num_attention_heads", s->NH);
    cJSON_AddNumberToObject(c, "num_key_value_heads", s->NKV);
    cJSON_AddNumberToObject(c, "vocab_size", s->V);
    cJSON_AddNumberToObject(c, "max_position_embeddings", s->S);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "rope_theta", 10000);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 1);
    cJSON_AddNumberToObject(c, "bos_token_id", 1);
    cJSON_AddNumberToObject(c, "eos_token_id", 2);
    cJSON_AddStringToObject(c, "torch_dtype", "float32");
    return c;
}

/* stories260K as an HF directory in `dir` (which exists), weights stored as `dt`. */
static inline void fx_write_stories_hf(const fx_stories *s, const char *dir, const char *dt)
{
    cJSON *cfg = fx_stories_config(s);
    fx_write_json(dir, "config.json", cfg);
    cJSON_Delete(cfg);
    fx_st st = {0};
    fx_stories_tensors(s, &st);
    size_t size, hl;
    uint8_t *b = fx_st_bytes(&st, dt, &size, &hl);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_write(path, b, size);
    free(b);
    fx_st_free(&st);
    cJSON *tj = fx_spm_tokenizer_json(&s->tok);
    fx_write_json(dir, "tokenizer.json", tj);
    cJSON_Delete(tj);
    cJSON *tc = cJSON_Parse("{\"add_bos_token\":true,\"add_eos_token\":false,\"bos_token\":\"<s>\","
                            "\"eos_token\":\"</s>\",\"unk_token\":\"<unk>\",\"tokenizer_class\":\"LlamaTokenizer\"}");
    fx_write_json(dir, "tokenizer_config.json", tc);
    cJSON_Delete(tc);
}

#endif

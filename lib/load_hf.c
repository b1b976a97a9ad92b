/*
** load_hf.c — Hugging Face model directories: config.json, the safetensors weights
** (load_safetensors.c) and tokenizer.json (tok_hf.c), for the architectures
**   LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM   (decoder: ARCH_LLAMA)
**   BertModel (sentence-transformers MiniLM & co.)           (encoder: ARCH_BERT)
**
** config.json keys are transformers' (LlamaConfig, MistralConfig, Qwen2Config, BertConfig).
** Hugging Face Llama checkpoints apply RoPE with rotate_half (pairs (i, i + d/2)), the layout
** convert_llama_weights_to_hf.py produces by permuting Meta's q/k rows, so the weights are used
** as stored with hp.rope = ROPE_NEOX. Weights stay in the mapping in their stored dtype (F32,
** F16, BF16); norm vectors and biases are converted to f32 (owned by the model) when stored
** otherwise, and a tensor whose data is not aligned to its element size is copied.
** Tensor names: model.embed_tokens.weight, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}
** _proj, post_attention_layernorm, mlp.{gate,up,down}_proj}.weight (+ q/k/v biases for Qwen2),
** model.norm.weight, lm_head.weight; BERT: [bert.]embeddings.*, [bert.]encoder.layer.N.*.
*/
#include "hf.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_DIM (1 << 24)

typedef struct hf_ctx {
    infer_model *m;
    const char *dir;
    char *cfg_path;
    const cJSON *cfg;
    st_set w;
    const char *prefix; /* "bert." for BERT checkpoints saved from a task model, else "" */
} hf_ctx;

/* ---------------------------------------------------------------------- detection */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

infer_status hf_detect(const char *path, char **dir)
{
    *dir = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        *dir = infer_strdup(path);
        return *dir ? INFER_OK : infer_err(INFER_ENOMEM, "out of memory");
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (strcmp(base, "config.json") != 0 && !ends_with(base, ".safetensors") &&
        strcmp(base, "model.safetensors.index.json") != 0)
        return INFER_OK;
    size_t n = slash ? (size_t)(slash - path) : 0;
    *dir = malloc(n + 2);
    if (!*dir) return infer_err(INFER_ENOMEM, "out of memory");
    if (slash) {
        memcpy(*dir, path, n ? n : 1); /* "/config.json" -> "/" */
        (*dir)[n ? n : 1] = 0;
    } else {
        memcpy(*dir, ".", 2);
    }
    return INFER_OK;
}

/* ---------------------------------------------------------------------- tensors */

static infer_status find(hf_ctx *c, const char *name, int optional, const st_tensor **out)
{
    *out = st_find(&c->w, name);
    if (!*out)
        return optional ? INFER_OK
                        : infer_err(INFER_EFORMAT, "'%s': tensor %s is missing from the safetensors weights", c->dir,
                                    name);
    const st_tensor *t = *out;
    if (t->type < 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s': tensor %s has dtype %s (F32, F16 and BF16 are supported)",
                         c->w.files[t->shard], name, t->dtype_name);
    return INFER_OK;
}

/* The tensor's data, copied into a model-owned buffer when misaligned for its element size. */
static infer_status aligned_data(hf_ctx *c, const st_tensor *t, const void **out)
{
    size_t es = t->type == DT_F32 ? 4 : 2;
    if ((uintptr_t)t->data % es == 0) {
        *out = t->data;
        return INFER_OK;
    }
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    if (!p) return infer_err(INFER_ENOMEM, "out of memory copying tensor %s", t->name);
    memcpy(p, t->data, t->nbytes);
    *out = p;
    return model_own(c->m, p);
}

static infer_status get_matrix(hf_ctx *c, const char *name, int64_t rows, int64_t cols, tensor *out)
{
    const st_tensor *t;
    infer_status st = find(c, name, 0, &t);
    if (st) return st;
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return infer_err(INFER_EFORMAT, "'%s': tensor %s has shape [%lld, %lld]%s, expected [%lld, %lld]",
                         c->w.files[t->shard], name, (long long)(t->n_dims > 0 ? t->shape[0] : 0),
                         (long long)(t->n_dims > 1 ? t->shape[1] : 0), t->n_dims != 2 ? " (not 2-D)" : "",
                         (long long)rows, (long long)cols);
    const void *data;
    if ((st = aligned_data(c, t, &data))) return st;
    *out = (tensor){ (dtype)t->type, data, rows, cols };
    return INFER_OK;
}

/* An f32 vector of n elements (converted when stored as F16/BF16). */
static infer_status get_vector(hf_ctx *c, const char *name, int64_t n, int optional, const float **out)
{
    const st_tensor *t;
    *out = NULL;
    infer_status st = find(c, name, optional, &t);
    if (st || !t) return st;
    if (t->n_dims != 1 || t->shape[0] != n)
        return infer_err(INFER_EFORMAT, "'%s': tensor %s has %d dimensions [%lld, ...], expected [%lld]",
                         c->w.files[t->shard], name, t->n_dims, (long long)(t->n_dims ? t->shape[0] : 0),
                         (long long)n);
    if (t->type == DT_F32) return aligned_data(c, t, (const void **)out);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return infer_err(INFER_ENOMEM, "out of memory converting %s", name);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, t->data + 2 * i, 2);
        v[i] = t->type == DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    *out = v;
    return model_own(c->m, v);
}

/* ---------------------------------------------------------------------- config.json */

static infer_status cfg_int(hf_ctx *c, const char *key, int required, int lo, int *out)
{
    int64_t v = *out;
    infer_status st = hf_get_int(c->cfg, c->cfg_path, "", key, required, lo, HF_MAX_DIM, &v);
    *out = (int)v;
    return st;
}

/* An optional positive float within [lo, hi]. */
static infer_status cfg_float(hf_ctx *c, const char *key, double lo, double hi, float *out)
{
    double v = *out;
    infer_status st = hf_get_float(c->cfg, c->cfg_path, "", key, 0, lo, hi, &v);
    *out = (float)v;
    return st;
}

/* head_dim, when given, must be hidden_size / num_attention_heads (we derive it). */
static infer_status check_heads(hf_ctx *c, llama_hparams *hp)
{
    if (hp->dim % hp->n_heads)
        return infer_err(INFER_EFORMAT, "'%s': num_attention_heads = %d does not divide hidden_size %d", c->cfg_path,
                         hp->n_heads, hp->dim);
    hp->head_dim = hp->dim / hp->n_heads;
    int hd = hp->head_dim;
    infer_status st = cfg_int(c, "head_dim", 0, 1, &hd);
    if (st) return st;
    if (hd != hp->head_dim)
        return infer_err(INFER_EUNSUPPORTED, "'%s': head_dim = %d differs from hidden_size / num_attention_heads = %d",
                         c->cfg_path, hd, hp->head_dim);
    return INFER_OK;
}

static infer_status llama_config(hf_ctx *c)
{
    llama_hparams *hp = &c->m->hp;
    infer_status st;
    if ((st = cfg_int(c, "hidden_size", 1, 1, &hp->dim)) || (st = cfg_int(c, "intermediate_size", 1, 1, &hp->hidden_dim)) ||
        (st = cfg_int(c, "num_hidden_layers", 1, 1, &hp->n_layers)) ||
        (st = cfg_int(c, "num_attention_heads", 1, 1, &hp->n_heads)) || (st = cfg_int(c, "vocab_size", 1, 1, &hp->vocab_size)))
        return st;
    hp->n_kv_heads = hp->n_heads;
    hp->seq_len = 2048;
    hp->rms_eps = 1e-6f;
    hp->rope_theta = 10000.0f;
    hp->rope = ROPE_NEOX;
    if ((st = cfg_int(c, "num_key_value_heads", 0, 1, &hp->n_kv_heads)) ||
        (st = cfg_int(c, "max_position_embeddings", 0, 1, &hp->seq_len)) || (st = cfg_float(c, "rms_norm_eps", 1e-30, 1, &hp->rms_eps)) ||
        (st = cfg_float(c, "rope_theta", 1, 1e11, &hp->rope_theta)) || (st = check_heads(c, hp)))
        return st;
    if (hp->n_heads % hp->n_kv_heads)
        return infer_err(INFER_EFORMAT, "'%s': num_key_value_heads = %d does not divide num_attention_heads %d",
                         c->cfg_path, hp->n_kv_heads, hp->n_heads);
    if (hp->head_dim % 2)
        return infer_err(INFER_EUNSUPPORTED, "'%s': odd head size %d cannot use rotary embeddings", c->cfg_path,
                         hp->head_dim);
    const char *act = "silu";
    if ((st = hf_get_str(c->cfg, c->cfg_path, "", "hidden_act", 0, &act))) return st;
    if (strcmp(act, "silu") != 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s': hidden_act '%.40s' is not supported (silu is)", c->cfg_path, act);
    /* Sliding-window attention (Mistral v0.1): exact up to the window, so the context stops there. */
    int win = 0, use_win = 1;
    if ((st = hf_get_bool(c->cfg, c->cfg_path, "", "use_sliding_window", &use_win)) ||
        (st = cfg_int(c, "sliding_window", 0, 1, &win)))
        return st;
    if (use_win && win > 0 && win < hp->seq_len) hp->seq_len = win;
    const cJSON *rs = hf_get(c->cfg, "rope_scaling");
    if (rs) {
        const char *type = NULL;
        if (!cJSON_IsObject(rs))
            return infer_err(INFER_EFORMAT, "'%s': rope_scaling is not an object", c->cfg_path);
        if ((st = hf_get_str(rs, c->cfg_path, "rope_scaling", "rope_type", 0, &type))) return st;
        if (!type && (st = hf_get_str(rs, c->cfg_path, "rope_scaling", "type", 1, &type))) return st;
        if (strcmp(type, "llama3") != 0)
            return infer_err(INFER_EUNSUPPORTED, "'%s': rope_scaling type '%.40s' is not supported (llama3 is)",
                             c->cfg_path, type);
        double f = 8, lo = 1, hi = 4;
        int64_t orig = 8192;
        if ((st = hf_get_float(rs, c->cfg_path, "rope_scaling", "factor", 1, 1e-6, 1e6, &f)) ||
            (st = hf_get_float(rs, c->cfg_path, "rope_scaling", "low_freq_factor", 1, 1e-6, 1e6, &lo)) ||
            (st = hf_get_float(rs, c->cfg_path, "rope_scaling", "high_freq_factor", 1, 1e-6, 1e6, &hi)) ||
            (st = hf_get_int(rs, c->cfg_path, "rope_scaling", "original_max_position_embeddings", 1, 1, HF_MAX_DIM,
                             &orig)))
            return st;
        if (!(hi > lo))
            return infer_err(INFER_EFORMAT, "'%s': rope_scaling.high_freq_factor %g must exceed low_freq_factor %g",
                             c->cfg_path, hi, lo);
        hp->rope_factor = (float)f;
        hp->rope_low_freq_factor = (float)lo;
        hp->rope_high_freq_factor = (float)hi;
        hp->rope_orig_ctx = (int)orig;
    }
    return INFER_OK;
}

static infer_status llama_weights_load(hf_ctx *c)
{
    const llama_hparams *hp = &c->m->hp;
    llama_weights *w = &c->m->w;
    int64_t D = hp->dim, H = hp->hidden_dim, V = hp->vocab_size, qd = (int64_t)hp->n_heads * hp->head_dim;
    int64_t kvd = (int64_t)hp->n_kv_heads * hp->head_dim;
    int tied = 0;
    infer_status st;
    if ((st = hf_get_bool(c->cfg, c->cfg_path, "", "tie_word_embeddings", &tied)) ||
        (st = get_matrix(c, "model.embed_tokens.weight", V, D, &w->tok_embd)) ||
        (st = get_vector(c, "model.norm.weight", D, 0, &w->out_norm)))
        return st;
    if (tied || !st_find(&c->w, "lm_head.weight")) w->wcls = w->tok_embd;
    else if ((st = get_matrix(c, "lm_head.weight", V, D, &w->wcls))) return st;
    w->layers = calloc((size_t)hp->n_layers, sizeof *w->layers);
    if (!w->layers) return infer_err(INFER_ENOMEM, "out of memory for %d layers", hp->n_layers);
    for (int l = 0; l < hp->n_layers; l++) {
        llama_layer *L = &w->layers[l];
        char n[96];
#define NAME(s) (snprintf(n, sizeof n, "model.layers.%d." s, l), n)
        if ((st = get_vector(c, NAME("input_layernorm.weight"), D, 0, &L->attn_norm)) ||
            (st = get_matrix(c, NAME("self_attn.q_proj.weight"), qd, D, &L->wq)) ||
            (st = get_matrix(c, NAME("self_attn.k_proj.weight"), kvd, D, &L->wk)) ||
            (st = get_matrix(c, NAME("self_attn.v_proj.weight"), kvd, D, &L->wv)) ||
            (st = get_matrix(c, NAME("self_attn.o_proj.weight"), D, qd, &L->wo)) ||
            (st = get_vector(c, NAME("self_attn.q_proj.bias"), qd, 1, &L->bq)) ||
            (st = get_vector(c, NAME("self_attn.k_proj.bias"), kvd, 1, &L->bk)) ||
            (st = get_vector(c, NAME("self_attn.v_proj.bias"), kvd, 1, &L->bv)) ||
            (st = get_vector(c, NAME("post_attention_layernorm.weight"), D, 0, &L->ffn_norm)) ||
            (st = get_matrix(c, NAME("mlp.gate_proj.weight"), H, D, &L->w1)) ||
            (st = get_matrix(c, NAME("mlp.down_proj.weight"), D, H, &L->w2)) ||
            (st = get_matrix(c, NAME("mlp.up_proj.weight"), H, D, &L->w3)))
            return st;
#undef NAME
    }
    return INFER_OK;
}

/* ---------------------------------------------------------------------- BERT */

static infer_status bert_config(hf_ctx *c)
{
    llama_hparams *hp = &c->m->hp;
    infer_status st;
    if ((st = cfg_int(c, "hidden_size", 1, 1, &hp->dim)) || (st = cfg_int(c, "intermediate_size", 1, 1, &hp->hidden_dim)) ||
        (st = cfg_int(c, "num_hidden_layers", 1, 1, &hp->n_layers)) ||
        (st = cfg_int(c, "num_attention_heads", 1, 1, &hp->n_heads)) || (st = cfg_int(c, "vocab_size", 1, 1, &hp->vocab_size)))
        return st;
    hp->n_kv_heads = hp->n_heads;
    hp->seq_len = 512;
    hp->rms_eps = 1e-12f;
    if ((st = cfg_int(c, "max_position_embeddings", 0, 1, &hp->seq_len)) ||
        (st = cfg_float(c, "layer_norm_eps", 1e-30, 1, &hp->rms_eps)) || (st = check_heads(c, hp)))
        return st;
    const char *act = "gelu", *pos = "absolute";
    if ((st = hf_get_str(c->cfg, c->cfg_path, "", "hidden_act", 0, &act)) ||
        (st = hf_get_str(c->cfg, c->cfg_path, "", "position_embedding_type", 0, &pos)))
        return st;
    if (strcmp(act, "gelu") != 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s': hidden_act '%.40s' is not supported (gelu is)", c->cfg_path, act);
    if (strcmp(pos, "absolute") != 0)
        return infer_err(INFER_EUNSUPPORTED, "'%s': position_embedding_type '%.40s' is not supported (absolute is)",
                         c->cfg_path, pos);
    return INFER_OK;
}

static infer_status bert_weights_load(hf_ctx *c)
{
    const llama_hparams *hp = &c->m->hp;
    bert_weights *w = &c->m->bw;
    int64_t D = hp->dim, H = hp->hidden_dim;
    int type_vocab = 2;
    infer_status st = cfg_int(c, "type_vocab_size", 0, 1, &type_vocab);
    if (st) return st;
    c->prefix = st_find(&c->w, "embeddings.word_embeddings.weight") ? "" : "bert.";
    char n[128];
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    const char *p = c->prefix;
    if ((st = get_matrix(c, NAME("%sembeddings.word_embeddings.weight", p), hp->vocab_size, D, &w->tok_embd)) ||
        (st = get_matrix(c, NAME("%sembeddings.position_embeddings.weight", p), hp->seq_len, D, &w->pos_embd)) ||
        (st = get_matrix(c, NAME("%sembeddings.token_type_embeddings.weight", p), type_vocab, D, &w->type_embd)) ||
        (st = get_vector(c, NAME("%sembeddings.LayerNorm.weight", p), D, 0, &w->ln_w)) ||
        (st = get_vector(c, NAME("%sembeddings.LayerNorm.bias", p), D, 0, &w->ln_b)))
        return st;
    w->layers = calloc((size_t)hp->n_layers, sizeof *w->layers);
    if (!w->layers) return infer_err(INFER_ENOMEM, "out of memory for %d layers", hp->n_layers);
    for (int l = 0; l < hp->n_layers; l++) {
        bert_layer *L = &w->layers[l];
        const char *e = "encoder.layer";
        if ((st = get_matrix(c, NAME("%s%s.%d.attention.self.query.weight", p, e, l), D, D, &L->wq)) ||
            (st = get_vector(c, NAME("%s%s.%d.attention.self.query.bias", p, e, l), D, 0, &L->bq)) ||
            (st = get_matrix(c, NAME("%s%s.%d.attention.self.key.weight", p, e, l), D, D, &L->wk)) ||
            (st = get_vector(c, NAME("%s%s.%d.attention.self.key.bias", p, e, l), D, 0, &L->bk)) ||
            (st = get_matrix(c, NAME("%s%s.%d.attention.self.value.weight", p, e, l), D, D, &L->wv)) ||
            (st = get_vector(c, NAME("%s%s.%d.attention.self.value.bias", p, e, l), D, 0, &L->bv)) ||
            (st = get_matrix(c, NAME("%s%s.%d.attention.output.dense.weight", p, e, l), D, D, &L->wo)) ||
            (st = get_vector(c, NAME("%s%s.%d.attention.output.dense.bias", p, e, l), D, 0, &L->bo)) ||
            (st = get_vector(c, NAME("%s%s.%d.attention.output.LayerNorm.weight", p, e, l), D, 0, &L->ln1_w)) ||
            (st = get_vector(c, NAME("%s%s.%d.attention.output.LayerNorm.bias", p, e, l), D, 0, &L->ln1_b)) ||
            (st = get_matrix(c, NAME("%s%s.%d.intermediate.dense.weight", p, e, l), H, D, &L->w_up)) ||
            (st = get_vector(c, NAME("%s%s.%d.intermediate.dense.bias", p, e, l), H, 0, &L->b_up)) ||
            (st = get_matrix(c, NAME("%s%s.%d.output.dense.weight", p, e, l), D, H, &L->w_down)) ||
            (st = get_vector(c, NAME("%s%s.%d.output.dense.bias", p, e, l), D, 0, &L->b_down)) ||
            (st = get_vector(c, NAME("%s%s.%d.output.LayerNorm.weight", p, e, l), D, 0, &L->ln2_w)) ||
            (st = get_vector(c, NAME("%s%s.%d.output.LayerNorm.bias", p, e, l), D, 0, &L->ln2_b)))
            return st;
    }
#undef NAME
    return INFER_OK;
}

/* ---------------------------------------------------------------------- entry */

static const struct {
    const char *name;
    model_arch arch;
} HF_ARCHS[] = {
    {"LlamaForCausalLM", ARCH_LLAMA}, {"MistralForCausalLM", ARCH_LLAMA}, {"Qwen2ForCausalLM", ARCH_LLAMA},
    {"BertModel", ARCH_BERT},
};

static infer_status pick_arch(hf_ctx *c, model_arch *arch)
{
    const cJSON *a = hf_get(c->cfg, "architectures");
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < 1 || !cJSON_IsString(a->child))
        return infer_err(INFER_EFORMAT, "'%s': architectures is %s", c->cfg_path,
                         a ? "not an array of strings" : "missing");
    const char *name = a->child->valuestring;
    for (size_t i = 0; i < sizeof HF_ARCHS / sizeof *HF_ARCHS; i++)
        if (strcmp(name, HF_ARCHS[i].name) == 0) {
            *arch = HF_ARCHS[i].arch;
            return INFER_OK;
        }
    return infer_err(INFER_EUNSUPPORTED, "'%s': architecture '%.60s' is not supported (LlamaForCausalLM, "
                     "MistralForCausalLM, Qwen2ForCausalLM, BertModel are)", c->cfg_path, name);
}

infer_status hf_load_model(infer_model *m, const char *dir)
{
    hf_ctx c = { .m = m, .dir = dir, .prefix = "" };
    cJSON *cfg = NULL;
    infer_status st = INFER_ENOMEM;
    if (!(c.cfg_path = hf_path_join(dir, "config.json"))) goto done;
    if ((st = hf_json_load(c.cfg_path, 0, &cfg))) goto done;
    c.cfg = cfg;
    if (!cJSON_IsObject(cfg)) {
        st = infer_err(INFER_EFORMAT, "'%s' is not a JSON object", c.cfg_path);
        goto done;
    }
    if ((st = pick_arch(&c, &m->arch))) goto done;
    st = m->arch == ARCH_BERT ? bert_config(&c) : llama_config(&c);
    if (st || (st = st_open_dir(dir, &c.w))) goto done;
    st = m->arch == ARCH_BERT ? bert_weights_load(&c) : llama_weights_load(&c);
    if (st) goto done;
    if ((st = tok_load_hf(dir, m->hp.vocab_size, &m->tok, &m->chat_template))) goto done;
    const int32_t *ends = tok_end_tokens(m->tok, &m->n_end);
    m->n_end = INFER_MIN(m->n_end, (int)(sizeof m->end_tokens / sizeof m->end_tokens[0]));
    memcpy(m->end_tokens, ends, (size_t)m->n_end * sizeof *ends);
    st_take_maps(&c.w, &m->extra_maps, &m->n_extra_maps);
done:
    st_free(&c.w);
    cJSON_Delete(cfg);
    free(c.cfg_path);
    return st;
}

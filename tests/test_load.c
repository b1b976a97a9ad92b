/*
** test_load.c — llama2.c checkpoint loading through infer_model_load: the real shared and
** unshared-classifier models load; damaged files (zero-length, truncated, wrong magic,
** absurd dimensions, random header bytes, a mismatched tokenizer) fail with INFER_EFORMAT
** and a reason, never a crash (run under make asan too).
*/
#include "test_util.h"

#include <infer.h>
#include <unistd.h>

static char tmpdir[256];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/infer-test-load-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

static const char *write_tmp(const char *name, const void *data, size_t len)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

static infer_status load(const char *path, const char *tok, char *msg, size_t cap)
{
    infer_session_params sp;
    infer_session_params_init(&sp);
    sp.threading = INFER_THREADING_CALLER;
    infer_session *s;
    assert_int_equal(infer_session_create(&sp, &s), INFER_OK);
    infer_model_params mp;
    infer_model_params_init(&mp);
    mp.tokenizer_path = tok;
    infer_status st = infer_model_load(s, "m", NULL, path, &mp);
    snprintf(msg, cap, "%s", infer_last_error(s));
    infer_session_destroy(s);
    return st;
}

static void test_real_models_load(void **state)
{
    char msg[1024];
    assert_int_equal(load(shared_path("models/stories260K.bin"), shared_path("models/tok512.bin"), msg, sizeof msg), INFER_OK);
    /* unshared classifier; tokenizer.bin found beside it by default */
    assert_int_equal(load(shared_path("models/llama-2-tiny-random.f32.bin"), NULL, msg, sizeof msg), INFER_OK);
}

static void expect_format_error(const char *what, const void *data, size_t len, const char *needle)
{
    char msg[1024];
    const char *p = write_tmp("bad.bin", data, len);
    infer_status st = load(p, shared_path("models/tok512.bin"), msg, sizeof msg);
    printf("    %-28s -> %s: %s\n", what, infer_status_str(st), msg);
    assert_int_equal(st, INFER_EFORMAT);
    assert_true(strlen(msg) > 0);
    /* the reason names the field, or (for a plausible but wrong value) the size it implies */
    if (needle) assert_true(strstr(msg, needle) != NULL || strstr(msg, "implies") != NULL);
}

static void test_damaged_files(void **state)
{
    size_t len;
    char *good = read_file(shared_path("models/stories260K.bin"), &len);
    assert_non_null(good);
    char *buf = malloc(len + 64);

    expect_format_error("zero-length", "", 0, "too short");
    expect_format_error("truncated header", good, 20, "too short");
    expect_format_error("truncated weights", good, len / 2, "truncated");
    memcpy(buf, good, len);
    memset(buf + len, 0, 64);
    expect_format_error("extra bytes", buf, len + 64, "implies");

    int32_t h[7];
    const char *fields[7] = { "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len" };
    int32_t absurd[] = { 0, -5, 1 << 30, INT32_MIN, INT32_MAX };
    for (int f = 0; f < 7; f++) {
        for (size_t a = 0; a < sizeof absurd / sizeof absurd[0]; a++) {
            memcpy(buf, good, len);
            memcpy(h, buf, sizeof h);
            h[f] = absurd[a];
            memcpy(buf, h, sizeof h);
            char what[64];
            snprintf(what, sizeof what, "%s = %d", fields[f], absurd[a]);
            expect_format_error(what, buf, len, fields[f]);
        }
    }
    /* n_kv_heads not dividing n_heads */
    memcpy(buf, good, len);
    memcpy(h, buf, sizeof h);
    h[4] = 3;
    memcpy(buf, h, sizeof h);
    expect_format_error("n_kv_heads = 3 (of 8)", buf, len, "n_kv_heads");

    /* random header bytes: never a crash, always a format error */
    uint32_t x = 12345;
    for (int trial = 0; trial < 200; trial++) {
        memcpy(buf, good, len);
        for (int i = 0; i < 28; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (char)(x >> 24);
        }
        char msg[1024];
        const char *p = write_tmp("rand.bin", buf, len);
        infer_status st = load(p, shared_path("models/tok512.bin"), msg, sizeof msg);
        assert_true(st == INFER_EFORMAT || st == INFER_EUNSUPPORTED);
    }
    free(buf);
    free(good);
}

static void test_wrong_magic_and_io(void **state)
{
    char msg[1024];
    const char *p = write_tmp("gguf.bin", "GGUF\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 30);
    assert_int_equal(load(p, NULL, msg, sizeof msg), INFER_EFORMAT); /* a truncated GGUF header */
    printf("    truncated GGUF -> %s\n", msg);
    assert_int_equal(load("/nonexistent/model.bin", NULL, msg, sizeof msg), INFER_EIO);
    assert_non_null(strstr(msg, "/nonexistent/model.bin"));
    /* a directory is not a model */
    assert_int_equal(load(tmpdir, NULL, msg, sizeof msg), INFER_EIO);
    /* the right model, a tokenizer of another vocabulary size */
    infer_status st = load(shared_path("models/stories260K.bin"), shared_path("models/tokenizer.bin"), msg, sizeof msg);
    assert_int_equal(st, INFER_EFORMAT);
    printf("    mismatched tokenizer -> %s\n", msg);
    /* no tokenizer beside the model: the message says what to pass */
    size_t len;
    char *good = read_file(shared_path("models/stories260K.bin"), &len);
    p = write_tmp("lonely.bin", good, len);
    free(good);
    assert_int_equal(load(p, NULL, msg, sizeof msg), INFER_EIO);
    assert_non_null(strstr(msg, "tokenizer_path"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_models_load),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_wrong_magic_and_io),
    };
    return cmocka_run_group_tests_name("load", tests, setup, teardown);
}

/*
** test_cli.c — the command-line tools as a user runs them: infer-generate's greedy stdout
** equals llama2.c run.c's (the golden `text` plus run.c's final newline), its summary line,
** --help and error messages; infer-tokenize ids and --decode.
** The tools are found in $INFER_BUILD_DIR (set by the Makefile; default "build").
*/
#include "test_util.h"

#include <sys/wait.h>

/* Run a shell command; capture stdout (and stderr separately into err). Returns exit code. */
static int run(const char *cmd, char *out, size_t cap, char *err, size_t ecap)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>/tmp/infer-test-cli.err", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    FILE *e = fopen("/tmp/infer-test-cli.err", "r");
    size_t m = e ? fread(err, 1, ecap - 1, e) : 0;
    err[m] = 0;
    if (e) fclose(e);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *tool(const char *name)
{
    static char buf[2][512];
    static int i;
    const char *dir = getenv("INFER_BUILD_DIR");
    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir && *dir ? dir : "build", name);
    return buf[i];
}

static void test_generate_equals_run_c(void **state)
{
    char *g = read_file(shared_path("golden/stories260K.greedy.txt"), NULL);
    assert_non_null(g);
    char *prompt = NULL, *text = NULL;
    size_t n_prompt = 0;
    int checked = 0;
    static char out[65536], err[4096];
    for (char *line = strtok(g, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "prompt_hex ", 11)) prompt = hex_decode(line + 11, NULL);
        else if (!strncmp(line, "prompt_ids ", 11)) n_prompt = (size_t)atoi(line + 11);
        else if (!strncmp(line, "text_hex ", 9)) text = hex_decode(line + 9, NULL);
        else if (!strncmp(line, "end_case", 8)) {
            char cmd[2048];
            /* run.c -n 64 counts the prompt's positions: 64 - (n_prompt - 1) new tokens */
            snprintf(cmd, sizeof cmd, "%s -m %s -z %s -p '%s' -n %zu --temp 0", tool("infer-generate"),
                     shared_path("models/stories260K.bin"), shared_path("models/tok512.bin"), prompt, 65 - n_prompt);
            assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 0);
            char want[8192];
            snprintf(want, sizeof want, "%s\n", text);
            assert_string_equal(out, want);
            assert_non_null(strstr(err, "tokens/s"));
            assert_non_null(strstr(err, "time to first token"));
            free(prompt);
            free(text);
            prompt = text = NULL;
            checked++;
        }
    }
    free(g);
    printf("    %d golden cases: stdout identical to run.c's\n", checked);
    assert_int_equal(checked, 5);
}

static void test_generate_errors(void **state)
{
    static char out[8192], err[4096];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --help", tool("infer-generate"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "usage"));
    snprintf(cmd, sizeof cmd, "%s -m /nonexistent.bin -p hi", tool("infer-generate"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "/nonexistent.bin"));
    snprintf(cmd, sizeof cmd, "%s -m %s -p hi", tool("infer-generate"), shared_path("golden/README.md"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "INFER_EFORMAT"));
    snprintf(cmd, sizeof cmd, "%s --bogus", tool("infer-generate"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 2);
    snprintf(cmd, sizeof cmd, "%s -m x -n abc", tool("infer-generate"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "-n"));
}

static void test_tokenize_tool(void **state)
{
    static char out[8192], err[4096];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -m %s -z %s 'Once upon a time'", tool("infer-tokenize"),
             shared_path("models/stories260K.bin"), shared_path("models/tok512.bin"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "1 403 407 261 378\n"); /* golden prompt_ids of case 0 */
    snprintf(cmd, sizeof cmd, "%s -m %s --special 'Hello world<|endoftext|>'", tool("infer-tokenize"),
             shared_path("tokenizer/ggml-vocab-gpt-2.gguf"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "15496 995 50256\n");
    snprintf(cmd, sizeof cmd, "%s -m %s 'Hello world<|endoftext|>'", tool("infer-tokenize"),
             shared_path("tokenizer/ggml-vocab-gpt-2.gguf"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 0);
    assert_null(strstr(out, "50256"));
    snprintf(cmd, sizeof cmd, "%s -m %s --decode 15496 995 50256", tool("infer-tokenize"),
             shared_path("tokenizer/ggml-vocab-gpt-2.gguf"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "Hello world\n");
    snprintf(cmd, sizeof cmd, "%s -m %s --decode 99999999", tool("infer-tokenize"),
             shared_path("tokenizer/ggml-vocab-gpt-2.gguf"));
    assert_int_equal(run(cmd, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "vocabulary"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_equals_run_c),
        cmocka_unit_test(test_generate_errors),
        cmocka_unit_test(test_tokenize_tool),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
